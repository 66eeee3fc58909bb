//! The ledger: one line per item a load sends, `{"PK":…,"SK":…,"fp":…}`,
//! with the fingerprint of the item exactly as sent
//! (`fingerprint::of_wire`); a delete (a sync's) is
//! `{"PK":…,"SK":…,"fp":"0…0","deleted":true}`. The load's reader appends a chunk of
//! batches at a time, flushed and fdatasync'ed before the chunk is handed to
//! the writers, so whatever reached the table is in the ledger, even after a
//! `kill -9`. Rollback reads the ledgers instead of the validated artifact,
//! which later commands may rewrite. In an encrypted data directory each
//! chunk's lines are one encrypted segment ([`crate::crypt::log`]).

use std::fs::File;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::backup_dir;
use crate::artifact::hex;
use crate::checkpoint::LedgerInfo;
use crate::crypt::{self, log::Appender};
use crate::error::{Error, Result};
use crate::pipeline::{Batch, BeforeSend};

/// `data/backups/<entity>-<run>.ledger.jsonl`.
pub fn path(data_dir: &Path, entity: &str, run_id: &str) -> PathBuf {
    backup_dir(data_dir).join(format!("{entity}-{run_id}.ledger.jsonl"))
}

/// One line of a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// [`fingerprint::of_wire`] of the item as sent, 32 hex digits.
    #[serde(with = "fp_hex")]
    pub fp: u128,
    /// A delete: the load removed the item (`fp` is [`ABSENT`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// The fingerprint the ledger gives a delete: what rollback compares with
/// an item that is not there.
pub const ABSENT: u128 = 0;

impl Entry {
    /// The state this entry left the item in: its fingerprint, or [`ABSENT`].
    pub fn state(&self) -> u128 {
        if self.deleted { ABSENT } else { self.fp }
    }
}

mod fp_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(fp: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{fp:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = <&str>::deserialize(d)?;
        u128::from_str_radix(text, 16).map_err(D::Error::custom)
    }
}

/// Appends to a ledger.
pub struct LedgerWriter {
    out: Appender,
    /// The lines of the chunk being recorded.
    chunk: Vec<u8>,
}

impl LedgerWriter {
    /// Opens `path` for appending (owner only), first cutting a last line
    /// that a killed process left half written.
    pub fn open(path: &Path) -> Result<LedgerWriter> {
        Ok(LedgerWriter {
            out: Appender::open(path, crypt::current())?,
            chunk: Vec::with_capacity(1 << 16),
        })
    }

    /// Records every put of `chunk` and makes it durable.
    pub fn record(&mut self, chunk: &[Batch]) -> Result<()> {
        for batch in chunk {
            for (_, write) in &batch.writes {
                let key = |name: &str| match write.key.get(name) {
                    Some(aws_sdk_dynamodb::types::AttributeValue::S(s)) => s.clone(),
                    _ => String::new(),
                };
                // The put's fingerprint was taken when its request was built.
                let entry = Entry {
                    pk: key("PK"),
                    sk: key("SK"),
                    fp: write.fingerprint.unwrap_or(ABSENT),
                    deleted: write.fingerprint.is_none(),
                };
                serde_json::to_writer(&mut self.chunk, &entry).expect("an entry serializes");
                self.chunk.push(b'\n');
            }
        }
        let appended = self.out.append(&self.chunk);
        self.chunk.clear();
        appended?;
        self.out.sync()
    }

    /// As the load reader's hook: the chunk is recorded before it is sent.
    pub fn into_hook(mut self) -> BeforeSend {
        Box::new(move |chunk| self.record(chunk))
    }
}

/// Lines (plain; segments when encrypted) and SHA-256 of a ledger as it is now.
fn measure(path: &Path) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let (mut lines, mut buf) = (0u64, vec![0u8; 1 << 20]);
    let mut file = match File::open(path) {
        Ok(f) => f,
        // A load stopped before its first chunk: an empty ledger.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((0, hex(&Sha256::digest(b""))));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((lines, hex(&hasher.finalize())))
}

/// Records the ledger's lines and SHA-256 (its load has stopped).
pub fn seal(info: &mut LedgerInfo) -> Result<()> {
    crypt::log::cut_torn_tail(&info.path, crypt::current())?;
    let (lines, sha) = measure(&info.path)?;
    info.lines = Some(lines);
    info.sha256 = Some(sha);
    Ok(())
}

