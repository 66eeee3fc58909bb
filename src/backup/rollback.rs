//! `migrate rollback --entity E`: every key the entity's ledgers name is put
//! back as the pinned baseline has it (restored from the backup's bytes, or
//! deleted when the baseline did not have it), but only where the table
//! still holds what the migration wrote. An item changed since (drift) is
//! left alone and listed in `data/reports/rollback_report.json`, unless
//! `--force`. Each key is read before it is touched, so a rollback stopped
//! by Ctrl-C (or anything else) is finished by running it again; its
//! progress is in the checkpoint for `migrate status`.

use std::sync::Arc;

use crate::report::sections;
use chrono::Utc;

use super::{confirm, ledger};
use crate::artifact::ArtifactReader;
use crate::checkpoint::{Baseline, Checkpoint, RollbackState, State};
use crate::ctx::Ctx;
use crate::entities::Entity;
use crate::error::{Error, Result};

use super::revert::{Drift, revert};

/// What the operator asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Do not ask for confirmation.
    pub yes: bool,
    /// Revert items changed since the load too.
    pub force: bool,
    /// Undo only the last load, a sync, back to its before-images.
    pub last: bool,
}

/// What a rollback did.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    pub entity: String,
    pub table: String,
    pub backup: String,
    /// Keys the ledgers name.
    pub checked: u64,
    pub deleted: u64,
    pub restored: u64,
    /// Keys already as the baseline has them.
    pub unchanged: u64,
    pub drift: u64,
    pub forced: bool,
    pub failed: u64,
    /// Every drifted key, one JSON line each.
    pub drift_file: String,
}

