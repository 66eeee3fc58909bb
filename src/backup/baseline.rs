//! `migrate baseline reset --entity E`: the operator accepts the table as it
//! is now as the entity's new baseline. A fresh backup is taken and pinned,
//! and the ledgers of the earlier loads are no longer used (their files stay
//! on disk); later rollbacks go back to this state.

use std::sync::Arc;

use chrono::Utc;

use super::{confirm, export};
use crate::checkpoint::{Baseline, Checkpoint};
use crate::ctx::Ctx;
use crate::dynamo::{self, RetryPolicy};
use crate::entities::Entity;
use crate::error::Result;

/// `migrate baseline reset --entity E`; returns the new baseline.
pub async fn reset_command(
    config: crate::config::Config,
    data_dir: std::path::PathBuf,
    progress: crate::progress::Progress,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    entity: &Entity,
    yes: bool,
) -> Result<Baseline> {
    let run_id = format!("baseline-{}", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let ctx = Ctx::standalone(config, data_dir, progress, cancel, run_id);
    let name = entity.name;
    crate::artifact::create_private_dir(&ctx.data_dir)?;
    let mut cp =
        Checkpoint::load(&ctx.data_dir)?.unwrap_or_else(|| Checkpoint::empty(&ctx.data_dir));
    let table = ctx.table(entity)?.to_string();
    let old = cp.baselines.get(name);
    let question = match old {
        Some(b) => format!(
            "Replace the baseline of {name} pinned at {} (run {}, {} load ledger(s) since) with table {table} \
             as it is now? A later rollback will no longer go back before this moment.",
            b.pinned_at.format("%Y-%m-%d %H:%M:%S UTC"),
            b.run_id,
            b.ledgers.len()
        ),
        None => format!("Pin table {table} as it is now as the baseline of {name}?"),
    };
    confirm(yes, "baseline reset", &question)?;
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    dynamo::check_table(&*ctx.target().await, &table, &policy).await?;
    let backup = export::take(&ctx, &table, name, &policy).await?;
    let baseline = Baseline {
        backup: Some(backup),
        pinned_at: Utc::now(),
        run_id: ctx.run_id.clone(),
        ledgers: Vec::new(),
        last_sync: None,
        created_by_import: None,
    };
    if let Some(old) = cp.baselines.insert(name.to_string(), baseline.clone()) {
        tracing::info!(
            "{name}: baseline of run {} replaced; its backup {} and ledgers stay on disk",
            old.run_id,
            old.backup
                .map(|b| b.path.display().to_string())
                .unwrap_or_else(|| "(none)".into())
        );
    }
    // The table as it is now is the reference: no rollback is pending.
    cp.rollbacks.remove(name);
    cp.save()?;
    Ok(baseline)
}
