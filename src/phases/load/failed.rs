//! The load's failed file, `data/reports/failed/<entity>.jsonl`: one entry
//! per item that could not be written (`{"index":…,"table":…,"error":…}`,
//! enriched with the key, legacy id and item when the load stops). Read
//! strictly: a line that is not an entry is an error naming the file and
//! line, except a last line cut short by a crash (docs/safety.md). In an
//! encrypted data directory it is a segmented log ([`crate::crypt::log`]).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::artifact::ArtifactReader;
use crate::crypt::{self, log::Appender};
use crate::dynamo::key_of;
use crate::entities::Item;
use crate::error::{Error, Result};

pub(super) fn open_append(path: &Path) -> Result<Appender> {
    Appender::open(path, crypt::current())
}

fn write_atomic(path: &Path, lines: &[u8]) -> Result<()> {
    crypt::log::write_atomic(path, lines, crypt::current())
}

/// Keeps only the failed entries with index below `start` (a fresh load
/// starts an empty file; a resumed one drops entries it will retry).
pub(super) fn keep_failed_before(path: &Path, start: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut kept = Vec::new();
    if start > 0 {
        read_failed(path, |index, line, _| {
            if index < start {
                kept.extend_from_slice(line.as_bytes());
                kept.push(b'\n');
            }
        })?;
    }
    write_atomic(path, &kept)
}

/// Reads the failed file's entries in order: `(index, line, entry)`. A last
/// line cut short by an interrupted command (no newline at its end) is left
/// out with a warning: its batch was never confirmed, so the resumed load
/// sends it again. Any other line that is not an entry is an error naming
/// the file and the line: a failed item is never dropped unseen.
fn read_failed(path: &Path, mut each: impl FnMut(u64, &str, Value)) -> Result<()> {
    let Some(mut reader) = crypt::log::reader(path, crypt::current())? else {
        return Err(Error::io(path, std::io::ErrorKind::NotFound.into()));
    };
    let mut line = String::new();
    let mut n = 0u64;
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .map_err(|e| Error::io(path, e))?
            == 0
        {
            return Ok(());
        }
        n += 1;
        let complete = line.ends_with('\n');
        let text = line.trim_end_matches('\n');
        let entry = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| Some((v.get("index")?.as_u64()?, v)));
        match entry {
            Some((index, v)) => each(index, text, v),
            None if !complete => tracing::warn!(
                "{}: line {n} was cut short by an interrupted command and is left out (its batch is sent again)",
                path.display()
            ),
            None => {
                return Err(Error::artifact(
                    path,
                    format!("line {n} is not a failed-item entry (JSON with an \"index\")"),
                ));
            }
        }
    }
}

/// Adds each failed entry's key, legacy id and item from the artifact (the
/// validated one, or a sync's `changes`), so the failed file stands on its own.
pub(super) fn enrich_failed(failed_path: &Path, artifact: &Path, changes: bool) -> Result<()> {
    let mut entries: BTreeMap<u64, Value> = BTreeMap::new();
    read_failed(failed_path, |index, _, v| {
        entries.insert(index, v);
    })?;
    if entries.is_empty() || entries.values().all(|v| v.get("item").is_some()) {
        return Ok(());
    }
    let mut reader = ArtifactReader::open(artifact)?;
    let mut buf = String::new();
    let mut index = 0u64;
    let last = *entries.keys().last().expect("not empty");
    while index <= last && reader.next_line(&mut buf)? {
        if let Some(entry) = entries.get_mut(&index) {
            let mut item: Item = serde_json::from_str(&buf)
                .map_err(|e| Error::artifact(artifact, format!("line {}: {e}", index + 1)))?;
            // A line of a sync's changes artifact: the item put, or the key deleted.
            if changes {
                item = match item.remove("put").or_else(|| item.remove("delete")) {
                    Some(Value::Object(inner)) => inner,
                    _ => {
                        return Err(Error::artifact(
                            artifact,
                            format!("line {}: neither a put nor a delete", index + 1),
                        ));
                    }
                };
            }
            let (pk, sk) = key_of(&item);
            entry["PK"] = Value::String(pk);
            entry["SK"] = Value::String(sk);
            entry["legacyId"] = item.get("legacyId").cloned().unwrap_or(Value::Null);
            entry["item"] = Value::Object(item);
        }
        index += 1;
    }
    let mut out = Vec::new();
    for v in entries.values() {
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    write_atomic(failed_path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failed_file_drops_only_a_line_cut_short_by_a_crash() {
        let dir = std::env::temp_dir().join(format!("migrate-failed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("buyers.jsonl");
        let entry = |i: u64| format!(r#"{{"index":{i},"error":"refused"}}"#);
        // a crash cut the last line short: kept before the resume point, torn line left out
        std::fs::write(&path, format!("{}\n{}\n{{\"ind", entry(3), entry(40))).unwrap();
        keep_failed_before(&path, 10).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), entry(3) + "\n");
        // a complete line that is not an entry is never dropped unseen
        std::fs::write(&path, format!("{}\nnot json\n{}\n", entry(3), entry(4))).unwrap();
        let err = keep_failed_before(&path, 10).unwrap_err().to_string();
        assert!(
            err.contains("buyers.jsonl") && err.contains("line 2"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
