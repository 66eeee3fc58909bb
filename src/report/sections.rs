//! What each phase writes into its JSON report, per entity, as types: the
//! validation, load, verification and rollback sections (field by field in
//! docs/report.md). The phases fill them; [`super::update`] stores them.
//! The HTML page reads back only what it shows, into the owned structs of
//! [`super::files`]: a projection of these, kept apart so the page never
//! reads the records' values the examples hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use chrono::{DateTime, Utc};

use crate::checkpoint::{BackupInfo, State};
use crate::pitr::PitrWindow;

/// `validation_report.json`: one entity's validation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation<'a> {
    pub input: u64,
    pub valid: u64,
    pub rejected: u64,
    pub records_with_warnings: u64,
    pub rejects_by_reason: &'a BTreeMap<String, u64>,
    pub warnings_by_reason: &'a BTreeMap<String, u64>,
    pub files: ValidationFiles,
    pub validated_sha256: &'a str,
}

/// Where validation wrote its outputs.
#[derive(Debug, Serialize)]
pub struct ValidationFiles {
    pub validated: PathBuf,
    pub rejected: PathBuf,
    pub warnings: PathBuf,
}

/// `load_report.json`: one entity's load. The request counters are `null`
/// before the first batch was sent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Load<'a> {
    pub table: &'a str,
    /// `put` or `sync`.
    pub mode: &'static str,
    pub items: u64,
    pub confirmed: Option<u64>,
    pub written: Option<u64>,
    pub failed: u64,
    pub failed_unconfirmed: u64,
    pub failed_file: &'a Path,
    pub requests: Option<u64>,
    pub throttled: Option<u64>,
    pub server_errors: Option<u64>,
    pub timeouts: Option<u64>,
    pub unprocessed_items: Option<u64>,
    pub refused: Option<u64>,
    pub retries: Option<u64>,
    pub retry_wait_ms: Option<u64>,
    pub write_units: Option<u64>,
    pub write_units_this_command: u64,
    pub write_units_per_second: f64,
    pub max_write_units_per_second: Option<u64>,
    pub seconds: f64,
    pub backup: Option<&'a BackupInfo>,
    pub point_in_time_recovery: Option<&'a PitrWindow>,
    pub sync: Option<LoadSync<'a>>,
}

/// A sync load's difference and its files.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSync<'a> {
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub foreign: u64,
    pub changes_file: &'a Path,
    pub before_images: &'a Path,
}

/// `verification_report.json`: one entity's verification.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification<'a> {
    pub table: &'a str,
    /// `scan` or `batchGet`.
    pub method: &'static str,
    pub ok: bool,
    pub expected: u64,
    pub found: u64,
    pub matched: u64,
    pub count_by_scan: u64,
    pub missing: u64,
    pub different: u64,
    pub extra: u64,
    pub orphan_references: u64,
    /// One entry per declared index (docs/checks.md).
    pub indexes: Vec<Value>,
    /// The money reconciliation, when the entity declares one.
    pub reconciliation: Option<Value>,
    pub foreign: u64,
    pub examples: Examples<'a>,
    /// Every read verify made (Scan and Query pages, gets, descriptions):
    /// attempts, failures by class, retries and their waits.
    pub reads: crate::dynamo::CallCounts,
    pub seconds: f64,
    pub items_per_second: f64,
}

/// The first differences of each kind, for a person to look at.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Examples<'a> {
    pub missing: &'a [Value],
    pub different: &'a [Value],
    pub extra: &'a [Value],
    pub foreign: &'a [Value],
    pub orphan_references: &'a [Value],
}

/// `rollback_report.json`: one entity's rollback, key by key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollback<'a> {
    pub table: &'a str,
    pub state: State,
    /// `baseline` or `lastSync`.
    pub scope: &'static str,
    pub backup: &'a str,
    pub backup_sha256: &'a str,
    pub backup_arn: Option<&'a str>,
    pub baseline_pinned_at: DateTime<Utc>,
    pub ledgers: Vec<String>,
    pub checked: u64,
    pub total: u64,
    pub deleted: u64,
    pub restored: u64,
    pub unchanged: u64,
    pub drift: u64,
    pub forced: bool,
    pub drift_items: &'a [Value],
    pub drift_file: &'a str,
    pub failed: u64,
    pub error: Option<&'a str>,
    pub at: String,
}

/// `rollback_report.json`: one entity's rollback of a table an S3 import
/// created (the table deleted).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDropped<'a> {
    pub table: &'a str,
    pub state: State,
    /// `createdTable`.
    pub scope: &'static str,
    pub table_deleted: bool,
    pub import_arn: Option<&'a str>,
    pub import_run_id: &'a str,
    pub deleted: u64,
    pub error: Option<&'a str>,
    pub at: String,
}
