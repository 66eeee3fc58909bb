//! Backups, the ledger, the pinned baseline and rollback (docs/rollback.md).
//!
//! - [`export`]: before the migration first writes to an entity's table, the
//!   whole table is exported, in DynamoDB's own wire JSON, to
//!   `data/backups/<entity>-<run>.jsonl` (with a manifest); that export is the
//!   entity's *baseline*, pinned in the checkpoint until `migrate baseline
//!   reset` replaces it ([`baseline`]). A table an S3 import created has
//!   "no table" as its baseline: rolling back drops it ([`created`]).
//! - [`ledger`]: every load appends the key and a fingerprint of each item it
//!   sends to `data/backups/<entity>-<run>.ledger.jsonl`, durable before the
//!   writes are sent.
//! - [`rollback`]: `migrate rollback --entity E` puts every key the ledgers
//!   name back as the baseline has it, leaving alone what changed since.

pub mod baseline;
pub mod created;
pub mod export;
pub mod ledger;
pub mod owned;
mod revert;
pub mod rollback;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use chrono::Utc;

pub use baseline::reset_command;
pub use export::take;
pub use rollback::{Options, RollbackReport, rollback_command};

use crate::checkpoint::{Baseline, Checkpoint, LedgerInfo, Step};
use crate::ctx::Ctx;
use crate::dynamo::RetryPolicy;
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::json::{Obj, Val};

/// `data/backups`.
pub fn backup_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("backups")
}

/// The load's hook before its first write: pins the entity's baseline if it
/// has none (taking the backup), registers this run's ledger, and opens it.
/// The caller saves the checkpoint.
pub async fn before_load(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    entity: &Entity,
    table: &str,
    policy: &RetryPolicy,
    step: &mut Step,
) -> Result<ledger::LedgerWriter> {
    let name = entity.name;
    // The migration writes again: the last rollback no longer describes the table.
    cp.rollbacks.remove(name);
    match cp.baselines.get(name) {
        Some(b) => tracing::info!(
            "{name}: keeping the baseline pinned at {} by run {} (no new backup; `migrate baseline reset` replaces it)",
            b.pinned_at.format("%Y-%m-%d %H:%M:%S UTC"),
            b.run_id
        ),
        None => {
            let backup = if ctx.config.migration.backup_before_load {
                Some(export::take(ctx, table, name, policy).await?)
            } else {
                tracing::warn!(
                    "{name}: backupBeforeLoad is false: no backup, so no baseline to roll back to"
                );
                None
            };
            cp.baselines.insert(
                name.to_string(),
                Baseline {
                    backup,
                    pinned_at: Utc::now(),
                    run_id: ctx.run_id.clone(),
                    ledgers: Vec::new(),
                    last_sync: None,
                    created_by_import: None,
                },
            );
        }
    }
    let baseline = cp.baselines.get_mut(name).expect("inserted above");
    // Ledgers of loads that were killed are sealed as they were left.
    for l in baseline.ledgers.iter_mut() {
        if l.run_id != ctx.run_id && l.sha256.is_none() {
            ledger::seal(l)?;
        }
    }
    let path = ledger::path(&ctx.data_dir, name, &ctx.run_id);
    match baseline.ledgers.iter_mut().find(|l| l.run_id == ctx.run_id) {
        // A resumed load appends to its ledger: sealed again when it stops.
        Some(l) => {
            l.lines = None;
            l.sha256 = None;
        }
        None => baseline.ledgers.push(LedgerInfo {
            run_id: ctx.run_id.clone(),
            path: path.clone(),
            lines: None,
            sha256: None,
        }),
    }
    step.backup = baseline.backup.clone();
    ledger::LedgerWriter::open(&path)
}

/// The load's hook when it stops (done, failed or interrupted): records the
/// ledger's size and SHA-256. The caller saves the checkpoint.
pub fn after_load(cp: &mut Checkpoint, entity: &str, run_id: &str) -> Result<()> {
    if let Some(l) = cp
        .baselines
        .get_mut(entity)
        .and_then(|b| b.ledgers.iter_mut().find(|l| l.run_id == run_id))
    {
        ledger::seal(l)?;
    }
    Ok(())
}

/// A line of a backup, parsed in place.
pub(crate) fn wire_line<'a>(path: &Path, line_no: u64, text: &'a str) -> Result<Obj<'a>> {
    Obj::parse(text)
        .map_err(|e| Error::artifact(path, format!("line {line_no}: not a DynamoDB item: {e}")))
}

/// `PK` and `SK` of an item in wire JSON (`{"PK":{"S":"…"},…}`).
pub(crate) fn wire_key<'a>(item: &'a Obj<'_>) -> (Option<&'a str>, Option<&'a str>) {
    let s = |name: &str| match item.get(name)? {
        Val::Obj(o) => o.str("S"),
        _ => None,
    };
    (s("PK"), s("SK"))
}

/// Asks the operator to type `yes` (or takes `--yes`).
pub(crate) fn confirm(yes: bool, what: &str, question: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{what} changes the table: confirm on a terminal, or pass --yes"
        )));
    }
    eprint!("{question} Type 'yes' to go on: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::io("stdin", e))?;
    if answer.trim() != "yes" {
        return Err(Error::Usage(format!(
            "{what} not confirmed; nothing changed"
        )));
    }
    Ok(())
}
