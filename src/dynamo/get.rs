//! `BatchGetItem` of up to 100 keys, retrying the unprocessed ones.

use crate::error::{Error, Result};

use super::*;

/// Gets up to [`MAX_BATCH_GET_KEYS`] items by key, retrying `UnprocessedKeys`;
/// returns the items found (any order).
pub async fn batch_get(
    target: &dyn Target,
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
        let (items, left) = retry_failed(policy, &format!("batch get from {table}"), || {
            target.get(table, pending.clone())
        })
        .await?;
        found.extend(items);
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
