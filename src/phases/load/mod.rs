//! Load: the validated artifact into DynamoDB. Backup first (the entity's
//! baseline, once; docs/rollback.md); in sync mode only the difference with
//! the table ([`sync`], docs/cutover.md); every write recorded in the
//! ledger before it is sent,
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use super::{Outcome, Unit};
use crate::artifact::ArtifactReader;
use crate::backup;
use crate::checkpoint::{Checkpoint, LastSync, Phase, Step, SyncInfo};
use crate::config::{LoadMode, LoadVia};
use crate::ctx::Ctx;
use crate::dynamo::{CallCounts, CallStats, RetryPolicy, Write};
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::pipeline::{self, Batch, Batcher, Control, Ended};
use crate::report;

mod failed;
mod section;
pub mod sync;

use failed::{enrich_failed, keep_failed_before, open_append};
use section::{Rate, write_report};

const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Loads one entity.
pub async fn run(unit: Unit<'_>) -> Result<Outcome> {
    let Unit {
        ctx,
        cp,
        entity,
        step,
    } = unit;
    let problems = load(ctx, cp, entity, step).await?;
    // The load kept its counts in the step as it went (they are its
    // position); the outcome repeats them for the runner.
    Ok(Outcome {
        records_in: step.records_in,
        records_out: step.records_out,
        rejected: step.rejected,
        warnings: step.warnings,
        input_sha256: step.input_sha256.clone(),
        output_sha256: step.output_sha256.clone(),
        reasons: step.reasons.clone(),
        problems,
    })
}

