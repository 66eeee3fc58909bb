//! Rolling back a table an S3 import created (docs/import.md): the
//! baseline is "no table", so going back to it is deleting the table, with
//! everything written to it since (the import's items and any later sync).
//! Asked for on a terminal like every rollback; recorded in the checkpoint
//! and `data/reports/rollback_report.json`.

use std::time::Duration;

use chrono::Utc;

use super::confirm;
use crate::checkpoint::{Checkpoint, RollbackState, State};
use crate::ctx::Ctx;
use crate::dynamo::RetryPolicy;
use crate::error::{Error, Result};
use crate::import::state::Created;
use crate::report::sections;
use crate::tables;

/// How long DeleteTable may take before the rollback gives up waiting.
const DELETE_WAIT: Duration = Duration::from_secs(600);

/// Deletes the table `created` describes (`yes`: without asking);
/// returns the items it held, as DescribeTable counted them.
pub async fn drop_table(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    name: &str,
    table: &str,
    created: &Created,
    yes: bool,
) -> Result<u64> {
    if created.table != table {
        return Err(Error::Checkpoint(format!(
            "the baseline of {name} is table {}, created by an S3 import, but the configuration names table {table}",
            created.table
        )));
    }
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let target = ctx.target().await;
    let items = crate::dynamo::describe_table(&*target, table, &policy)
        .await?
        .map(|d| d.item_count().unwrap_or(0).max(0) as u64);
    let Some(items) = items else {
        tracing::info!("{name}: table {table} does not exist: nothing to roll back");
        return Ok(0);
    };
    confirm(
        yes,
        "rollback",
        &format!(
            "Roll back {name}: table {table} did not exist before the migration; the S3 import of run {} \
             ({}) created it. Rolling back DELETES THE TABLE and every item in it (about {items}, as \
             DescribeTable counts them).",
            created.run_id,
            created
                .import_arn
                .as_deref()
                .unwrap_or("import ARN not recorded"),
        ),
    )?;
    let mut state = RollbackState::running(&ctx.run_id, items, false);
    cp.rollbacks.insert(name.to_string(), state.clone());
    cp.save()?;
    let result = tables::delete(&*target, table, DELETE_WAIT, &policy).await;
    state.finished_at = Some(Utc::now());
    state.state = if result.is_ok() {
        State::Done
    } else {
        State::Failed
    };
    if result.is_ok() {
        state.checked = items;
        state.deleted = items;
    }
    state.error = result.as_ref().err().map(|e| e.to_string());
    cp.rollbacks.insert(name.to_string(), state.clone());
    cp.save()?;
    crate::report::update(
        &ctx.report("rollback_report.json"),
        &ctx.run_id,
        name,
        sections::TableDropped {
            table,
            state: state.state,
            scope: "createdTable",
            table_deleted: result.is_ok(),
            import_arn: created.import_arn.as_deref(),
            import_run_id: &created.run_id,
            deleted: state.deleted,
            error: state.error.as_deref(),
            at: Utc::now().to_rfc3339(),
        },
    )?;
    result?;
    tracing::info!("{name}: table {table} deleted ({items} items): back to the baseline, no table");
    Ok(items)
}
