//! The load's section of `data/reports/load_report.json` (docs/report.md):
//! counts, retries, the write rate against its cap, the backup, the
//! restorable window and a sync's difference, from the step as the load
//! leaves it.

use std::path::Path;

use crate::checkpoint::Step;
use crate::ctx::Ctx;
use crate::entities::Entity;
use crate::error::Result;
use crate::report::{self, sections};

/// The write units this command sent and the rate it achieved, beside the
/// cap (docs/cutover.md).
pub(super) struct Rate {
    pub cap: Option<u64>,
    pub units: u64,
    pub per_second: f64,
}

/// Writes the entity's section of `load_report.json`.
pub(super) fn write_report(
    ctx: &Ctx,
    entity: &Entity,
    table: &str,
    step: &Step,
    unconfirmed_failed: u64,
    failed_path: &Path,
    rate: Rate,
) -> Result<()> {
    report::update(
        &ctx.report("load_report.json"),
        &ctx.run_id,
        entity.name,
        sections::Load {
            table,
            mode: if step.sync.is_some() { "sync" } else { "put" },
            items: step.records_in,
            confirmed: step.confirmed,
            written: step.written,
            failed: step.failed.unwrap_or(0) + unconfirmed_failed,
            failed_unconfirmed: unconfirmed_failed,
            failed_file: failed_path,
            requests: step.counts.map(|c| c.requests),
            throttled: step.counts.map(|c| c.throttled),
            server_errors: step.counts.map(|c| c.server_errors),
            timeouts: step.counts.map(|c| c.timeouts),
            unprocessed_items: step.counts.map(|c| c.unprocessed_items),
            refused: step.counts.map(|c| c.refused),
            retries: step.counts.map(|c| c.retries),
            retry_wait_ms: step.counts.map(|c| c.wait_ms),
            write_units: step.counts.map(|c| c.write_units),
            write_units_this_command: rate.units,
            write_units_per_second: (rate.per_second * 10.0).round() / 10.0,
            max_write_units_per_second: rate.cap,
            seconds: step.elapsed_secs(),
            backup: step.backup.as_ref(),
            point_in_time_recovery: step.pitr.as_ref(),
            sync: step.sync.as_ref().map(|s| sections::LoadSync {
                new: s.counts.new,
                changed: s.counts.changed,
                unchanged: s.counts.unchanged,
                deleted: s.counts.deleted,
                foreign: s.counts.foreign,
                changes_file: &s.changes,
                before_images: &s.before.path,
            }),
        },
    )
}
