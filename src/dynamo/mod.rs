//! The DynamoDB side: one client per run, AWS's limits as constants, the
//! JSON ↔ AttributeValue conversion, item sizes, retry classification and
//! capped exponential backoff with full jitter, a batch writer that re-sends
//! only what was not processed, batch gets, and parallel scans.
//!
//! The SDK's own retries are switched off: every retry decision is made here,
//! counted, and visible in the load report.
//!
//! One concern a file:
//!
//! | file | owns |
//! |---|---|
//! | `client.rs` | the client of a run |
//! | `convert.rs` | JSON ↔ `AttributeValue` ↔ wire JSON |
//! | `size.rs` | item sizes, the indexes an item is in |
//! | `classify.rs` | what a failed call means |
//! | `retry.rs` | the retry policy and the retry loop of reads |
//! | `wire.rs` | write requests serialized once |
//! | `write.rs` | `BatchWriteItem` with its counters |
//! | `table.rs` | the table check |
//! | `scan.rs` | parallel Scans read as wire JSON |
//! | `get.rs` | `BatchGetItem` |
//! | `target.rs` | the seam: one write, one Scan page, one get, one attempt each |
//! | `sdk.rs` | the seam over the SDK's client (DynamoDB) |
//! | `memory.rs` | the seam in memory, with faults, for unit tests |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

mod classify;
mod client;
mod convert;
mod get;
mod memory;
mod retry;
mod scan;
mod sdk;
mod size;
mod stats;
mod table;
mod target;
mod wire;
mod write;

pub use classify::*;
pub use client::*;
pub use convert::*;
pub use get::*;
pub use memory::*;
pub use retry::*;
pub use scan::*;
pub use sdk::*;
pub use size::*;
pub use stats::*;
pub use table::*;
pub use target::*;
pub use wire::*;
pub use write::*;

/// BatchWriteItem takes at most 25 put or delete requests.
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// BatchGetItem takes at most 100 keys.
pub const MAX_BATCH_GET_KEYS: usize = 100;
/// An item may not exceed 400 KB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// One write unit covers 1 KB of item.
pub const WRITE_UNIT_BYTES: usize = 1024;

/// A DynamoDB item as the SDK wants it.
pub type AvItem = HashMap<String, AttributeValue>;

#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tests;
