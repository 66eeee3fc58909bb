//! Load: the validated artifact into DynamoDB. Backup first (the entity's
//! baseline, once; docs/rollback.md), every item recorded in the ledger
//! before it is sent,
//! then batches of at most 25 items with `concurrency` in flight, retries
//! with backoff, and a checkpoint of how far the artifact is confirmed
//! written (every entry before it written or recorded as failed), saved every
//! two seconds. `--resume` starts from there; nothing is dropped silently:
//! items that still fail go to `data/reports/failed/<entity>.jsonl`.
//!
//! The checkpoint never passes an item that is neither written nor recorded
//! in the failed file: a batch whose failures could not be recorded stops
//! the load unconfirmed, and so does a batch with a failure when
//! `continueOnError` is false, so `--resume` tries it again
//! (docs/safety.md).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::artifact::{ArtifactReader, write_atomic};
use crate::backup;
use crate::checkpoint::{Checkpoint, Phase, Step};
use crate::ctx::Ctx;
use crate::dynamo::{RetryPolicy, Write, WriteCounts, WriteStats, key_of};
use crate::entities::{Entity, Item};
use crate::error::{Error, Result};
use crate::pipeline::{self, Batch, Batcher, Control, Ended};
use crate::report;

const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Loads one entity.
pub async fn run(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    entity: &dyn Entity,
    step: &mut Step,
) -> Result<Vec<String>> {
    let input = ctx.artifact(Phase::Validate, entity.name());
    // Checked against its manifest (SHA-256, size, lines) once, here; the
    // reader thread streams from this same open file.
    let artifact = ArtifactReader::open(&input)?;
    let manifest = artifact.manifest().clone();
    let resuming = step.confirmed.is_some();
    if resuming && step.input_sha256.as_deref() != Some(manifest.sha256.as_str()) {
        return Err(Error::Checkpoint(format!(
            "{} changed since this load started (SHA-256 {} now, {} then): refusing to resume over it; \
             start a new run instead",
            input.display(),
            manifest.sha256,
            step.input_sha256.as_deref().unwrap_or("unknown")
        )));
    }
    step.input_sha256 = Some(manifest.sha256.clone());
    step.records_in = manifest.records;
    let start = step.confirmed.unwrap_or(0);
    let table = ctx.table(entity)?.to_string();
    let client = ctx.dynamo().await.clone();
    let policy = RetryPolicy::from_config(&ctx.config.migration);

    // Entries at or past the confirmed position are tried again: drop them.
    let failed_path = ctx.report(&format!("failed/{}.jsonl", entity.name()));
    keep_failed_before(&failed_path, start)?;
    if !resuming {
        step.written = Some(0);
        step.failed = Some(0);
        step.counts = Some(WriteCounts::default());
    }

    // The baseline (backup) and this run's ledger (docs/rollback.md).
    let ledger = backup::before_load(ctx, cp, entity, &client, &table, &policy, step).await?;
    step.confirmed = Some(start);
    cp.put(entity.name(), Phase::Load, step.clone())?;
    if start > 0 {
        tracing::info!(
            "resuming the load of {} at item {start} of {}",
            entity.name(),
            manifest.records
        );
    }

    let bar = ctx
        .progress
        .bar(entity.name(), "load", Some(manifest.records));
    bar.set_position(start);
    let batch_size = ctx.config.migration.batch_size;
    let (tx, rx) = pipeline::channel(ctx.config.migration.concurrency * 4);
    let indexes = entity.table().indexes;
    let reader =
        std::thread::spawn(move || read_batches(artifact, start, batch_size, indexes, tx, ledger));

    let stats = Arc::new(WriteStats::default());
    let sampler = report::series::Sampler::start(stats.clone());
    let base_counts = step.counts.unwrap_or_default();
    let mut mark = Watermark::new(start, step.written.unwrap_or(0), step.failed.unwrap_or(0));
    let mut failed_file = open_append(&failed_path)?;
    let mut io_error: Option<Error> = None;
    let mut last_save = Instant::now();
    let mut any_failed = false;
    let continue_on_error = ctx.config.migration.continue_on_error;
    let cancelled = || ctx.cancelled();
    let sending = Instant::now();
    let cap = ctx.config.migration.max_write_units_per_second;
    // Over at least one second: the first batch alone is no rate.
    let achieved = |stats: &WriteStats| {
        stats.counts().write_units as f64 / sending.elapsed().as_secs_f64().max(1.0)
    };

    let ended = pipeline::run(
        &client,
        &table,
        &policy,
        ctx.config.migration.concurrency,
        ctx.config.migration.batch_delay,
        stats.clone(),
        rx,
        &cancelled,
        |done| {
            let mut recorded = true;
            for (index, error) in &done.outcome.failed {
                any_failed = true;
                let line = json!({"index": index, "table": table, "error": error});
                if let Err(e) =
                    writeln!(failed_file, "{line}").and_then(|_| failed_file.sync_data())
                {
                    io_error.get_or_insert(Error::io(&failed_path, e));
                    recorded = false;
                    break;
                }
            }
            let failed = done.outcome.failed.len() as u64;
            mark.batch(
                done.first,
                done.len,
                done.outcome.written,
                failed,
                recorded && (failed == 0 || continue_on_error),
            );
            bar.inc(done.len);
            sampler.add(done.len);
            let c = stats.counts();
            bar.set_errors(
                mark.failed + mark.unconfirmed_failed,
                format!(
                    "throttled {} 5xx {} timeouts {} retries {} · {:.0} WU/s{}",
                    c.throttled,
                    c.server_errors,
                    c.timeouts,
                    c.retries,
                    achieved(&stats),
                    cap.map(|n| format!(" (cap {n})")).unwrap_or_default()
                ),
            );
            if last_save.elapsed() >= SAVE_EVERY {
                last_save = Instant::now();
                step.confirmed = Some(mark.position);
                step.written = Some(mark.written);
                step.failed = Some(mark.failed);
                step.counts = Some(base_counts + stats.counts());
                if let Err(e) = cp.put(entity.name(), Phase::Load, step.clone()) {
                    io_error.get_or_insert(e);
                }
            }
            if io_error.is_some() || (any_failed && !continue_on_error) {
                Control::Stop
            } else {
                Control::Continue
            }
        },
    )
    .await;
    let read_result = reader
        .join()
        .unwrap_or_else(|_| Err(Error::Incomplete("the artifact reader panicked".into())));
    bar.finish();
    backup::after_load(cp, entity.name(), &ctx.run_id)?;

    let Watermark {
        position: watermark,
        written: written_total,
        failed: failed_total,
        unconfirmed_failed,
        ..
    } = mark;
    step.confirmed = Some(watermark);
    step.written = Some(written_total);
    step.failed = Some(failed_total);
    step.counts = Some(base_counts + stats.counts());
    step.records_out = written_total;
    step.rejected = failed_total;
    let c = step.counts.unwrap_or_default();
    step.reasons = [
        ("throttled", c.throttled),
        ("server_errors", c.server_errors),
        ("timeouts", c.timeouts),
        ("refused", c.refused),
        ("retries", c.retries),
    ]
    .into_iter()
    .filter(|(_, v)| *v > 0)
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    step.pitr = match crate::pitr::window(&client, &table, &policy).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("the restorable window of {table} is not known: {e}");
            None
        }
    };
    cp.put(entity.name(), Phase::Load, step.clone())?;
    if let Some(e) = io_error {
        return Err(e);
    }
    let rate = Rate {
        cap,
        units: stats.counts().write_units,
        per_second: achieved(&stats),
    };
    write_report(
        ctx,
        entity,
        &table,
        step,
        unconfirmed_failed,
        &failed_path,
        rate,
    )?;
    report::series::save(
        &ctx.report("load_report.json"),
        entity.name(),
        &sampler.finish(),
    )?;
    // Conservation: every confirmed item is written or recorded as failed.
    if written_total + failed_total != watermark {
        return Err(Error::Incomplete(format!(
            "load of {}: {written_total} items written and {failed_total} failed do not add up to the \
             {watermark} confirmed; refusing to finish",
            entity.name()
        )));
    }

    let complete = watermark == manifest.records;
    match ended {
        Ended::Terminal(t) => Err(Error::Target(t.message)),
        _ if ctx.cancelled() => Err(Error::Interrupted(format!(
            "load of {} stopped at item {watermark} of {}; the checkpoint is saved: run `migrate --resume` to finish",
            entity.name(),
            manifest.records
        ))),
        Ended::Stopped if any_failed && !continue_on_error => {
            enrich_failed(&failed_path, &input)?;
            Err(Error::Incomplete(format!(
                "load of {} stopped at the first item that could not be written (continueOnError is false); \
                 see {}",
                entity.name(),
                failed_path.display()
            )))
        }
        _ => {
            read_result?;
            if !complete {
                return Err(Error::Incomplete(format!(
                    "load of {} ended at item {watermark} of {}",
                    entity.name(),
                    manifest.records
                )));
            }
            if failed_total > 0 {
                enrich_failed(&failed_path, &input)?;
                Ok(vec![format!(
                    "{}: {failed_total} item(s) could not be written; see {}",
                    entity.name(),
                    failed_path.display()
                )])
            } else {
                Ok(Vec::new())
            }
        }
    }
}

