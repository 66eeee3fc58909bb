//! Configuration: the JSON file of the README's "Configuration", from raw text to a validated,
//! typed [`Config`].
//!
//! Loading goes in one direction and stops at the first stage that fails:
//! read the file → parse JSON (errors carry line and column) → expand
//! `${VAR}` from the environment (an unset variable is named with its JSON
//! path) → check against the embedded JSON Schema (every violation reported
//! with its JSON path) → deserialize into typed structs. The password is held
//! in a [`Secret`] that never prints.
//!
//! `mod.rs` holds the typed configuration; `load.rs` the way there.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dynamo::MAX_BATCH_WRITE_ITEMS;
use crate::error::{Error, Result};

mod load;

/// The JSON Schema every configuration file must satisfy.
pub const CONFIG_SCHEMA: &str = include_str!("../config.schema.json");

/// The UUID v5 namespace of the README's "Mapping and rules", used unless the config overrides it.
pub const DEFAULT_UUID_NAMESPACE: &str = "e6efba72-f0d7-4be9-bfce-399356e044f7";

/// A string that must never reach a log, a report or an artifact.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that needs it (the connection,
    /// the artifact key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How the PostgreSQL connection uses TLS, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS, without checking the server's certificate (libpq `require`).
    Require,
    /// TLS, certificate chain and host name checked (libpq `verify-full`).
    VerifyFull,
}

/// Where the legacy data comes from.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub password: Secret,
    pub ssl: SslMode,
    pub ssl_root_cert: Option<PathBuf>,
    pub schema: String,
    pub connect_timeout: Duration,
    /// `driftCheck: "warn"` logs source drift instead of refusing
    /// (docs/checks.md); the default refuses.
    pub drift_warn_only: bool,
}

/// Where the items go.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub region: String,
    /// `None` means real AWS (or whatever the SDK's chain says).
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    /// Table name per entity, from the `<entity>Table` keys.
    pub tables: BTreeMap<String, String>,
    /// How `migrate tables create` bills new tables (`billingMode`,
    /// `readCapacityUnits`, `writeCapacityUnits`).
    pub billing: Billing,
    /// `loadVia`, `--via`: BatchWriteItem into an existing table (the
    /// default) or DynamoDB Import from S3 into a new one (docs/import.md).
    pub load_via: LoadVia,
    /// Where the S3 import path puts its parts (`importBucket`,
    /// `importPrefix`, `importPartBytes`).
    pub import: ImportTarget,
}

/// How a load reaches the table (README "Two ways to load").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadVia {
    /// BatchWriteItem, 25 items a request, into a table that exists.
    #[default]
    BatchWrite,
    /// Parts written to S3 and one `ImportTable` per entity, which creates
    /// the table.
    S3Import,
}

impl LoadVia {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadVia::BatchWrite => "batch-write",
            LoadVia::S3Import => "s3-import",
        }
    }
}

/// The S3 side of the import path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTarget {
    /// Required by the S3 import path only.
    pub bucket: Option<String>,
    /// Without a trailing `/`; may be empty.
    pub prefix: String,
    /// Uncompressed bytes of DynamoDB JSON per part (the last may be smaller).
    pub part_bytes: u64,
}

/// The default part: about 100 MB of DynamoDB JSON before GZIP.
pub const DEFAULT_IMPORT_PART_BYTES: u64 = 100_000_000;

impl Default for ImportTarget {
    fn default() -> Self {
        ImportTarget {
            bucket: None,
            prefix: String::new(),
            part_bytes: DEFAULT_IMPORT_PART_BYTES,
        }
    }
}

/// The capacity mode of the tables `migrate tables create` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Billing {
    /// On-demand (`PAY_PER_REQUEST`), the default.
    #[default]
    PayPerRequest,
    /// Provisioned read and write units, for the table and each index.
    Provisioned { read: i64, write: i64 },
}

/// DynamoDB's default per-table quota of read and of write capacity units.
pub const MAX_CAPACITY_UNITS: i64 = 40_000;

impl TargetConfig {
    /// The table configured for `entity`, or a configuration error naming the key.
    pub fn table_for(&self, entity: &str, config_path: &Path) -> Result<&str> {
        self.tables
            .get(entity)
            .map(String::as_str)
            .ok_or_else(|| Error::Config {
                path: config_path.to_path_buf(),
                message: format!("/target/{entity}Table: no table is configured for {entity}"),
            })
    }
}