/// Refuses a ledger that changed since it was sealed; a ledger whose load
/// was killed (never sealed) is used as found, with a warning.
pub fn check(info: &LedgerInfo) -> Result<()> {
    let Some(sealed) = &info.sha256 else {
        tracing::warn!(
            "{}: its load (run {}) did not stop cleanly, so no SHA-256 was recorded; using it as found",
            info.path.display(),
            info.run_id
        );
        return Ok(());
    };
    let (lines, sha) = measure(&info.path)?;
    if &sha != sealed {
        return Err(Error::Checkpoint(format!(
            "ledger {} has SHA-256 {sha} ({lines} lines) but the checkpoint recorded {sealed} ({} lines): \
             it changed after its load; refusing to use it",
            info.path.display(),
            info.lines.unwrap_or(0)
        )));
    }
    Ok(())
}

/// Reads a ledger entry by entry.
pub struct Reader {
    path: PathBuf,
    /// `None`: the ledger does not exist (its load stopped before a write).
    reader: Option<Box<dyn BufRead + Send>>,
    line: String,
    no: u64,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let reader = crypt::log::reader(path, crypt::current())?;
        Ok(Reader {
            path: path.to_path_buf(),
            reader,
            line: String::new(),
            no: 0,
        })
    }

    /// The next entry; `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        let Some(reader) = &mut self.reader else {
            return Ok(None);
        };
        self.line.clear();
        let n = reader
            .read_line(&mut self.line)
            .map_err(|e| Error::io(&self.path, e))?;
        // A last line without its newline was half written by a killed
        // load, before its chunk was sent.
        if n == 0 || !self.line.ends_with('\n') {
            return Ok(None);
        }
        self.no += 1;
        serde_json::from_str(self.line.trim_end())
            .map(Some)
            .map_err(|e| {
                Error::artifact(
                    &self.path,
                    format!("line {}: not a ledger entry: {e}", self.no),
                )
            })
    }
}

/// Calls `f` with each entry of the ledger at `path`, in order.
pub fn read(path: &Path, mut f: impl FnMut(Entry) -> Result<()>) -> Result<()> {
    let mut reader = Reader::open(path)?;
    while let Some(entry) = reader.next_entry()? {
        f(entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::Write;

    #[test]
    fn records_what_is_sent_and_reads_it_back() {
        let dir = std::env::temp_dir().join(format!("migrate-ledger-{}", uuid::Uuid::new_v4()));
        let path = path(&dir, "buyers", "r1");
        let lines = [
            r#"{"PK":"BUYER#1","SK":"METADATA","n":1.50}"#,
            r#"{"PK":"BUYER#2","SK":"METADATA","m":{"a":[1,"x"]}}"#,
        ];
        let mut writes: Vec<(u64, Write)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u64, Write::put_json(l).unwrap()))
            .collect();
        let key: crate::entities::Item =
            serde_json::from_str(r#"{"PK":"BUYER#9","SK":"METADATA"}"#).unwrap();
        writes.push((2, Write::delete(&key)));
        let batch = Batch { first: 0, writes };
        let mut w = LedgerWriter::open(&path).unwrap();
        w.record(std::slice::from_ref(&batch)).unwrap();
        drop(w);
        // A half-written line at the end (a kill during a write) is cut.
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"PK":"BUYER#3","SK""#).unwrap();
        drop(f);
        let mut info = LedgerInfo {
            run_id: "r1".into(),
            path: path.clone(),
            lines: None,
            sha256: None,
        };
        let mut got = Vec::new();
        read(&path, |e| {
            got.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].pk, "BUYER#2");
        for (e, l) in got.iter().zip(lines) {
            assert_eq!(
                e.fp,
                crate::fingerprint::of_line(&crate::json::Obj::parse(l).unwrap())
            );
            assert!(!e.deleted);
        }
        // a sync's delete names the key and leaves it absent
        assert_eq!((got[2].pk.as_str(), got[2].deleted), ("BUYER#9", true));
        assert_eq!(got[2].state(), ABSENT);
        seal(&mut info).unwrap();
        assert_eq!(info.lines, Some(3));
        check(&info).unwrap();
        // Appending after the seal is a change.
        let mut w = LedgerWriter::open(&path).unwrap();
        w.record(std::slice::from_ref(&batch)).unwrap();
        let err = check(&info).unwrap_err().to_string();
        assert!(err.contains("changed after its load"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
