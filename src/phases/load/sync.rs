//! Load in sync mode, its first half: the difference between the validated
//! artifact and the table (docs/cutover.md). The artifact is read into a
//! sorted list of (key, fingerprint) pairs, 24 bytes an item; one consistent
//! parallel Scan of the entity's items looks each one up:
//!
//! - same key, same fingerprint: **unchanged**, no write;
//! - same key, another fingerprint: **changed**, put;
//! - key not in the artifact, the migration's (`backup::owned`): **deleted**;
//! - key not in the artifact, not the migration's: **foreign**, never touched;
//! - artifact keys the Scan never saw: **new**, put.
//!
//! The result is written as the changes artifact
//! `data/changes/<entity>.jsonl` (`{"delete":{"PK":…,"SK":…}}` lines, then
//! `{"put":<item as validated>}` lines) with its manifest, and the items as
//! the Scan found them that the changes overwrite or delete are written as
//! the sync's before-images, `data/backups/<entity>-<run>.sync.jsonl`, for
//! `rollback --last`. The second half, applying the changes, is the load's
//! own pipeline.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::artifact::{ArtifactReader, ArtifactWriter};
use crate::backup::owned::Owned;
use crate::backup::{backup_dir, wire_key};
use crate::checkpoint::{BackupInfo, Phase, SyncCounts};
use crate::ctx::Ctx;
use crate::dynamo::{self, RetryPolicy, Write};
use crate::entities::Entity;
use crate::entities::table::Index;
use crate::error::{Error, Result};
use crate::fingerprint::key_hash;
use crate::fingerprint::{self, short};
use crate::json::{Obj, Val};

/// What the difference came to.
pub struct Diff {
    pub counts: SyncCounts,
    /// The changes artifact and its SHA-256.
    pub changes: PathBuf,
    pub changes_sha256: String,
    /// The before-images (`None` for a dry run, which writes none).
    pub before: Option<BackupInfo>,
}

/// `data/changes/<entity>.jsonl`.
pub fn changes_path(ctx: &Ctx, entity: &str) -> PathBuf {
    ctx.data_dir.join("changes").join(format!("{entity}.jsonl"))
}

/// Where an artifact item stands after the Scan.
const UNSEEN: u8 = 0;
const SAME: u8 = 1;
const CHANGED: u8 = 2;

