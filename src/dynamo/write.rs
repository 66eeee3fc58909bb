//! `BatchWriteItem`: one batch written with retries of what was not
//! processed, counted in [`WriteStats`]; a batch refused for one item's sake
//! is handed back whole (the pipeline isolates the item).

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use serde::Serialize;

use super::*;

/// Counters of one load (or any write phase), shared by all in-flight tasks.
#[derive(Debug, Default)]
pub struct WriteStats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    /// 5xx answers and dropped connections.
    pub server_errors: AtomicU64,
    /// Attempts that timed out (`requestTimeout`, or connecting).
    pub timeouts: AtomicU64,
    pub unprocessed_items: AtomicU64,
    /// Items DynamoDB refused (`ValidationException`), each isolated by
    /// splitting its batch.
    pub refused: AtomicU64,
    pub retries: AtomicU64,
    pub wait_ms: AtomicU64,
    /// Write units sent, every attempt counted ([`crate::rate`]).
    pub write_units: AtomicU64,
}

/// A snapshot of [`WriteStats`] for reports and checkpoints.
#[derive(Debug, Default, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct WriteCounts {
    pub requests: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub timeouts: u64,
    pub unprocessed_items: u64,
    pub refused: u64,
    pub retries: u64,
    pub wait_ms: u64,
    pub write_units: u64,
}

impl WriteStats {
    pub fn counts(&self) -> WriteCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WriteCounts {
            requests: g(&self.requests),
            throttled: g(&self.throttled),
            server_errors: g(&self.server_errors),
            timeouts: g(&self.timeouts),
            unprocessed_items: g(&self.unprocessed_items),
            refused: g(&self.refused),
            retries: g(&self.retries),
            wait_ms: g(&self.wait_ms),
            write_units: g(&self.write_units),
        }
    }
}

impl std::ops::Add for WriteCounts {
    type Output = WriteCounts;
    fn add(self, o: WriteCounts) -> WriteCounts {
        WriteCounts {
            requests: self.requests + o.requests,
            throttled: self.throttled + o.throttled,
            server_errors: self.server_errors + o.server_errors,
            timeouts: self.timeouts + o.timeouts,
            unprocessed_items: self.unprocessed_items + o.unprocessed_items,
            refused: self.refused + o.refused,
            retries: self.retries + o.retries,
            wait_ms: self.wait_ms + o.wait_ms,
            write_units: self.write_units + o.write_units,
        }
    }
}

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
    stats: &WriteStats,
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
