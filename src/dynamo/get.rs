//! `BatchGetItem` of up to 100 keys, retrying the unprocessed ones.

use std::sync::atomic::Ordering;

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
    let mut retries = Retries::new(policy, Some(&policy.calls));
    while !pending.is_empty() {
        policy.calls.requests.fetch_add(1, Ordering::Relaxed);
        let (items, left) = match target.get(table, pending.clone()).await {
            Ok(answer) => answer,
            Err(failed) => match retries.failed(failed).await {
                Ok(()) => continue,
                Err(f) => {
                    return Err(Error::Target {
                        class: f.class,
                        message: format!("batch get from {table}: {}", f.message),
                    });
                }
            },
        };
        found.extend(items);
        if !left.is_empty() && !retries.partial(pending.len(), left.len()).await {
            return Err(Error::Target {
                class: Class::Throttled,
                message: format!(
                    "batch get from {table}: {} keys still unprocessed after {} retries",
                    left.len(),
                    policy.max_retries
                ),
            });
        }
        pending = left;
    }
    Ok(found)
}
