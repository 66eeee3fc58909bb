//! Counters of calls to the table store: requests, failures by class,
//! retries and their waits, unprocessed parts, write units
//! ([`CallStats`]), and their snapshot for reports and checkpoints
//! ([`CallCounts`]).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters of calls, shared by all the tasks in flight that make them: a
/// load's (or a rollback's) `BatchWriteItem`s, or the reads and other calls
/// made under one [`RetryPolicy`] (its `calls`: Scan and Query pages, gets,
/// table descriptions, S3 and import calls). Every attempt is counted.
#[derive(Debug, Default)]
pub struct CallStats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    /// 5xx answers and dropped connections.
    pub server_errors: AtomicU64,
    /// Attempts that timed out (`requestTimeout`, or connecting).
    pub timeouts: AtomicU64,
    /// Writes DynamoDB left unprocessed (`UnprocessedItems`), or keys a get
    /// left (`UnprocessedKeys`).
    pub unprocessed_items: AtomicU64,
    /// Items DynamoDB refused (`ValidationException`), each isolated by
    /// splitting its batch.
    pub refused: AtomicU64,
    pub retries: AtomicU64,
    pub wait_ms: AtomicU64,
    /// Write units sent, every attempt counted ([`crate::rate`]).
    pub write_units: AtomicU64,
}

/// A snapshot of [`CallStats`] for reports and checkpoints.
#[derive(Debug, Default, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct CallCounts {
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

impl CallStats {
    pub fn counts(&self) -> CallCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CallCounts {
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

impl std::ops::Add for CallCounts {
    type Output = CallCounts;
    fn add(self, o: CallCounts) -> CallCounts {
        CallCounts {
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
