//! The table check before any write: the table exists with the key
//! schema every entity uses.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{KeyType, ScalarAttributeType};

use crate::error::{Error, Result};

use super::*;

/// Checks that `table` exists with key schema `PK` (S, HASH) + `SK` (S, RANGE).
pub async fn check_table(client: &Client, table: &str, policy: &RetryPolicy) -> Result<()> {
    let out = retrying(policy, &format!("table {table}"), || {
        client.describe_table().table_name(table).send()
    })
    .await
    .map_err(|e| match e {
        Error::Target(m) if m.contains("ResourceNotFound") => Error::Target(format!(
            "table {table} does not exist (at the configured endpoint and region)"
        )),
        other => other,
    })?;
    let desc = out
        .table()
        .ok_or_else(|| Error::Target(format!("table {table}: no description")))?;
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
        return Err(Error::Target(format!(
            "table {table} does not have the expected key schema PK (S, HASH) + SK (S, RANGE): found {keys:?}"
        )));
    }
    Ok(())
}
