//! What the checkpoint keeps of an S3 import (docs/import.md): the parts
//! in S3 and the import once requested, per load step; and, per entity,
//! that its table was created by an import (the baseline rollback drops).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An import's progress, kept in the load step of the checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImportState {
    pub bucket: String,
    /// `<importPrefix>/<run>/<entity>/`: the import reads every object under it.
    pub prefix: String,
    pub part_bytes: u64,
    pub client_token: String,
    /// Parts in S3, checked, in order.
    pub parts: Vec<UploadedPart>,
    /// Entries of the validated artifact in those parts.
    pub items_uploaded: u64,
    /// Every part is in S3 and the prefix holds nothing else.
    pub uploaded: bool,
    /// `ImportTable` was sent (perhaps without an answer: `--resume` sends
    /// it again with the same client token).
    pub requested: bool,
    pub arn: Option<String>,
    pub status: Option<String>,
    pub processed_items: u64,
    pub processed_bytes: u64,
    pub imported_items: u64,
    pub errors: u64,
    pub log_group: Option<String>,
}

/// One part in S3.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UploadedPart {
    pub key: String,
    pub items: u64,
    pub raw_bytes: u64,
    pub bytes: u64,
    /// SHA-256 as S3 reported it.
    pub checksum: String,
}

/// A table the migration created by an import (the entity's baseline):
/// rolling back drops it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub table: String,
    pub run_id: String,
    pub import_arn: Option<String>,
    pub requested_at: DateTime<Utc>,
}
