//! `BatchGetItem` of up to 100 keys, retrying the unprocessed ones.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use crate::error::{Error, Result};

use super::*;

/// Gets up to [`MAX_BATCH_GET_KEYS`] items by key, retrying `UnprocessedKeys`;
/// returns the items found (any order).
pub async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<AvItem>,
    policy: &RetryPolicy,
) -> Result<Vec<AvItem>> {
    assert!(keys.len() <= MAX_BATCH_GET_KEYS);
    let mut found = Vec::with_capacity(keys.len());
    let mut pending = keys;
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(pending.clone()))
            .consistent_read(true)
            .build()
            .expect("keys set");
        let out = retrying(policy, &format!("batch get from {table}"), || {
            client
                .batch_get_item()
                .request_items(table, request.clone())
                .send()
        })
        .await?;
        if let Some(items) = out.responses().and_then(|r| r.get(table)) {
            found.extend(items.iter().cloned());
        }
        let left: Vec<AvItem> = out
            .unprocessed_keys()
            .and_then(|m| m.get(table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if !left.is_empty() {
            attempt += 1;
            if left.len() < pending.len() {
                attempt = 1;
            }
            if attempt > policy.max_retries {
                return Err(Error::Target(format!(
                    "batch get from {table}: {} keys still unprocessed after {} retries",
                    left.len(),
                    policy.max_retries
                )));
            }
            tokio::time::sleep(policy.delay(attempt, &mut rng)).await;
        }
        pending = left;
    }
    Ok(found)
}