/// How the migration behaves.
/// How verify reads the table back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VerifyMethod {
    /// One parallel Scan of the table, compared against fingerprints of the
    /// artifact (the default: the server reads every item once).
    Scan,
    /// BatchGetItem of every artifact key, 100 a request, plus a keys-only
    /// Scan for the count and the extra items: for a table that holds much
    /// more than the entity being verified.
    BatchGet,
}

/// How a load writes (docs/cutover.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum LoadMode {
    /// Every validated item is written (the default).
    #[default]
    Put,
    /// Only the difference between the validated artifact and the table:
    /// new and changed items are put, the migration's items that are no
    /// longer valid migrated records are deleted.
    Sync,
}

impl LoadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadMode::Put => "put",
            LoadMode::Sync => "sync",
        }
    }
}

/// What the load asks of the tables' point-in-time recovery (README "The
/// night of the migration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PitrMode {
    /// Pre-flight names the tables without it; the load goes on.
    Warn,
    /// A table without it stops the command before any write (exit 2).
    Require,
    /// Turned on before the first write, waiting until it is enabled.
    Enable,
}

/// How extract gets each row's JSON line from PostgreSQL (docs/extract.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExtractFormat {
    /// `COPY … (FORMAT binary)`, rendered by `migrate` into the very line
    /// `row_to_json` writes (the default: the source server only sends).
    Binary,
    /// PostgreSQL renders each row with `row_to_json` (for sources where a
    /// binary COPY is not allowed; also the fallback for a column type the
    /// binary decoder does not know).
    Json,
}

#[derive(Debug, Clone)]
pub struct MigrationConfig {
    pub batch_size: usize,
    pub concurrency: usize,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub exponential_backoff: bool,
    pub continue_on_error: bool,
    pub backup_before_load: bool,
    pub validate_after_load: bool,
    pub batch_delay: Duration,
    pub dry_run: bool,
    pub scan_segments: u32,
    pub extract_connections: usize,
    pub extract_format: ExtractFormat,
    pub verify_method: VerifyMethod,
    /// `loadMode`, `--load-mode`.
    pub load_mode: LoadMode,
    pub point_in_time_recovery: PitrMode,
    pub request_timeout: Duration,
    pub uuid_namespace: uuid::Uuid,
    pub data_dir: Option<PathBuf>,
    /// The write-rate cap in write units a second (`maxWriteUnitsPerSecond`,
    /// `--max-write-rate`); `None`: as fast as the table takes.
    pub max_write_units_per_second: Option<u64>,
    /// `artifactKey`: the passphrase of an encrypted data directory
    /// ([`crate::crypt`]); never printed or logged.
    pub artifact_key: Option<Secret>,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            batch_size: MAX_BATCH_WRITE_ITEMS,
            concurrency: 8,
            max_retries: 8,
            retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_secs(5),
            exponential_backoff: true,
            continue_on_error: false,
            backup_before_load: true,
            validate_after_load: true,
            batch_delay: Duration::ZERO,
            dry_run: false,
            scan_segments: 4,
            extract_connections: 2,
            extract_format: ExtractFormat::Binary,
            verify_method: VerifyMethod::Scan,
            load_mode: LoadMode::Put,
            point_in_time_recovery: PitrMode::Warn,
            request_timeout: Duration::from_secs(30),
            uuid_namespace: uuid::Uuid::parse_str(DEFAULT_UUID_NAMESPACE).expect("valid uuid"),
            data_dir: None,
            max_write_units_per_second: None,
            artifact_key: None,
        }
    }
}

/// Optional metrics (docs/report.md): CloudWatch, a Prometheus text file, both or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsConfig {
    pub cloudwatch: Option<CloudWatchConfig>,
    pub prometheus: Option<PrometheusConfig>,
}

/// CloudWatch PutMetricData, with the target's region, endpoint and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchConfig {
    pub namespace: String,
}

/// A file in the Prometheus text format (node_exporter's textfile collector).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusConfig {
    pub textfile: PathBuf,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, for messages.
    pub path: PathBuf,
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub migration: MigrationConfig,
    pub metrics: MetricsConfig,
}

#[cfg(test)]
mod tests;
