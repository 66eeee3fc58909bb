//! `BatchWriteItem`: one batch written with retries of what was not
//! processed, counted in [`CallStats`]; a batch refused for one item's sake
//! is handed back whole (the pipeline isolates the item).

use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};

use super::*;

/// What became of a batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub written: u64,
    /// Entries that could not be written after every retry, with the error.
    pub failed: Vec<(u64, String)>,
}

/// A terminal failure: stop the phase.
#[derive(Debug)]
pub struct Terminal {
    pub message: String,
    pub first_index: u64,
}

/// Why [`write_batch`] gave up on a batch as a whole.
#[derive(Debug)]
pub enum BatchError {
    /// The table or the account refused: stop the phase.
    Terminal(Terminal),
    /// DynamoDB refused the request for the sake of an item in it
    /// ([`Class::Refused`]): the entries not written, to be split until the
    /// item is alone (`pipeline::write_isolating`).
    Refused {
        /// Entries written before the refusal (earlier rounds).
        written: u64,
        entries: Vec<(u64, Write)>,
        message: String,
    },
}

impl BatchError {
    /// What the server said, for a caller that treats any refusal as fatal.
    pub fn into_message(self) -> String {
        match self {
            BatchError::Terminal(t) => t.message,
            BatchError::Refused { message, .. } => message,
        }
    }
}

pub(super) fn key_matches(a: &AvItem, b: &AvItem) -> bool {
    a.get("PK") == b.get("PK") && a.get("SK") == b.get("SK")
}

pub(super) fn request_key(r: &WriteRequest) -> Option<&AvItem> {
    r.put_request()
        .map(|p| p.item())
        .or_else(|| r.delete_request().map(|d| d.key()))
}

/// Writes one batch (at most [`MAX_BATCH_WRITE_ITEMS`]) to `table`, retrying
/// throttles, 5xx and timeouts with backoff and re-sending only the
/// `UnprocessedItems`. A round that made progress does not count against
/// `max_retries`. Items still unwritten after that are returned as failed;
/// a refusal or a terminal error is returned at once.
pub async fn write_batch(
    target: &dyn Target,
    table: &str,
    entries: Vec<(u64, Write)>,
    policy: &RetryPolicy,
    stats: &CallStats,
) -> std::result::Result<BatchOutcome, BatchError> {
    assert!(
        entries.len() <= MAX_BATCH_WRITE_ITEMS,
        "batch larger than DynamoDB allows"
    );
    let mut retries = Retries::new(policy, Some(stats));
    let mut pending = entries;
    let mut outcome = BatchOutcome::default();
    while !pending.is_empty() {
        let units: u64 = pending.iter().map(|(_, w)| u64::from(w.units)).sum();
        if let Some(cap) = &policy.rate {
            cap.take(units).await;
        }
        stats.write_units.fetch_add(units, Ordering::Relaxed);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let last_error = match target.write(table, &pending).await {
            Ok(unprocessed) if unprocessed.is_empty() => {
                outcome.written += pending.len() as u64;
                return Ok(outcome);
            }
            Ok(unprocessed) => {
                let sent = pending.len();
                let (retry, done): (Vec<_>, Vec<_>) = pending
                    .into_iter()
                    .partition(|(_, w)| unprocessed.iter().any(|u| key_matches(u, &w.key)));
                outcome.written += done.len() as u64;
                pending = retry;
                if retries.partial(sent, pending.len()).await {
                    continue;
                }
                format!(
                    "still in UnprocessedItems after {} retries",
                    policy.max_retries
                )
            }
            Err(failed) if failed.class == Class::Refused => {
                return Err(BatchError::Refused {
                    written: outcome.written,
                    entries: pending,
                    message: failed.message,
                });
            }
            Err(failed) if failed.class == Class::Terminal => {
                let (index, w) = &pending[0];
                let key = &w.key;
                return Err(BatchError::Terminal(Terminal {
                    message: format!(
                        "table {table}: {} (first item of the batch: PK={}, SK={})",
                        failed.message,
                        av_str(key.get("PK")),
                        av_str(key.get("SK"))
                    ),
                    first_index: *index,
                }));
            }
            Err(failed) => match retries.failed(failed).await {
                Ok(()) => continue,
                Err(failed) => failed.message,
            },
        };
        outcome
            .failed
            .extend(pending.into_iter().map(|(i, _)| (i, last_error.clone())));
        return Ok(outcome);
    }
    Ok(outcome)
}

pub(super) fn av_str(v: Option<&AttributeValue>) -> String {
    match v {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => "?".into(),
    }
}