/// Computes the difference of `entity` with its table and writes it (and,
/// unless `dry_run`, the before-images).
pub async fn diff(
    ctx: &Ctx,
    entity: &Entity,
    table: &str,
    policy: &RetryPolicy,
    dry_run: bool,
) -> Result<Diff> {
    let name = entity.name;
    let input = ctx.artifact(Phase::Validate, name);
    let reader = ArtifactReader::open(&input)?;
    // Pass 2 reads the same file again, checked once (here) not twice.
    let mut second = reader.reopen()?;
    let records = reader.manifest().records;
    // Pass 1 on a worker thread: (key hash, fingerprint), sorted by key.
    let expected = tokio::task::spawn_blocking(move || expected(reader))
        .await
        .map_err(|e| Error::Incomplete(format!("the artifact reader of {name} failed: {e}")))??;
    let owned = Owned::load(&ctx.data_dir, entity)?;

    let changes = changes_path(ctx, name);
    let mut out = ArtifactWriter::create(&changes, &ctx.run_id, "sync", name)?;
    let before_path = backup_dir(&ctx.data_dir).join(format!("{name}-{}.sync.jsonl", ctx.run_id));
    let mut before = if dry_run {
        None
    } else {
        Some(ArtifactWriter::create(
            &before_path,
            &ctx.run_id,
            "backup",
            name,
        )?)
    };
    let mut state = vec![UNSEEN; expected.len()];
    let mut counts = SyncCounts::default();

    let bar = ctx.progress.bar(name, "sync diff", Some(records));
    let mut pages = dynamo::scan(
        &ctx.target().await,
        table,
        ctx.config.migration.scan_segments,
        Some(entity.key_prefix),
        false,
        policy,
    );
    while let Some(page) = pages.recv().await {
        if ctx.cancelled() {
            return Err(Error::Interrupted(format!(
                "the sync of {name} stopped while comparing with the table, before any write; \
                 run `migrate --resume` to start it again"
            )));
        }
        let page = page?;
        for wire in page.items() {
            let item = Obj::parse(wire)
                .map_err(|e| Error::target(format!("scan of {table}: an item is not JSON: {e}")))?;
            let (pk, sk) = wire_key(&item);
            let (pk, sk) = (pk.unwrap_or_default(), sk.unwrap_or_default());
            let kh = key_hash(pk, sk);
            match expected.binary_search_by_key(&kh, |e| e.0) {
                Ok(i) if expected[i].1 == short(fingerprint::of_wire(&item)) => state[i] = SAME,
                Ok(i) => {
                    state[i] = CHANGED;
                    if let Some(b) = before.as_mut() {
                        b.write_raw_line(wire.as_bytes())?;
                    }
                }
                Err(_) if owned.owns(pk, sk, wire_s(&item, "createdBy")) => {
                    counts.deleted += 1;
                    if let Some(b) = before.as_mut() {
                        b.write_raw_line(wire.as_bytes())?;
                    }
                    let key = serde_json::json!({"PK": pk, "SK": sk});
                    out.write(&serde_json::json!({ "delete": key }))?;
                }
                Err(_) => counts.foreign += 1,
            }
        }
        bar.inc(page.len() as u64);
    }
    bar.finish();

    // Pass 2: the puts, each line as validated.
    let reader = &mut second;
    let mut buf = String::new();
    let mut line = Vec::new();
    while reader.next_line(&mut buf)? {
        let item = Obj::parse(&buf)
            .map_err(|e| Error::artifact(&input, format!("line {}: {e}", reader.line_no())))?;
        let (pk, sk) = (item.str("PK").unwrap_or(""), item.str("SK").unwrap_or(""));
        let i = expected
            .binary_search_by_key(&key_hash(pk, sk), |e| e.0)
            .map_err(|_| {
                Error::artifact(
                    &input,
                    "changed while the sync compared it with the table".to_string(),
                )
            })?;
        match state[i] {
            SAME => {
                counts.unchanged += 1;
                continue;
            }
            CHANGED => counts.changed += 1,
            _ => counts.new += 1,
        }
        line.clear();
        line.extend_from_slice(br#"{"put":"#);
        line.extend_from_slice(buf.as_bytes());
        line.push(b'}');
        out.write_raw_line(&line)?;
    }
    let manifest = out.finish()?;
    let before = match before {
        Some(b) => {
            let m = b.finish()?;
            Some(BackupInfo {
                table: table.to_string(),
                path: before_path,
                items: m.records,
                sha256: m.sha256,
                backup_arn: None,
                taken_at: chrono::Utc::now(),
            })
        }
        None => None,
    };
    tracing::info!(
        "{name}: sync against {table}: {} new, {} changed, {} unchanged, {} to delete, {} foreign ({} keys in the ledgers)",
        counts.new,
        counts.changed,
        counts.unchanged,
        counts.deleted,
        counts.foreign,
        owned.len()
    );
    Ok(Diff {
        counts,
        changes,
        changes_sha256: manifest.sha256,
        before,
    })
}

/// The validated artifact's (key hash, fingerprint) pairs, sorted by key.
fn expected(mut reader: ArtifactReader) -> Result<Vec<(u128, u64)>> {
    let mut out = Vec::with_capacity(reader.manifest().records as usize);
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        let item = Obj::parse(&buf).map_err(|e| {
            Error::artifact(reader.path(), format!("line {}: {e}", reader.line_no()))
        })?;
        let kh = key_hash(item.str("PK").unwrap_or(""), item.str("SK").unwrap_or(""));
        out.push((kh, short(fingerprint::of_line(&item))));
    }
    out.sort_unstable_by_key(|e| e.0);
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::artifact(
            reader.path(),
            format!(
                "two items share a key (hash {:032x}): validate lets no duplicate through; \
                 run validate again",
                w[0].0
            ),
        ));
    }
    Ok(out)
}

/// A string attribute of an item in wire JSON.
fn wire_s<'a>(item: &'a Obj<'_>, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        Val::Obj(o) => o.str("S"),
        _ => None,
    }
}

/// One line of the changes artifact.
#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow)]
    put: Option<&'a RawValue>,
    delete: Option<crate::entities::Item>,
}

/// The write a line of the changes artifact asks for.
pub fn write_of(line: &str, indexes: &'static [Index]) -> std::result::Result<Write, String> {
    let change: Change = serde_json::from_str(line).map_err(|e| e.to_string())?;
    match (change.put, change.delete) {
        (Some(item), None) => Write::put_json_in(item.get(), indexes).map_err(|e| e.to_string()),
        (None, Some(key)) => Ok(Write::delete_in(&key, indexes)),
        _ => Err("neither a put nor a delete".into()),
    }
}

/// The item text of a put line; `None` for a delete.
pub fn put_text(line: &str) -> std::result::Result<Option<&str>, String> {
    let change: Change = serde_json::from_str(line).map_err(|e| e.to_string())?;
    Ok(change.put.map(RawValue::get))
}

/// The item (a put) or the key (a delete) a changes line names.
#[cfg(test)]
fn item_of(line: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("put").or_else(|| v.get("delete")).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_lines_give_puts_and_deletes() {
        let put = r#"{"put":{"PK":"BUYER#1","SK":"METADATA","n":1.50}}"#;
        let w = write_of(put, &[]).unwrap();
        assert_eq!(
            w.item_wire(),
            Some(r#"{"PK":{"S":"BUYER#1"},"SK":{"S":"METADATA"},"n":{"N":"1.50"}}"#)
        );
        let del = r#"{"delete":{"PK":"BUYER#2","SK":"METADATA"}}"#;
        let w = write_of(del, &[]).unwrap();
        assert!(w.item_wire().is_none());
        assert_eq!(w.describe_key(), "PK=BUYER#2, SK=METADATA");
        assert!(write_of(r#"{"other":1}"#, &[]).is_err());
        assert_eq!(item_of(del).unwrap()["PK"], "BUYER#2");
    }
}
