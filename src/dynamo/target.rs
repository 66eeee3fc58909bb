//! The seam in front of the table store: the calls load, sync, verify,
//! rollback, the baseline and the pre-flight checks make of it (one
//! `BatchWriteItem`, one Scan page, one `BatchGetItem`, one `DescribeTable`,
//! one `DeleteTable`),
//! each a single attempt whose failure is classified.
//!
//! Everything above the seam is the same whatever answers: the retry drivers
//! ([`write_batch`], [`scan`], [`batch_get`]) decide retries, re-send only
//! what was not processed and count it all. Two implementations: [`Sdk`]
//! (DynamoDB, or any server that speaks its API) and [`Memory`], an
//! in-memory table store with faults a unit test queues (docs/design.md,
//! "The Target seam").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, TableDescription};

use super::*;

/// One call in flight: its answer, or why it failed.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = std::result::Result<T, Failed>> + Send + 'a>>;

/// One page of a parallel Scan.
#[derive(Debug, Clone)]
pub struct ScanRequest<'a> {
    pub table: &'a str,
    /// Scan this global secondary index instead of the table (not a
    /// consistent read: DynamoDB has none on one).
    pub index: Option<&'a str>,
    pub segment: u32,
    pub segments: u32,
    /// Keep only items whose `PK` starts with it.
    pub prefix: Option<&'a str>,
    /// Fetch `PK`, `SK` and `createdBy` alone.
    pub keys_only: bool,
    /// Items a page may hold.
    pub limit: i32,
    /// Where the previous page of this segment ended.
    pub start: Option<AvItem>,
}

/// One page of a Query of a global secondary index under one partition key,
/// for the `PK`s of the items of one entity there.
#[derive(Debug, Clone)]
pub struct QueryRequest<'a> {
    pub table: &'a str,
    pub index: &'a str,
    /// The index's partition key attribute, and the value asked for.
    pub hash: (&'a str, AttributeValue),
    /// Keep only items whose `PK` starts with it.
    pub prefix: &'a str,
    /// Where the previous page ended.
    pub start: Option<AvItem>,
}

/// What a table store answers to, one attempt per call.
pub trait Target: Send + Sync {
    /// One `BatchWriteItem` of at most [`MAX_BATCH_WRITE_ITEMS`] writes to
    /// `table`; the keys of the writes it left unprocessed.
    fn write<'a>(&'a self, table: &'a str, writes: &'a [(u64, Write)]) -> Call<'a, Vec<AvItem>>;

    /// One consistent Scan page; the page and where the next one starts
    /// (`None` at the segment's end).
    fn scan<'a>(&'a self, request: ScanRequest<'a>) -> Call<'a, (RawPage, Option<AvItem>)>;

    /// One consistent `BatchGetItem` of at most [`MAX_BATCH_GET_KEYS`] keys:
    /// the items found and the keys left unprocessed.
    fn get<'a>(&'a self, table: &'a str, keys: Vec<AvItem>)
    -> Call<'a, (Vec<AvItem>, Vec<AvItem>)>;

    /// One `DescribeTable`: the table's description, `None` when it does
    /// not exist.
    fn describe<'a>(&'a self, table: &'a str) -> Call<'a, Option<TableDescription>>;

    /// One `DeleteTable`: `Ok` once deleting started, or when there is no
    /// such table; a table still being created or updated is a transient
    /// failure (it can be deleted once `ACTIVE`).
    fn delete_table<'a>(&'a self, table: &'a str) -> Call<'a, ()>;

    /// One Query page ([`QueryRequest`]): the items, projected to `PK`, and
    /// where the next page starts.
    fn query<'a>(&'a self, request: QueryRequest<'a>) -> Call<'a, (Vec<AvItem>, Option<AvItem>)>;
}

/// The target of a run, shared by every task that calls it.
pub type SharedTarget = Arc<dyn Target>;