async fn load(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    entity: &Entity,
    step: &mut Step,
) -> Result<Vec<String>> {
    // Through S3 import (docs/import.md); a resumed import stays one.
    if step.import.is_some() || ctx.config.target.load_via == LoadVia::S3Import {
        return crate::import::load(ctx, cp, entity, step).await;
    }
    let input = ctx.artifact(Phase::Validate, entity.name);
    // Checked against its manifest (SHA-256, size, lines) once, here; the
    // reader thread streams from this same open file.
    let artifact = ArtifactReader::open(&input)?;
    let manifest = artifact.manifest().clone();
    let resuming = step.confirmed.is_some();
    if resuming {
        artifact.check_unchanged(step.input_sha256.as_deref(), "load")?;
    }
    // A resumed load goes on in the mode it started in: its position counts
    // entries of the artifact that mode applies.
    let sync_mode = if resuming {
        step.sync.is_some()
    } else {
        ctx.config.migration.load_mode == LoadMode::Sync
    };
    if resuming && sync_mode != (ctx.config.migration.load_mode == LoadMode::Sync) {
        tracing::warn!(
            "{}: resuming the load in {} mode, the mode it started in",
            entity.name,
            if sync_mode { "sync" } else { "put" }
        );
    }
    step.input_sha256 = Some(manifest.sha256.clone());
    let start = step.confirmed.unwrap_or(0);
    let table = ctx.table(entity)?.to_string();
    let target = ctx.target().await;
    let policy = RetryPolicy::from_config(&ctx.config.migration);

    // Entries at or past the confirmed position are tried again: drop them.
    let failed_path = ctx.report(&format!("failed/{}.jsonl", entity.name));
    keep_failed_before(&failed_path, start)?;
    if !resuming {
        step.written = Some(0);
        step.failed = Some(0);
        step.counts = Some(CallCounts::default());
        step.sync = None;
    }

    // The baseline (backup) and this run's ledger (docs/rollback.md).
    let ledger = backup::before_load(ctx, cp, entity, &table, &policy, step).await?;
    cp.put(entity.name, Phase::Load, step.clone())?;
    // A sync applies its changes artifact, computed before the first write
    // (docs/cutover.md); a resumed sync applies the same one.
    let applied = if sync_mode {
        let info = match step.sync.clone() {
            Some(info) => info,
            None => {
                let d = sync::diff(ctx, entity, &table, &policy, false).await?;
                let before = d.before.expect("a load writes before-images");
                if let Some(b) = cp.baselines.get_mut(entity.name) {
                    b.last_sync = Some(LastSync {
                        run_id: ctx.run_id.clone(),
                        before: before.clone(),
                    });
                }
                SyncInfo {
                    changes: d.changes,
                    changes_sha256: d.changes_sha256,
                    counts: d.counts,
                    before,
                }
            }
        };
        let changes = ArtifactReader::open(&info.changes)?;
        if changes.manifest().sha256 != info.changes_sha256 {
            return Err(Error::Checkpoint(format!(
                "{} is not the changes artifact this sync computed (SHA-256 {} now, {} then): \
                 refusing to apply it; start a new run instead",
                info.changes.display(),
                changes.manifest().sha256,
                info.changes_sha256
            )));
        }
        step.sync = Some(info);
        changes
    } else {
        artifact
    };
    let applied_path = applied.path().to_path_buf();
    let total = applied.manifest().records;
    step.records_in = total;
    step.confirmed = Some(start);
    cp.put(entity.name, Phase::Load, step.clone())?;
    if start > 0 {
        tracing::info!(
            "resuming the load of {} at entry {start} of {total} of {}",
            entity.name,
            applied_path.display()
        );
    }

    let bar = ctx.progress.bar(entity.name, "load", Some(total));
    bar.set_position(start);
    let batch_size = ctx.config.migration.batch_size;
    let (tx, rx) = pipeline::channel(ctx.config.migration.concurrency * 4);
    let indexes = entity.table.indexes;
    let reader = std::thread::spawn(move || {
        read_batches(applied, sync_mode, start, batch_size, indexes, tx, ledger)
    });

    let stats = Arc::new(CallStats::default());
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
    let achieved = |stats: &CallStats| {
        stats.counts().write_units as f64 / sending.elapsed().as_secs_f64().max(1.0)
    };

    let ended = pipeline::run(
        &*target,
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
                if let Err(e) = failed_file
                    .append(format!("{line}\n").as_bytes())
                    .and_then(|()| failed_file.sync())
                {
                    io_error.get_or_insert(e);
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
                if let Err(e) = cp.put(entity.name, Phase::Load, step.clone()) {
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
    backup::after_load(cp, entity.name, &ctx.run_id)?;

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
    step.pitr = match crate::pitr::window(ctx.dynamo().await, &table, &policy).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("the restorable window of {table} is not known: {e}");
            None
        }
    };
    cp.put(entity.name, Phase::Load, step.clone())?;
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
        entity.name,
        &sampler.finish(),
    )?;
    // Conservation: every confirmed item is written or recorded as failed.
    if written_total + failed_total != watermark {
        return Err(Error::Incomplete(format!(
            "load of {}: {written_total} items written and {failed_total} failed do not add up to the \
             {watermark} confirmed; refusing to finish",
            entity.name
        )));
    }

    let complete = watermark == total;
    match ended {
        Ended::Terminal(t) => Err(Error::target(t.message)),
        _ if ctx.cancelled() => Err(Error::Interrupted(format!(
            "load of {} stopped at item {watermark} of {total}; the checkpoint is saved: run `migrate --resume` to finish",
            entity.name,
        ))),
        Ended::Stopped if any_failed && !continue_on_error => {
            enrich_failed(&failed_path, &applied_path, sync_mode)?;
            Err(Error::Incomplete(format!(
                "load of {} stopped at the first item that could not be written (continueOnError is false); \
                 see {}",
                entity.name,
                failed_path.display()
            )))
        }
        _ => {
            read_result?;
            if !complete {
                return Err(Error::Incomplete(format!(
                    "load of {} ended at item {watermark} of {total}",
                    entity.name,
                )));
            }
            if failed_total > 0 {
                enrich_failed(&failed_path, &applied_path, sync_mode)?;
                Ok(vec![format!(
                    "{}: {failed_total} item(s) could not be written; see {}",
                    entity.name,
                    failed_path.display()
                )])
            } else {
                Ok(Vec::new())
            }
        }
    }
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

/// Streams the artifact applied (the validated one, or a sync's changes)
/// from entry `start` as batches; each chunk is recorded in the ledger
/// before it is sent. Each write's units count the entity's `indexes` it
/// appears in (the rate cap, docs/cutover.md).
fn read_batches(
    mut reader: ArtifactReader,
    changes: bool,
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
            let write = if changes {
                sync::write_of(&buf, indexes)
            } else {
                Write::put_json_in(&buf, indexes).map_err(|e| e.to_string())
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