/// The write units this command sent and the rate it achieved, beside the
/// cap (docs/cutover.md).
struct Rate {
    cap: Option<u64>,
    units: u64,
    per_second: f64,
}

fn write_report(
    ctx: &Ctx,
    entity: &dyn Entity,
    table: &str,
    step: &Step,
    unconfirmed_failed: u64,
    failed_path: &Path,
    rate: Rate,
) -> Result<()> {
    report::update(
        &ctx.report("load_report.json"),
        &ctx.run_id,
        entity.name(),
        json!({
            "table": table,
            "items": step.records_in,
            "confirmed": step.confirmed,
            "written": step.written,
            "failed": step.failed.unwrap_or(0) + unconfirmed_failed,
            "failedUnconfirmed": unconfirmed_failed,
            "failedFile": failed_path,
            "requests": step.counts.map(|c| c.requests),
            "throttled": step.counts.map(|c| c.throttled),
            "serverErrors": step.counts.map(|c| c.server_errors),
            "timeouts": step.counts.map(|c| c.timeouts),
            "unprocessedItems": step.counts.map(|c| c.unprocessed_items),
            "refused": step.counts.map(|c| c.refused),
            "retries": step.counts.map(|c| c.retries),
            "retryWaitMs": step.counts.map(|c| c.wait_ms),
            "writeUnits": step.counts.map(|c| c.write_units),
            "writeUnitsThisCommand": rate.units,
            "writeUnitsPerSecond": (rate.per_second * 10.0).round() / 10.0,
            "maxWriteUnitsPerSecond": rate.cap,
            "seconds": step.elapsed_secs(),
            "backup": step.backup,
            "pointInTimeRecovery": step.pitr,
        }),
    )
}

