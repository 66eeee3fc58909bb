//! Describing a table over the seam (retried), and the table check before
//! any write: the table exists with the key schema every entity uses.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{KeyType, ScalarAttributeType, TableDescription};

use crate::error::{Error, Result};

use super::*;

/// The table's description, `None` when it does not exist; throttles and
/// transient failures are retried.
pub async fn describe_table(
    target: &dyn Target,
    table: &str,
    policy: &RetryPolicy,
) -> Result<Option<TableDescription>> {
    retry_failed(policy, &format!("DescribeTable {table}"), || {
        target.describe(table)
    })
    .await
}

/// Checks that `table` exists with key schema `PK` (S, HASH) + `SK` (S, RANGE).
pub async fn check_table(target: &dyn Target, table: &str, policy: &RetryPolicy) -> Result<()> {
    let desc = describe_table(target, table, policy)
        .await?
        .ok_or_else(|| {
            Error::target(format!(
                "table {table} does not exist (at the configured endpoint and region)"
            ))
        })?;
    let types: HashMap<&str, &ScalarAttributeType> = desc
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name(), a.attribute_type()))
        .collect();
    let keys: Vec<(&str, &KeyType)> = desc
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    let ok = keys.len() == 2
        && keys.contains(&("PK", &KeyType::Hash))
        && keys.contains(&("SK", &KeyType::Range))
        && types.get("PK") == Some(&&ScalarAttributeType::S)
        && types.get("SK") == Some(&&ScalarAttributeType::S);
    if !ok {
        return Err(Error::target(format!(
            "table {table} does not have the expected key schema PK (S, HASH) + SK (S, RANGE): found {keys:?}"
        )));
    }
    Ok(())
}
