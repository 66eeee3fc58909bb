//! From the file's text to a typed [`Config`]: parse, expand `${VAR}`,
//! check against the JSON Schema, deserialize through the raw structs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::dynamo::MAX_BATCH_WRITE_ITEMS;
use crate::error::{Error, Result};

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawConfig {
    source: RawSource,
    target: BTreeMap<String, Value>,
    #[serde(default)]
    migration: RawMigration,
    #[serde(default)]
    metrics: MetricsConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawSource {
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
pub(super) struct RawMigration {
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
    load_mode: Option<LoadMode>,
    point_in_time_recovery: Option<PitrMode>,
    request_timeout: Option<f64>,
    uuid_namespace: Option<String>,
    data_dir: Option<PathBuf>,
    max_write_units_per_second: Option<u64>,
    artifact_key: Option<String>,
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
        let mut load_via = LoadVia::default();
        let mut import = ImportTarget::default();
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
                "loadVia" => {
                    load_via = serde_json::from_value(value.clone())
                        .map_err(|e| format!("/target/loadVia: {e}"))?
                }
                "importBucket" => import.bucket = Some(text),
                "importPrefix" => import.prefix = text.trim_matches('/').to_string(),
                "importPartBytes" => import.part_bytes = value.as_u64().unwrap_or_default(),
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
                load_via,
                import,
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
                load_mode: m.load_mode.unwrap_or(d.load_mode),
                point_in_time_recovery: m
                    .point_in_time_recovery
                    .unwrap_or(d.point_in_time_recovery),
                request_timeout: secs(m.request_timeout, d.request_timeout),
                uuid_namespace,
                data_dir: m.data_dir,
                max_write_units_per_second: m.max_write_units_per_second,
                artifact_key: m.artifact_key.map(Secret),
            },
            metrics: raw.metrics,
        })
    }
}

/// The billing of new tables from `target.billingMode` and the units.
pub(super) fn billing(
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
pub(super) fn strip_position(message: &str) -> &str {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
}

/// Replaces `${NAME}` in every string of `value`, naming the JSON path of an
/// unset variable. `$${` is a literal `${`.
pub(super) fn expand_env(
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

pub(super) fn expand_str(
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
pub(super) fn check_schema(value: &Value) -> std::result::Result<(), Vec<String>> {
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
            let lower = path.to_ascii_lowercase();
            if lower.contains("password") || lower.contains("artifactkey") {
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