/// How far the artifact is confirmed. Batches finish in any order; the
/// position moves over those settled without a gap, so every item before it
/// is written or recorded as failed.
#[derive(Debug, Default)]
struct Watermark {
    /// Settled batches past the position: first index → (len, written, failed).
    settled: BTreeMap<u64, (u64, u64, u64)>,
    position: u64,
    written: u64,
    failed: u64,
    /// Failures recorded in the failed file but not confirmed
    /// (`continueOnError` false): reported, and tried again by `--resume`.
    unconfirmed_failed: u64,
}

impl Watermark {
    fn new(position: u64, written: u64, failed: u64) -> Watermark {
        Watermark {
            position,
            written,
            failed,
            ..Watermark::default()
        }
    }

    /// A finished batch. `settles` is false when one of its failures could
    /// not be recorded, or when it has failures and `continueOnError` is
    /// false: the position then never passes it.
    fn batch(&mut self, first: u64, len: u64, written: u64, failed: u64, settles: bool) {
        if !settles {
            self.unconfirmed_failed += failed;
            return;
        }
        self.settled.insert(first, (len, written, failed));
        while let Some((len, w, f)) = self.settled.remove(&self.position) {
            self.position += len;
            self.written += w;
            self.failed += f;
        }
    }
}

/// Streams the validated artifact from item `start` as batches; each chunk
/// is recorded in the ledger before it is sent. Each write's units count
/// the entity's `indexes` it appears in (the rate cap, docs/cutover.md).
fn read_batches(
    mut reader: ArtifactReader,
    start: u64,
    batch_size: usize,
    indexes: &'static [crate::entities::table::Index],
    tx: mpsc::Sender<Vec<Batch>>,
    ledger: backup::ledger::LedgerWriter,
) -> Result<()> {
    let path = reader.path().to_path_buf();
    let mut buf = String::new();
    let mut index = 0u64;
    let mut batcher = Batcher::new(tx, batch_size).before_send(ledger.into_hook());
    while reader.next_line(&mut buf)? {
        if index >= start {
            let write = Write::put_json_in(&buf, indexes)
                .map_err(|e| Error::artifact(&path, format!("line {}: {e}", index + 1)))?;
            if !batcher.push(index, write) {
                // the pipeline stopped, or the ledger could not be written
                return batcher.take_error().map_or(Ok(()), Err);
            }
        }
        index += 1;
    }
    batcher.finish()
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        crate::artifact::create_private_dir(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Keeps only the failed entries with index below `start` (a fresh load
/// starts an empty file; a resumed one drops entries it will retry).
fn keep_failed_before(path: &Path, start: u64) -> Result<()> {
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
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(f);
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

/// Adds each failed entry's key, legacy id and item from the artifact, so the
/// failed file stands on its own.
fn enrich_failed(failed_path: &Path, artifact: &Path) -> Result<()> {
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
            let item: Item = serde_json::from_str(&buf)
                .map_err(|e| Error::artifact(artifact, format!("line {}: {e}", index + 1)))?;
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

    #[test]
    fn the_watermark_never_passes_an_unsettled_batch() {
        let mut m = Watermark::new(100, 90, 10);
        // Out of order: 150.. settles first, the position waits for 125..
        m.batch(150, 25, 25, 0, true);
        assert_eq!(m.position, 100);
        m.batch(100, 25, 25, 0, true);
        assert_eq!(m.position, 125);
        // 125.. had a failure that could not be recorded (or continueOnError
        // is false): nothing after it is confirmed.
        m.batch(125, 25, 24, 1, false);
        m.batch(175, 25, 23, 2, true);
        assert_eq!(m.position, 125);
        assert_eq!((m.written, m.failed, m.unconfirmed_failed), (115, 10, 1));
        assert_eq!(m.written + m.failed, m.position, "conservation");
    }
}
