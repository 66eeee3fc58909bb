//! Configuration: the JSON file of the README's "Configuration", from raw text to a validated,
//! typed [`Config`].
//!
//! Loading goes in one direction and stops at the first stage that fails:
//! read the file → parse JSON (errors carry line and column) → expand
//! `${VAR}` from the environment (an unset variable is named with its JSON
//! path) → check against the embedded JSON Schema (every violation reported
//! with its JSON path) → deserialize into typed structs. The password is held
//! in a [`Secret`] that never prints.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::dynamo::MAX_BATCH_WRITE_ITEMS;
use crate::error::{Error, Result};

/// The JSON Schema every configuration file must satisfy.
pub const CONFIG_SCHEMA: &str = include_str!("config.schema.json");

/// The UUID v5 namespace of the README's "Mapping and rules", used unless the config overrides it.
pub const DEFAULT_UUID_NAMESPACE: &str = "e6efba72-f0d7-4be9-bfce-399356e044f7";

/// A string that must never reach a log, a report or an artifact.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that needs it (the connection).
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
    pub point_in_time_recovery: PitrMode,
    pub request_timeout: Duration,
    pub uuid_namespace: uuid::Uuid,
    pub data_dir: Option<PathBuf>,
    /// The write-rate cap in write units a second (`maxWriteUnitsPerSecond`,
    /// `--max-write-rate`); `None`: as fast as the table takes.
    pub max_write_units_per_second: Option<u64>,
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
            point_in_time_recovery: PitrMode::Warn,
            request_timeout: Duration::from_secs(30),
            uuid_namespace: uuid::Uuid::parse_str(DEFAULT_UUID_NAMESPACE).expect("valid uuid"),
            data_dir: None,
            max_write_units_per_second: None,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    source: RawSource,
    target: BTreeMap<String, Value>,
    #[serde(default)]
    migration: RawMigration,
    #[serde(default)]
    metrics: MetricsConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSource {
    host: String,
    port: Option<u16>,
    database: String,
    username: String,
    #[serde(default)]
    password: String,
    ssl: Option<Value>,
    ssl_root_cert: Option<PathBuf>,
    schema: Option<String>,
    connect_timeout: Option<f64>,
    drift_check: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMigration {
    batch_size: Option<usize>,
    concurrency: Option<usize>,
    max_retries: Option<u32>,
    retry_delay: Option<f64>,
    max_retry_delay: Option<f64>,
    exponential_backoff: Option<bool>,
    continue_on_error: Option<bool>,
    backup_before_load: Option<bool>,
    validate_after_load: Option<bool>,
    batch_delay: Option<f64>,
    dry_run: Option<bool>,
    scan_segments: Option<u32>,
    extract_connections: Option<usize>,
    extract_format: Option<ExtractFormat>,
    verify_method: Option<VerifyMethod>,
    point_in_time_recovery: Option<PitrMode>,
    request_timeout: Option<f64>,
    uuid_namespace: Option<String>,
    data_dir: Option<PathBuf>,
    max_write_units_per_second: Option<u64>,
}

impl Config {
    /// Reads, expands, checks and types the configuration at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::from_str(path, &text, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::load`] on text already read, with `env` for `${VAR}`.
    pub fn from_str(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let fail = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let mut value: Value = serde_json::from_str(text).map_err(|e| {
            fail(format!(
                "not valid JSON at line {}, column {}: {}",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ))
        })?;
        expand_env(&mut value, "", env).map_err(fail)?;
        check_schema(&value).map_err(|problems| fail(problems.join("; ")))?;
        let raw: RawConfig = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
        Config::from_raw(path, raw).map_err(fail)
    }

    fn from_raw(path: &Path, raw: RawConfig) -> std::result::Result<Config, String> {
        let ssl = match raw.source.ssl {
            None | Some(Value::Bool(false)) => SslMode::Disable,
            // `true` asks for TLS; the safe reading is a checked certificate.
            Some(Value::Bool(true)) => SslMode::VerifyFull,
            Some(Value::String(s)) if s == "disable" => SslMode::Disable,
            Some(Value::String(s)) if s == "require" => SslMode::Require,
            Some(Value::String(s)) if s == "verify-full" => SslMode::VerifyFull,
            Some(other) => return Err(format!("/source/ssl: unsupported value {other}")),
        };
        let secs =
            |v: Option<f64>, default: Duration| v.map(Duration::from_secs_f64).unwrap_or(default);
        let d = MigrationConfig::default();
        let m = raw.migration;
        let batch_size = m.batch_size.unwrap_or(d.batch_size);
        if batch_size > MAX_BATCH_WRITE_ITEMS {
            return Err(format!(
                "/migration/batchSize: {batch_size} is greater than DynamoDB's limit of {MAX_BATCH_WRITE_ITEMS}"
            ));
        }
        let uuid_namespace = match m.uuid_namespace {
            Some(s) => {
                uuid::Uuid::parse_str(&s).map_err(|e| format!("/migration/uuidNamespace: {e}"))?
            }
            None => d.uuid_namespace,
        };
        let mut tables = BTreeMap::new();
        let mut region = String::new();
        let mut endpoint = None;
        let mut profile = None;
        let (mut mode, mut read, mut write) = (None, None, None);
        for (key, value) in raw.target {
            // The schema checked every type; the string and integer keys are these.
            let text = value.as_str().map(str::to_string).unwrap_or_default();
            match key.as_str() {
                "region" => region = text,
                "endpoint" => endpoint = Some(text),
                "profile" => profile = Some(text),
                "billingMode" => mode = Some(text),
                "readCapacityUnits" => read = value.as_i64(),
                "writeCapacityUnits" => write = value.as_i64(),
                _ => {
                    if let Some(entity) = key.strip_suffix("Table") {
                        tables.insert(entity.to_string(), text);
                    }
                }
            }
        }
        let billing = billing(mode.as_deref(), read, write)?;
        Ok(Config {
            path: path.to_path_buf(),
            source: SourceConfig {
                host: raw.source.host,
                port: raw.source.port.unwrap_or(5432),
                database: raw.source.database,
                username: raw.source.username,
                password: Secret(raw.source.password),
                ssl,
                ssl_root_cert: raw.source.ssl_root_cert,
                schema: raw.source.schema.unwrap_or_else(|| "public".into()),
                connect_timeout: secs(raw.source.connect_timeout, Duration::from_secs(10)),
                drift_warn_only: raw.source.drift_check.as_deref() == Some("warn"),
            },
            target: TargetConfig {
                region,
                endpoint,
                profile,
                tables,
                billing,
            },
            migration: MigrationConfig {
                batch_size,
                concurrency: m.concurrency.unwrap_or(d.concurrency),
                max_retries: m.max_retries.unwrap_or(d.max_retries),
                retry_delay: secs(m.retry_delay, d.retry_delay),
                max_retry_delay: secs(m.max_retry_delay, d.max_retry_delay),
                exponential_backoff: m.exponential_backoff.unwrap_or(d.exponential_backoff),
                continue_on_error: m.continue_on_error.unwrap_or(d.continue_on_error),
                backup_before_load: m.backup_before_load.unwrap_or(d.backup_before_load),
                validate_after_load: m.validate_after_load.unwrap_or(d.validate_after_load),
                batch_delay: secs(m.batch_delay, d.batch_delay),
                dry_run: m.dry_run.unwrap_or(d.dry_run),
                scan_segments: m.scan_segments.unwrap_or(d.scan_segments),
                extract_connections: m.extract_connections.unwrap_or(d.extract_connections),
                extract_format: m.extract_format.unwrap_or(d.extract_format),
                verify_method: m.verify_method.unwrap_or(d.verify_method),
                point_in_time_recovery: m
                    .point_in_time_recovery
                    .unwrap_or(d.point_in_time_recovery),
                request_timeout: secs(m.request_timeout, d.request_timeout),
                uuid_namespace,
                data_dir: m.data_dir,
                max_write_units_per_second: m.max_write_units_per_second,
            },
            metrics: raw.metrics,
        })
    }
}

/// The billing of new tables from `target.billingMode` and the units.
fn billing(
    mode: Option<&str>,
    read: Option<i64>,
    write: Option<i64>,
) -> std::result::Result<Billing, String> {
    match mode.unwrap_or("PAY_PER_REQUEST") {
        "PROVISIONED" => {
            let units = |v: Option<i64>, key: &str| match v {
                None => Err(format!(
                    "/target/{key}: required when /target/billingMode is PROVISIONED"
                )),
                Some(n) if !(1..=MAX_CAPACITY_UNITS).contains(&n) => Err(format!(
                    "/target/{key}: {n} is outside 1..={MAX_CAPACITY_UNITS} (DynamoDB's default per-table quota)"
                )),
                Some(n) => Ok(n),
            };
            Ok(Billing::Provisioned {
                read: units(read, "readCapacityUnits")?,
                write: units(write, "writeCapacityUnits")?,
            })
        }
        "PAY_PER_REQUEST" => match (read, write) {
            (None, None) => Ok(Billing::PayPerRequest),
            _ => Err(
                "/target: readCapacityUnits and writeCapacityUnits go only with \"billingMode\": \"PROVISIONED\" (on-demand tables have no provisioned units)"
                    .into(),
            ),
        },
        other => Err(format!(
            "/target/billingMode: {other:?} is neither PAY_PER_REQUEST nor PROVISIONED"
        )),
    }
}

/// serde_json appends " at line L column C" to its messages; we say it first.
fn strip_position(message: &str) -> &str {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
}

/// Replaces `${NAME}` in every string of `value`, naming the JSON path of an
/// unset variable. `$${` is a literal `${`.
fn expand_env(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<(), String> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand_str(s, path, env)?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}/{i}"), env)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                expand_env(item, &format!("{path}/{key}"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("{path}: unterminated ${{ in the value"))?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("{path}: invalid variable name ${{{name}}}"));
            }
            let value = env(name)
                .ok_or_else(|| format!("{path}: environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks `value` against [`CONFIG_SCHEMA`]; each problem is `path: message`.
/// Values under a key named like a password are never echoed.
fn check_schema(value: &Value) -> std::result::Result<(), Vec<String>> {
    let schema: Value =
        serde_json::from_str(CONFIG_SCHEMA).expect("embedded config schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("embedded config schema is valid");
    let mut problems: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            if path.to_ascii_lowercase().contains("password") {
                format!("{path}: invalid value (not shown: it is a secret)")
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        problems.sort();
        problems.dedup();
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "source": { "type": "postgresql", "host": "localhost", "port": 5432,
                  "database": "s9", "username": "migration_user",
                  "password": "${DB_PASSWORD}", "ssl": false, "schema": "public" },
      "target": { "region": "us-east-1", "endpoint": "http://localhost:4566",
                  "buyersTable": "BuyersTable-dev", "producersTable": "ProducersTable-dev",
                  "salesTable": "SalesTable-dev" },
      "migration": { "batchSize": 25, "concurrency": 8, "maxRetries": 8,
                     "retryDelay": 0.05, "exponentialBackoff": true,
                     "continueOnError": false, "backupBeforeLoad": true,
                     "validateAfterLoad": true, "batchDelay": 0, "dryRun": false }
    }"#;

    fn env(name: &str) -> Option<String> {
        (name == "DB_PASSWORD").then(|| "s3cret".to_string())
    }

    fn load(text: &str) -> Result<Config> {
        Config::from_str(Path::new("config.json"), text, &env)
    }

    #[test]
    fn example_loads() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.source.password.expose(), "s3cret");
        assert_eq!(c.target.tables["buyers"], "BuyersTable-dev");
        assert_eq!(c.migration.batch_size, 25);
        assert_eq!(c.source.ssl, SslMode::Disable);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn extract_format_defaults_to_binary() {
        assert_eq!(
            load(GOOD).unwrap().migration.extract_format,
            ExtractFormat::Binary
        );
        let json = GOOD.replace(
            "\"batchSize\": 25",
            "\"batchSize\": 25, \"extractFormat\": \"json\"",
        );
        assert_eq!(
            load(&json).unwrap().migration.extract_format,
            ExtractFormat::Json
        );
        let err = load(&json.replace("\"json\"", "\"csv\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/migration/extractFormat"), "{err}");
    }

    #[test]
    fn batch_size_over_25_is_refused_with_path() {
        let err = load(&GOOD.replace("\"batchSize\": 25", "\"batchSize\": 26")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/migration/batchSize: 26 is greater than the maximum of 25"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn unset_variable_is_named() {
        let err = Config::from_str(Path::new("c.json"), GOOD, &|_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("/source/password: environment variable DB_PASSWORD is not set")
        );
    }

    #[test]
    fn malformed_json_gives_line_and_column() {
        let err = load("{\n  \"source\": ,\n}").unwrap_err();
        assert!(err.to_string().contains("line 2, column"), "{err}");
    }

    #[test]
    fn every_violation_is_reported() {
        let text = GOOD
            .replace("\"port\": 5432", "\"port\": \"x\"")
            .replace("\"concurrency\": 8", "\"concurrency\": 0");
        let msg = load(&text).unwrap_err().to_string();
        assert!(msg.contains("/source/port"), "{msg}");
        assert!(msg.contains("/migration/concurrency"), "{msg}");
    }

    #[test]
    fn password_value_is_never_echoed() {
        let text = GOOD.replace("\"${DB_PASSWORD}\"", "12345");
        let msg = load(&text).unwrap_err().to_string();
        assert!(msg.contains("/source/password"), "{msg}");
        assert!(!msg.contains("12345"), "{msg}");
    }

    #[test]
    fn billing_defaults_to_on_demand_and_takes_provisioned_units() {
        assert_eq!(load(GOOD).unwrap().target.billing, Billing::PayPerRequest);
        let prov = GOOD.replace(
            "\"region\": \"us-east-1\",",
            "\"region\": \"us-east-1\", \"billingMode\": \"PROVISIONED\", \"readCapacityUnits\": 5, \"writeCapacityUnits\": 40000,",
        );
        assert_eq!(
            load(&prov).unwrap().target.billing,
            Billing::Provisioned {
                read: 5,
                write: 40_000
            }
        );
    }

    #[test]
    fn billing_beyond_limits_or_inconsistent_is_refused() {
        let with = |extra: &str| {
            let text = GOOD.replace(
                "\"region\": \"us-east-1\",",
                &format!("\"region\": \"us-east-1\", {extra}"),
            );
            let err = load(&text).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            err.to_string()
        };
        let msg = with(
            r#""billingMode": "PROVISIONED", "readCapacityUnits": 5, "writeCapacityUnits": 40001,"#,
        );
        assert!(msg.contains("/target/writeCapacityUnits"), "{msg}");
        let msg = with(
            r#""billingMode": "PROVISIONED", "readCapacityUnits": 0, "writeCapacityUnits": 5,"#,
        );
        assert!(msg.contains("/target/readCapacityUnits"), "{msg}");
        let msg = with(r#""billingMode": "PROVISIONED", "readCapacityUnits": 5,"#);
        assert!(
            msg.contains("/target/writeCapacityUnits: required"),
            "{msg}"
        );
        let msg = with(r#""writeCapacityUnits": 5,"#);
        assert!(msg.contains("only with"), "{msg}");
        let msg = with(r#""billingMode": "ON_DEMAND","#);
        assert!(msg.contains("/target/billingMode"), "{msg}");
    }

    #[test]
    fn expansion_rules() {
        let e = |s: &str| expand_str(s, "/x", &env);
        assert_eq!(e("a${DB_PASSWORD}b").unwrap(), "as3cretb");
        assert_eq!(e("$${DB_PASSWORD}").unwrap(), "${DB_PASSWORD}");
        assert_eq!(e("cost $5").unwrap(), "cost $5");
        assert!(e("${NOPE}").unwrap_err().contains("NOPE"));
        assert!(e("${OPEN").is_err());
    }
}