/// `migrate rollback --entity E`.
pub async fn rollback_command(
    config: crate::config::Config,
    data_dir: std::path::PathBuf,
    progress: crate::progress::Progress,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    entity: &Entity,
    options: Options,
) -> Result<RollbackReport> {
    let run_id = format!("rollback-{}", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let ctx = Ctx::standalone(config, data_dir, progress, cancel, run_id);
    rollback(&ctx, entity, options).await
}

/// Puts `entity`'s table back to its baseline.
pub async fn rollback(ctx: &Ctx, entity: &Entity, options: Options) -> Result<RollbackReport> {
    let name = entity.name;
    let mut cp = Checkpoint::load(&ctx.data_dir)?.ok_or_else(|| {
        Error::Checkpoint(format!(
            "{} has no checkpoint: nothing was loaded",
            ctx.data_dir.display()
        ))
    })?;
    let pinned = cp.baselines.get(name).cloned().ok_or_else(|| {
        Error::Checkpoint(format!(
            "{name} has no rollback baseline in {}: it was never loaded from this data directory",
            ctx.data_dir.join(Checkpoint::FILE).display()
        ))
    })?;
    if let (false, Some(created)) = (options.last, &pinned.created_by_import) {
        let table = ctx.table(entity)?.to_string();
        let items =
            super::created::drop_table(ctx, &mut cp, name, &table, created, options.yes).await?;
        return Ok(RollbackReport {
            entity: name.into(),
            backup: "(none: an S3 import created the table)".into(),
            checked: items,
            deleted: items,
            table,
            ..RollbackReport::default()
        });
    }
    let baseline = if options.last {
        last_sync(name, &pinned)?
    } else {
        pinned
    };
    let backup = baseline.backup.clone().ok_or_else(|| {
        Error::Checkpoint(format!(
            "the first load of {name} took no backup (backupBeforeLoad was false): there is no baseline \
             to roll back to"
        ))
    })?;
    let table = ctx.table(entity)?.to_string();
    if backup.table != table {
        return Err(Error::Checkpoint(format!(
            "the baseline of {name} is a backup of table {}, but the configuration names table {table}",
            backup.table
        )));
    }
    let manifest = ArtifactReader::verify(&backup.path)?;
    if manifest.sha256 != backup.sha256 {
        return Err(Error::Checkpoint(format!(
            "backup {} has SHA-256 {} but the checkpoint recorded {}: it is not the backup the load took; \
             refusing to roll back",
            backup.path.display(),
            manifest.sha256,
            backup.sha256
        )));
    }
    for l in &baseline.ledgers {
        ledger::check(l)?;
    }
    confirm(
        options.yes,
        "rollback",
        &format!(
            "Roll back {name} in table {table} to {} of {} ({} items, {}): every item the \
             {} load(s) since wrote is deleted or restored{}.",
            if options.last {
                "the state before its last sync"
            } else {
                "its baseline"
            },
            backup.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
            backup.items,
            backup.path.display(),
            baseline.ledgers.len(),
            if options.force {
                ", even where it changed since (--force)"
            } else {
                "; items changed since are left alone"
            }
        ),
    )?;

    let mut state = RollbackState::running(&ctx.run_id, 0, options.force);
    cp.rollbacks.insert(name.to_string(), state.clone());
    cp.save()?;
    let drift_path = ctx.report(&format!("rollback/{name}-drift.jsonl"));
    let mut drift = Drift::create(&drift_path)?;
    let result = revert(
        ctx,
        &mut cp,
        name,
        &baseline,
        &table,
        options.force,
        &mut state,
        &mut drift,
    )
    .await;
    state.finished_at = Some(Utc::now());
    state.state = match &result {
        Ok(()) => State::Done,
        Err(Error::Interrupted(_)) => State::Interrupted,
        Err(_) => State::Failed,
    };
    state.error = result.as_ref().err().map(|e| e.to_string());
    cp.rollbacks.insert(name.to_string(), state.clone());
    cp.save()?;
    let examples = drift.finish()?;
    let report = RollbackReport {
        entity: name.into(),
        table: table.clone(),
        backup: backup.path.display().to_string(),
        checked: state.checked,
        deleted: state.deleted,
        restored: state.restored,
        unchanged: state.unchanged,
        drift: state.drift,
        forced: options.force,
        failed: state.failed,
        drift_file: drift_path.display().to_string(),
    };
    crate::report::update(
        &ctx.report("rollback_report.json"),
        &ctx.run_id,
        name,
        sections::Rollback {
            table: &table,
            state: state.state,
            scope: if options.last { "lastSync" } else { "baseline" },
            backup: &report.backup,
            backup_sha256: &backup.sha256,
            backup_arn: backup.backup_arn.as_deref(),
            baseline_pinned_at: baseline.pinned_at,
            ledgers: baseline
                .ledgers
                .iter()
                .map(|l| l.path.display().to_string())
                .collect(),
            checked: state.checked,
            total: state.total,
            deleted: state.deleted,
            restored: state.restored,
            unchanged: state.unchanged,
            drift: state.drift,
            forced: options.force,
            drift_items: &examples,
            drift_file: &report.drift_file,
            failed: state.failed,
            error: state.error.as_deref(),
            at: Utc::now().to_rfc3339(),
        },
    )?;
    result?;
    if state.failed > 0 {
        return Err(Error::Incomplete(format!(
            "rollback of {name}: {} writes failed after every retry; run it again",
            state.failed
        )));
    }
    Ok(report)
}

/// What `rollback --last` goes back to: the last sync's before-images as
/// the backup and its run's ledger as the only ledger. Refused when a load
/// wrote to the table after that sync, or there was none.
fn last_sync(name: &str, pinned: &Baseline) -> Result<Baseline> {
    let sync = pinned.last_sync.as_ref().ok_or_else(|| {
        Error::Checkpoint(format!(
            "{name} has no sync since its baseline: `rollback --last` undoes a sync; \
             `migrate rollback --entity {name}` goes back to the baseline"
        ))
    })?;
    let last = pinned.ledgers.last().filter(|l| l.run_id == sync.run_id);
    let ledger = last.cloned().ok_or_else(|| {
        Error::Checkpoint(format!(
            "a load (run {}) wrote to {name} after its last sync (run {}): `rollback --last` undoes \
             only the latest load, and only when it is a sync; `migrate rollback --entity {name}` \
             goes back to the baseline",
            pinned.ledgers.last().map_or("?", |l| l.run_id.as_str()),
            sync.run_id
        ))
    })?;
    Ok(Baseline {
        backup: Some(sync.before.clone()),
        pinned_at: sync.before.taken_at,
        run_id: sync.run_id.clone(),
        ledgers: vec![ledger],
        last_sync: None,
        created_by_import: None,
    })
}
