//! Point-in-time recovery of the target tables: the pre-flight check of
//! `migration.pointInTimeRecovery` (warn, require or enable it before the
//! first write) and the restorable window each load records, the second way
//! back after rollback (README "The night of the migration").

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{PointInTimeRecoverySpecification, PointInTimeRecoveryStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::PitrMode;
use crate::dynamo::{RetryPolicy, retrying};
use crate::error::{Error, Result};

/// How long `enable` waits for the table to report recovery enabled.
const ENABLE_WAIT: Duration = Duration::from_secs(300);

/// A table's point-in-time recovery as DescribeContinuousBackups tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PitrWindow {
    pub enabled: bool,
    /// The earliest time the table can be restored to, when enabled.
    pub earliest_restorable: Option<DateTime<Utc>>,
    /// The latest time the table can be restored to, when enabled.
    pub latest_restorable: Option<DateTime<Utc>>,
}

/// What an endpoint without an operation answers.
const UNKNOWN_OPERATION: &str = "UnknownOperationException";

/// Reads `table`'s point-in-time recovery state and restorable window.
pub async fn window(client: &Client, table: &str, policy: &RetryPolicy) -> Result<PitrWindow> {
    // An endpoint without the API (dynalite) answers UnknownOperationException:
    // recovery is then off as far as `migrate` can tell (README "The night of
    // the migration"), which `warn` reports and `require` refuses.
    let out = retrying(
        policy,
        &format!("point-in-time recovery of table {table}"),
        || async {
            match client
                .describe_continuous_backups()
                .table_name(table)
                .send()
                .await
            {
                Err(e) if e.code() == Some(UNKNOWN_OPERATION) => Ok(None),
                other => other.map(Some),
            }
        },
    )
    .await?;
    let Some(out) = out else {
        tracing::warn!(
            "the endpoint does not implement point-in-time recovery ({UNKNOWN_OPERATION} for \
             table {table}): treated as off"
        );
        return Ok(PitrWindow::default());
    };
    let pitr = out
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description());
    let time = |t: Option<&aws_smithy_types::DateTime>| {
        t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
    };
    Ok(PitrWindow {
        enabled: pitr.and_then(|p| p.point_in_time_recovery_status())
            == Some(&PointInTimeRecoveryStatus::Enabled),
        earliest_restorable: time(pitr.and_then(|p| p.earliest_restorable_date_time())),
        latest_restorable: time(pitr.and_then(|p| p.latest_restorable_date_time())),
    })
}

/// The pre-flight check before a load: every table of the command is held
/// to `mode`. `dry_run` reports what `enable` would do without doing it.
/// Returns each table's state after the check.
pub async fn preflight(
    client: &Client,
    tables: &[String],
    mode: PitrMode,
    dry_run: bool,
    policy: &RetryPolicy,
) -> Result<BTreeMap<String, PitrWindow>> {
    let mut states = BTreeMap::new();
    for table in tables {
        if !states.contains_key(table) {
            states.insert(table.clone(), window(client, table, policy).await?);
        }
    }
    let off: Vec<&String> = states
        .iter()
        .filter(|(_, w)| !w.enabled)
        .map(|(t, _)| t)
        .collect();
    if off.is_empty() {
        tracing::info!("point-in-time recovery is on for every table");
        return Ok(states);
    }
    let names = off
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match mode {
        PitrMode::Warn => {
            tracing::warn!(
                "point-in-time recovery is off for table(s) {names}: a restore to a point in time will not be \
                 possible (set migration.pointInTimeRecovery to \"enable\" to turn it on before the load)"
            );
        }
        PitrMode::Require => {
            return Err(Error::Preflight(format!(
                "point-in-time recovery is off for table(s) {names} and migration.pointInTimeRecovery is \
                 \"require\": turn it on (or set it to \"enable\") before loading"
            )));
        }
        PitrMode::Enable if dry_run => {
            tracing::info!(
                "point-in-time recovery is off for table(s) {names}: the load will turn it on first"
            );
        }
        PitrMode::Enable => {
            for table in off.into_iter().cloned().collect::<Vec<_>>() {
                let w = enable(client, &table, policy).await?;
                states.insert(table, w);
            }
        }
    }
    Ok(states)
}

/// Turns point-in-time recovery on and waits until the table reports it.
async fn enable(client: &Client, table: &str, policy: &RetryPolicy) -> Result<PitrWindow> {
    tracing::info!("turning on point-in-time recovery for table {table}");
    let spec = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .map_err(|e| Error::target(format!("point-in-time recovery of {table}: {e}")))?;
    retrying(
        policy,
        &format!("turning on point-in-time recovery of table {table}"),
        || {
            client
                .update_continuous_backups()
                .table_name(table)
                .point_in_time_recovery_specification(spec.clone())
                .send()
        },
    )
    .await?;
    let deadline = tokio::time::Instant::now() + ENABLE_WAIT;
    loop {
        let w = window(client, table, policy).await?;
        if w.enabled {
            return Ok(w);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::target(format!(
                "point-in-time recovery of table {table} was requested but is still not enabled after {} s",
                ENABLE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
