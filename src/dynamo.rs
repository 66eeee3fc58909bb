//! The DynamoDB side: one client per run, AWS's limits as constants, the
//! JSON ↔ AttributeValue conversion, item sizes, retry classification and
//! capped exponential backoff with full jitter, a batch writer that re-sends
//! only what was not processed, batch gets, and parallel scans.
//!
//! The SDK's own retries are switched off: every retry decision is made here,
//! counted, and visible in the load report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeyType, KeysAndAttributes, ScalarAttributeType, WriteRequest,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use tokio::sync::mpsc;

use crate::config::{MigrationConfig, TargetConfig};
use crate::entities::Item;
use crate::entities::table::Index;
use crate::error::{Error, Result};
use crate::json::{Obj, Val};

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

/// Builds the one client of the run from the target configuration.
pub async fn client(target: &TargetConfig, migration: &MigrationConfig) -> Client {
    Client::new(&sdk_config(target, migration).await)
}

/// The SDK configuration of [`client`] (region, endpoint, credentials,
/// timeouts, no SDK retries), shared with the CloudWatch metrics client.
pub async fn sdk_config(
    target: &TargetConfig,
    migration: &MigrationConfig,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(target.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(migration.request_timeout)
                .build(),
        );
    if let Some(profile) = &target.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &target.endpoint {
        loader = loader.endpoint_url(endpoint);
        // A local server needs no real credentials; do not send the SDK off
        // to look for them (instance metadata lookups take seconds to fail).
        if is_loopback(endpoint)
            && std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && target.profile.is_none()
        {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "migrate-local",
            ));
        }
    }
    loader.load().await
}

/// Whether the endpoint URL is on this machine (localhost, 127.x, [::1]).
pub fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.starts_with("127.") || endpoint.contains("[::1]")
}

/// Converts a JSON item (strings, exact numbers, maps, lists, booleans).
pub fn to_av(value: &Value) -> AttributeValue {
    match value {
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Number(n) => AttributeValue::N(n.as_str().to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null(true),
        Value::Array(items) => AttributeValue::L(items.iter().map(to_av).collect()),
        Value::Object(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_av(v))).collect())
        }
    }
}

/// Converts a whole JSON item.
pub fn item_to_av(item: &Item) -> AvItem {
    item.iter().map(|(k, v)| (k.clone(), to_av(v))).collect()
}

/// Converts back to JSON (numbers stay exact text).
pub fn from_av(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => serde_json::from_str::<Number>(n)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(items) => Value::Array(items.iter().map(from_av).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), from_av(v))).collect())
        }
        AttributeValue::Ss(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(v) => Value::Array(
            v.iter()
                .map(|n| {
                    serde_json::from_str::<Number>(n)
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                })
                .collect(),
        ),
        other => Value::String(format!("{other:?}")),
    }
}

/// Converts an SDK item to a JSON item.
pub fn item_from_av(item: &AvItem) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), from_av(v)))
        .collect::<Map<_, _>>()
}

/// The `PK`/`SK` of an item, for messages and reports.
pub fn key_of(item: &Item) -> (String, String) {
    let get = |k: &str| {
        item.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (get("PK"), get("SK"))
}

/// An item's size as DynamoDB counts it: names plus values, numbers one byte
/// per two significant digits plus one, maps and lists 3 bytes plus one per
/// element. Read from the item's JSON parsed in place.
pub fn item_size(item: &crate::json::Obj<'_>) -> usize {
    item.0.iter().map(|(k, v)| k.len() + val_size(v)).sum()
}

fn val_size(v: &crate::json::Val<'_>) -> usize {
    use crate::json::Val;
    match v {
        Val::Str(s) => s.len(),
        Val::Num(n) => n.bytes().filter(u8::is_ascii_digit).count().div_ceil(2) + 1,
        Val::Bool(_) | Val::Null => 1,
        Val::Arr(items) => 3 + items.iter().map(|i| 1 + val_size(i)).sum::<usize>(),
        Val::Obj(o) => {
            3 + o
                .0
                .iter()
                .map(|(k, v)| 1 + k.len() + val_size(v))
                .sum::<usize>()
        }
    }
}

/// The size of an item given in DynamoDB's wire JSON, by the same rule as
/// [`item_size`] (binaries count their decoded bytes).
pub fn wire_item_size(item: &Obj<'_>) -> usize {
    item.0.iter().map(|(k, v)| k.len() + wire_val_size(v)).sum()
}

fn wire_val_size(v: &Val<'_>) -> usize {
    let Val::Obj(typed) = v else {
        return val_size(v);
    };
    let Some((tag, inner)) = typed.0.first() else {
        return 1;
    };
    fn num(n: &str) -> usize {
        n.bytes().filter(u8::is_ascii_digit).count().div_ceil(2) + 1
    }
    fn text(v: &Val<'_>) -> usize {
        match v {
            Val::Str(s) => s.len(),
            _ => 1,
        }
    }
    fn items<'b, 'a>(v: &'b Val<'a>) -> &'b [Val<'a>] {
        match v {
            Val::Arr(a) => a,
            _ => &[],
        }
    }
    match (tag.as_ref(), inner) {
        ("S", v) => text(v),
        ("N", Val::Str(n)) => num(n),
        ("B", v) => text(v) * 3 / 4,
        ("SS", v) => items(v).iter().map(text).sum(),
        ("NS", v) => items(v)
            .iter()
            .map(|n| match n {
                Val::Str(n) => num(n),
                _ => 1,
            })
            .sum(),
        ("BS", v) => items(v).iter().map(|b| text(b) * 3 / 4).sum(),
        ("L", v) => 3 + items(v).iter().map(|e| 1 + wire_val_size(e)).sum::<usize>(),
        ("M", Val::Obj(m)) => {
            3 + m
                .0
                .iter()
                .map(|(k, v)| 1 + k.len() + wire_val_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// How many of `indexes` an item appears in (it has their key attributes).
fn indexes_holding(item: &Obj<'_>, indexes: &[Index]) -> usize {
    indexes
        .iter()
        .filter(|i| i.holds(|a| item.get(a).is_some()))
        .count()
}

/// Whether a failed call may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttling: the table or account is over its capacity.
    Throttled,
    /// 5xx, timeouts, dropped connections.
    Transient,
    /// The request was refused for the sake of an item in it
    /// (`ValidationException`: a number out of range, an item too large, a
    /// key of the wrong type): sending it again fails again, but the other
    /// items of a batch can be written without it.
    Refused,
    /// Missing tables, access denied, bad credentials: stop.
    Terminal,
}

impl Class {
    /// Whether the same request may succeed later.
    pub fn retryable(self) -> bool {
        matches!(self, Class::Throttled | Class::Transient)
    }
}

/// Error codes DynamoDB answers a whole request with because of one of its
/// items (the others would be written without it).
pub const REFUSED_CODES: &[&str] = &[
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
];

/// Error codes DynamoDB uses for throttling.
pub const THROTTLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
];

/// Classifies an SDK error.
pub fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Class
where
    R: HttpStatus + std::fmt::Debug,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Class::Transient
        }
        SdkError::ConstructionFailure(_) => Class::Terminal,
        _ => classify_code(err.code(), status_of(err)),
    }
}

/// The HTTP status of a raw response, where there is one.
pub trait HttpStatus {
    fn http_status(&self) -> Option<u16>;
}

impl HttpStatus for aws_sdk_dynamodb::config::http::HttpResponse {
    fn http_status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}

/// Test doubles build errors without a response.
impl HttpStatus for () {
    fn http_status(&self) -> Option<u16> {
        None
    }
}

fn status_of<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().and_then(HttpStatus::http_status)
}

/// Classifies by error code and HTTP status.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> Class {
    match code {
        Some(c) if THROTTLE_CODES.contains(&c) => Class::Throttled,
        Some(c) if REFUSED_CODES.contains(&c) => Class::Refused,
        Some(
            "InternalServerError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException",
        ) => Class::Transient,
        _ if status.is_some_and(|s| s >= 500) => Class::Transient,
        _ => Class::Terminal,
    }
}

/// Whether a failed attempt timed out (rather than getting a 5xx answer).
pub fn is_timeout<E, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    }
}

/// One line for an SDK error: code and message when the service gave them.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => {
            let mut msg = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            msg
        }
    }
}

/// How retries behave (from the `migration` configuration).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
    pub exponential: bool,
    /// How long one attempt may take (`migration.requestTimeout`); the SDK
    /// enforces it on its calls, [`scan`] on reading its pages.
    pub request_timeout: Duration,
    /// The write-rate cap every `BatchWriteItem` attempt takes its units
    /// from (`migration.maxWriteUnitsPerSecond`); one bucket per policy.
    pub rate: Option<std::sync::Arc<crate::rate::RateCap>>,
}

impl RetryPolicy {
    pub fn from_config(m: &MigrationConfig) -> Self {
        RetryPolicy {
            max_retries: m.max_retries,
            base: m.retry_delay,
            cap: m.max_retry_delay.max(m.retry_delay),
            exponential: m.exponential_backoff,
            request_timeout: m.request_timeout,
            rate: m
                .max_write_units_per_second
                .map(|cap| std::sync::Arc::new(crate::rate::RateCap::new(cap))),
        }
    }

    /// The longest wait before retry number `attempt` (1-based): the base
    /// doubled per attempt when exponential, never above the cap.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = if self.exponential {
            2u32.saturating_pow(attempt.saturating_sub(1).min(30))
        } else {
            1
        };
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Full jitter: a uniformly random wait between zero and the ceiling.
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = ceiling.as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { rng.u64(0..=nanos) })
    }
}

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

/// One write in a batch: its position in the artifact and its item.
pub struct BatchEntry {
    pub index: u64,
    pub item: AvItem,
}

/// A write request of a batch, serialized once, in DynamoDB's wire JSON,
/// when it is read: retries and re-sent `UnprocessedItems` reuse the bytes,
/// and no SDK `AttributeValue` tree is built, cloned or serialized per item.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The item's key (`PK`, `SK`), to match `UnprocessedItems` and name
    /// the item in messages.
    pub key: AvItem,
    /// `{"PutRequest":{"Item":{..}}}` or `{"DeleteRequest":{"Key":{..}}}`.
    wire: Vec<u8>,
    /// The write units it costs, for the rate cap ([`crate::rate`]).
    pub units: u32,
}

impl Write {
    /// A put of an item given as the JSON text of an artifact line.
    pub fn put_json(line: &str) -> serde_json::Result<Write> {
        Write::put_json_in(line, &[])
    }

    /// A put of an artifact line into a table with `indexes`: its write
    /// units count each index the item appears in.
    pub fn put_json_in(line: &str, indexes: &[Index]) -> serde_json::Result<Write> {
        let item = Obj::parse(line)?;
        let mut wire = Vec::with_capacity(line.len() * 3 / 2 + 32);
        wire.extend_from_slice(br#"{"PutRequest":{"Item":"#);
        write_wire_obj(&item, &mut wire);
        wire.extend_from_slice(b"}}");
        Ok(Write {
            key: key_av(&item),
            wire,
            units: crate::rate::units(item_size(&item), indexes_holding(&item, indexes)),
        })
    }

    /// A put of an item.
    pub fn put(item: &Item) -> Write {
        Write::put_json(&serde_json::to_string(item).expect("a JSON map serializes"))
            .expect("serde_json reads back what it wrote")
    }

    /// A delete of the item with this key from a table with `indexes`
    /// (counted as one unit for the table and one per index: the item's
    /// size is not known).
    pub fn delete_in(key: &Item, indexes: &[Index]) -> Write {
        let mut w = Write::delete(key);
        w.units = crate::rate::units(0, indexes.len());
        w
    }

    /// A delete of the item with this key.
    pub fn delete(key: &Item) -> Write {
        let text = serde_json::to_string(key).expect("a JSON map serializes");
        let key = Obj::parse(&text).expect("serde_json reads back what it wrote");
        let mut wire = Vec::with_capacity(text.len() * 2 + 32);
        wire.extend_from_slice(br#"{"DeleteRequest":{"Key":"#);
        write_wire_obj(&key, &mut wire);
        wire.extend_from_slice(b"}}");
        Write {
            key: key_av(&key),
            wire,
            units: 1,
        }
    }

    /// `PK=…, SK=…`, for messages.
    pub fn describe_key(&self) -> String {
        format!(
            "PK={}, SK={}",
            av_str(self.key.get("PK")),
            av_str(self.key.get("SK"))
        )
    }

    /// A put of an item given in DynamoDB's wire JSON (a backup line): the
    /// request carries exactly these bytes, so every type (sets, binaries,
    /// numbers as spelled) goes back as it was read.
    pub fn put_wire(item: &str) -> serde_json::Result<Write> {
        Write::put_wire_in(item, &[])
    }

    /// [`Write::put_wire`] into a table with `indexes` (for the write units).
    pub fn put_wire_in(item: &str, indexes: &[Index]) -> serde_json::Result<Write> {
        let obj = Obj::parse(item)?;
        let mut key = AvItem::new();
        for k in ["PK", "SK"] {
            if let Some(v) = obj.get(k) {
                key.insert(k.to_string(), wire_to_av(v)?);
            }
        }
        let mut wire = Vec::with_capacity(item.len() + 32);
        wire.extend_from_slice(br#"{"PutRequest":{"Item":"#);
        wire.extend_from_slice(item.trim().as_bytes());
        wire.extend_from_slice(b"}}");
        let units = crate::rate::units(wire_item_size(&obj), indexes_holding(&obj, indexes));
        Ok(Write { key, wire, units })
    }

    /// A put's item as sent, in DynamoDB's wire JSON; `None` for a delete.
    pub fn item_wire(&self) -> Option<&str> {
        let item = self
            .wire
            .strip_prefix(br#"{"PutRequest":{"Item":"#)?
            .strip_suffix(b"}}")?;
        // Written from JSON text and UTF-8 strings only.
        std::str::from_utf8(item).ok()
    }

    #[cfg(test)]
    fn is_put(&self) -> bool {
        self.wire.starts_with(b"{\"Put")
    }
}

/// The key attributes of an item as SDK values.
fn key_av(item: &Obj<'_>) -> AvItem {
    ["PK", "SK"]
        .into_iter()
        .filter_map(|k| item.get(k).map(|v| (k.to_string(), val_to_av(v))))
        .collect()
}

fn val_to_av(v: &Val<'_>) -> AttributeValue {
    match v {
        Val::Null => AttributeValue::Null(true),
        Val::Bool(b) => AttributeValue::Bool(*b),
        Val::Num(n) => AttributeValue::N((*n).to_string()),
        Val::Str(s) => AttributeValue::S(s.to_string()),
        Val::Arr(items) => AttributeValue::L(items.iter().map(val_to_av).collect()),
        Val::Obj(o) => AttributeValue::M(
            o.0.iter()
                .map(|(k, v)| (k.to_string(), val_to_av(v)))
                .collect(),
        ),
    }
}

/// Writes a JSON object as DynamoDB's wire form of an item or map:
/// `{"name":{"S":"text"},"n":{"N":"1.50"},...}`. Numbers keep their exact text.
fn write_wire_obj(obj: &Obj<'_>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in obj.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(k, out);
        out.push(b':');
        write_wire_val(v, out);
    }
    out.push(b'}');
}

fn write_wire_val(v: &Val<'_>, out: &mut Vec<u8>) {
    match v {
        Val::Null => out.extend_from_slice(br#"{"NULL":true}"#),
        Val::Bool(true) => out.extend_from_slice(br#"{"BOOL":true}"#),
        Val::Bool(false) => out.extend_from_slice(br#"{"BOOL":false}"#),
        Val::Num(n) => {
            out.extend_from_slice(br#"{"N":""#);
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        Val::Str(s) => {
            out.extend_from_slice(br#"{"S":"#);
            write_json_str(s, out);
            out.push(b'}');
        }
        Val::Arr(items) => {
            out.extend_from_slice(br#"{"L":["#);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_wire_val(item, out);
            }
            out.extend_from_slice(b"]}");
        }
        Val::Obj(o) => {
            out.extend_from_slice(br#"{"M":"#);
            write_wire_obj(o, out);
            out.push(b'}');
        }
    }
}

fn write_json_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// The body of one BatchWriteItem request.
fn batch_body(table: &str, pending: &[(u64, Write)]) -> Vec<u8> {
    let len: usize = pending.iter().map(|(_, w)| w.wire.len() + 1).sum();
    let mut body = Vec::with_capacity(len + table.len() + 32);
    body.extend_from_slice(br#"{"RequestItems":{"#);
    write_json_str(table, &mut body);
    body.extend_from_slice(b":[");
    for (i, (_, w)) in pending.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&w.wire);
    }
    body.extend_from_slice(b"]}}");
    body
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

fn key_matches(a: &AvItem, b: &AvItem) -> bool {
    a.get("PK") == b.get("PK") && a.get("SK") == b.get("SK")
}

fn request_key(r: &WriteRequest) -> Option<&AvItem> {
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
    client: &Client,
    table: &str,
    entries: Vec<(u64, Write)>,
    policy: &RetryPolicy,
    stats: &WriteStats,
) -> std::result::Result<BatchOutcome, BatchError> {
    assert!(
        entries.len() <= MAX_BATCH_WRITE_ITEMS,
        "batch larger than DynamoDB allows"
    );
    let mut rng = fastrand::Rng::new();
    let mut pending = entries;
    let mut outcome = BatchOutcome::default();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        // The SDK builds an empty request; its body is replaced, before it
        // is signed, by the entries serialized once when they were read.
        let body = bytes::Bytes::from(batch_body(table, &pending));
        let units: u64 = pending.iter().map(|(_, w)| u64::from(w.units)).sum();
        if let Some(cap) = &policy.rate {
            cap.take(units).await;
        }
        stats.write_units.fetch_add(units, Ordering::Relaxed);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let result = client
            .batch_write_item()
            .request_items(table, Vec::new())
            .customize()
            .mutate_request(move |req| {
                req.headers_mut()
                    .insert("content-length", body.len().to_string());
                *req.body_mut() = SdkBody::from(body.clone());
            })
            .send()
            .await;
        let last_error;
        match result {
            Ok(resp) => {
                let unprocessed: Vec<&AvItem> = resp
                    .unprocessed_items()
                    .and_then(|m| m.get(table))
                    .map(|v| v.iter().filter_map(request_key).collect())
                    .unwrap_or_default();
                if unprocessed.is_empty() {
                    outcome.written += pending.len() as u64;
                    return Ok(outcome);
                }
                let before = pending.len();
                let (retry, done): (Vec<_>, Vec<_>) = pending
                    .into_iter()
                    .partition(|(_, w)| unprocessed.iter().any(|u| key_matches(u, &w.key)));
                outcome.written += done.len() as u64;
                stats
                    .unprocessed_items
                    .fetch_add(retry.len() as u64, Ordering::Relaxed);
                pending = retry;
                if pending.len() < before {
                    attempt = 0;
                }
                attempt += 1;
                last_error = format!(
                    "still in UnprocessedItems after {} retries",
                    policy.max_retries
                );
            }
            Err(err) => {
                match classify(&err) {
                    Class::Throttled => stats.throttled.fetch_add(1, Ordering::Relaxed),
                    Class::Transient if is_timeout(&err) => {
                        stats.timeouts.fetch_add(1, Ordering::Relaxed)
                    }
                    Class::Transient => stats.server_errors.fetch_add(1, Ordering::Relaxed),
                    Class::Refused => {
                        return Err(BatchError::Refused {
                            written: outcome.written,
                            entries: pending,
                            message: describe(&err),
                        });
                    }
                    Class::Terminal => {
                        let (index, w) = &pending[0];
                        let key = &w.key;
                        return Err(BatchError::Terminal(Terminal {
                            message: format!(
                                "table {table}: {} (first item of the batch: PK={}, SK={})",
                                describe(&err),
                                av_str(key.get("PK")),
                                av_str(key.get("SK"))
                            ),
                            first_index: *index,
                        }));
                    }
                };
                attempt += 1;
                last_error = describe(&err);
            }
        }
        if attempt > policy.max_retries {
            outcome
                .failed
                .extend(pending.into_iter().map(|(i, _)| (i, last_error.clone())));
            return Ok(outcome);
        }
        let wait = policy.delay(attempt, &mut rng);
        stats.retries.fetch_add(1, Ordering::Relaxed);
        stats
            .wait_ms
            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
        tokio::time::sleep(wait).await;
    }
    Ok(outcome)
}

fn av_str(v: Option<&AttributeValue>) -> String {
    match v {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => "?".into(),
    }
}

/// Calls `op` until it succeeds, retrying throttles and transient errors with
/// backoff up to `max_retries`; used for scans, gets and table checks.
pub async fn retrying<T, E, R, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HttpStatus + std::fmt::Debug,
{
    retry_failed(policy, what, || {
        let call = op();
        async move { call.await.map_err(|err| Failed::of(&err)) }
    })
    .await
}

/// A failed attempt: how to treat it, and what to say.
pub struct Failed {
    pub class: Class,
    pub message: String,
}

impl Failed {
    fn of<E, R>(err: &SdkError<E, R>) -> Failed
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: HttpStatus + std::fmt::Debug,
    {
        Failed {
            class: classify(err),
            message: describe(err),
        }
    }

    fn transient(message: impl Into<String>) -> Failed {
        Failed {
            class: Class::Transient,
            message: message.into(),
        }
    }
}

/// [`retrying`] for an operation that classifies its own failures.
async fn retry_failed<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Failed>>,
{
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(failed) => {
                attempt += 1;
                if !failed.class.retryable() || attempt > policy.max_retries {
                    return Err(Error::Target(format!("{what}: {}", failed.message)));
                }
                tokio::time::sleep(policy.delay(attempt, &mut rng)).await;
            }
        }
    }
}

/// Checks that `table` exists with key schema `PK` (S, HASH) + `SK` (S, RANGE).
pub async fn check_table(client: &Client, table: &str, policy: &RetryPolicy) -> Result<()> {
    let out = retrying(policy, &format!("table {table}"), || {
        client.describe_table().table_name(table).send()
    })
    .await
    .map_err(|e| match e {
        Error::Target(m) if m.contains("ResourceNotFound") => Error::Target(format!(
            "table {table} does not exist (at the configured endpoint and region)"
        )),
        other => other,
    })?;
    let desc = out
        .table()
        .ok_or_else(|| Error::Target(format!("table {table}: no description")))?;
    let types: HashMap<&str, &ScalarAttributeType> = desc
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name(), a.attribute_type()))
        .collect();
    let keys: Vec<(&str, &KeyType)> = desc
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    let ok = keys.len() == 2
        && keys.contains(&("PK", &KeyType::Hash))
        && keys.contains(&("SK", &KeyType::Range))
        && types.get("PK") == Some(&&ScalarAttributeType::S)
        && types.get("SK") == Some(&&ScalarAttributeType::S);
    if !ok {
        return Err(Error::Target(format!(
            "table {table} does not have the expected key schema PK (S, HASH) + SK (S, RANGE): found {keys:?}"
        )));
    }
    Ok(())
}

/// Items a Scan page may hold: without a limit a page is 1 MB of JSON, and
/// decoded pages of full items (several per segment in flight) were most of
/// verify's memory.
pub const SCAN_PAGE_ITEMS: i32 = 1000;

/// One Scan page as the server sent it. Its items are read from the JSON in
/// place ([`RawPage::items`]), or converted to SDK values where that is
/// simpler ([`RawPage::av_items`]): the SDK's own decoding of every page
/// into `AttributeValue` maps was a third of verify's CPU time.
pub struct RawPage {
    body: bytes::Bytes,
    /// Where each item's JSON lies in `body`.
    items: Vec<std::ops::Range<usize>>,
}

impl RawPage {
    /// Reads a Scan response body: the items' places and `LastEvaluatedKey`.
    fn parse(body: bytes::Bytes) -> serde_json::Result<(RawPage, Option<AvItem>)> {
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(rename = "Items", borrow, default)]
            items: Vec<&'a serde_json::value::RawValue>,
            #[serde(rename = "LastEvaluatedKey", borrow, default)]
            last: Option<&'a serde_json::value::RawValue>,
        }
        let page: Page = serde_json::from_slice(&body)?;
        let base = body.as_ptr() as usize;
        let items = page
            .items
            .iter()
            .map(|raw| {
                let start = raw.get().as_ptr() as usize - base;
                start..start + raw.get().len()
            })
            .collect();
        let last = match page.last {
            Some(raw) => Some(wire_item_to_av(raw.get())?).filter(|k| !k.is_empty()),
            None => None,
        };
        drop(page);
        Ok((RawPage { body, items }, last))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Each item's JSON, in DynamoDB's wire form (`{"PK":{"S":"…"},…}`).
    pub fn items(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|r| {
            // The whole body was read as JSON text, so each slice is UTF-8.
            std::str::from_utf8(&self.body[r.clone()]).expect("a JSON value is UTF-8")
        })
    }

    /// The items as SDK values.
    pub fn av_items(&self) -> serde_json::Result<Vec<AvItem>> {
        self.items().map(wire_item_to_av).collect()
    }
}

/// Reads an item (or key) in DynamoDB's wire JSON into SDK values.
pub fn wire_item_to_av(text: &str) -> serde_json::Result<AvItem> {
    let item = Obj::parse(text)?;
    item.0
        .iter()
        .map(|(k, v)| Ok((k.to_string(), wire_to_av(v)?)))
        .collect()
}

/// One attribute value in DynamoDB's wire JSON (`{"S":"x"}`, `{"N":"1"}`, …)
/// as an SDK value.
pub fn wire_to_av(v: &Val<'_>) -> serde_json::Result<AttributeValue> {
    use serde::de::Error as _;
    let bad = || serde_json::Error::custom(format!("not a DynamoDB attribute value: {v:?}"));
    let Val::Obj(o) = v else { return Err(bad()) };
    let [(kind, inner)] = o.0.as_slice() else {
        return Err(bad());
    };
    let strings = |inner: &Val<'_>| -> serde_json::Result<Vec<String>> {
        let Val::Arr(items) = inner else {
            return Err(bad());
        };
        items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect()
    };
    let blob = |text: &str| {
        aws_smithy_types::base64::decode(text)
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .map_err(|e| serde_json::Error::custom(format!("bad base64 in a binary value: {e}")))
    };
    Ok(match (kind.as_ref(), inner) {
        ("S", Val::Str(s)) => AttributeValue::S(s.to_string()),
        ("N", Val::Str(n)) => AttributeValue::N(n.to_string()),
        ("BOOL", Val::Bool(b)) => AttributeValue::Bool(*b),
        ("NULL", Val::Bool(b)) => AttributeValue::Null(*b),
        ("L", Val::Arr(items)) => AttributeValue::L(
            items
                .iter()
                .map(wire_to_av)
                .collect::<serde_json::Result<_>>()?,
        ),
        ("M", Val::Obj(m)) => AttributeValue::M(
            m.0.iter()
                .map(|(k, v)| Ok((k.to_string(), wire_to_av(v)?)))
                .collect::<serde_json::Result<_>>()?,
        ),
        ("SS", _) => AttributeValue::Ss(strings(inner)?),
        ("NS", _) => AttributeValue::Ns(strings(inner)?),
        ("B", Val::Str(b)) => AttributeValue::B(blob(b)?),
        ("BS", _) => AttributeValue::Bs(
            strings(inner)?
                .iter()
                .map(|b| blob(b))
                .collect::<serde_json::Result<_>>()?,
        ),
        _ => return Err(bad()),
    })
}

/// Takes a successful response's body before the SDK decodes it: [`scan`]
/// reads the page itself, and the SDK decodes an empty object.
#[derive(Debug, Clone, Default)]
struct TakeBody(std::sync::Arc<std::sync::Mutex<Option<SdkBody>>>);

impl TakeBody {
    fn take(&self) -> Option<SdkBody> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Intercept for TakeBody {
    fn name(&self) -> &'static str {
        "migrate::TakeBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let response = context.response_mut();
        // Errors keep their body: the SDK reads their code from it.
        if response.status().is_success() {
            let body = std::mem::replace(response.body_mut(), SdkBody::from("{}"));
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        }
        Ok(())
    }
}

/// Scans `table` with `segments` parallel segments, sending each page to the
/// returned channel. `prefix` keeps only items whose PK starts with it;
/// `keys_only` fetches PK and SK alone. Errors arrive in the channel.
pub fn scan(
    client: &Client,
    table: &str,
    segments: u32,
    prefix: Option<&str>,
    keys_only: bool,
    policy: &RetryPolicy,
) -> mpsc::Receiver<Result<RawPage>> {
    // One page waiting per segment: pages of full items are ~1 MB of JSON each.
    let (tx, rx) = mpsc::channel(segments as usize);
    for segment in 0..segments {
        let (client, table, tx, policy) = (
            client.clone(),
            table.to_string(),
            tx.clone(),
            policy.clone(),
        );
        let prefix = prefix.map(str::to_string);
        tokio::spawn(async move {
            let mut start: Option<AvItem> = None;
            loop {
                let page = retry_failed(&policy, &format!("scan of {table}"), || {
                    let mut req = client
                        .scan()
                        .table_name(&table)
                        .segment(segment as i32)
                        .total_segments(segments as i32)
                        .consistent_read(true)
                        .limit(SCAN_PAGE_ITEMS)
                        .set_exclusive_start_key(start.clone());
                    if let Some(p) = &prefix {
                        req = req
                            .filter_expression("begins_with(#pk, :prefix)")
                            .expression_attribute_names("#pk", "PK")
                            .expression_attribute_values(":prefix", AttributeValue::S(p.clone()));
                    }
                    if keys_only {
                        req = req
                            .projection_expression("#pk, #sk")
                            .expression_attribute_names("#pk", "PK")
                            .expression_attribute_names("#sk", "SK");
                    }
                    let taken = TakeBody::default();
                    let call = req.customize().interceptor(taken.clone()).send();
                    let timeout = policy.request_timeout;
                    async move {
                        call.await.map_err(|err| Failed::of(&err))?;
                        let body = taken
                            .take()
                            .ok_or_else(|| Failed::transient("the response had no body"))?;
                        let read = tokio::time::timeout(timeout, ByteStream::new(body).collect());
                        let bytes = read
                            .await
                            .map_err(|_| Failed::transient("timed out reading the page"))?
                            .map_err(|e| Failed::transient(format!("reading the page: {e}")))?
                            .into_bytes();
                        RawPage::parse(bytes).map_err(|e| {
                            Failed::transient(format!("the page is not a Scan response: {e}"))
                        })
                    }
                })
                .await;
                match page {
                    Ok((page, last)) => {
                        start = last;
                        if tx.send(Ok(page)).await.is_err() {
                            return;
                        }
                        if start.is_none() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
    }
    rx
}

/// Gets up to [`MAX_BATCH_GET_KEYS`] items by key, retrying `UnprocessedKeys`;
/// returns the items found (any order).
pub async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<AvItem>,
    policy: &RetryPolicy,
) -> Result<Vec<AvItem>> {
    assert!(keys.len() <= MAX_BATCH_GET_KEYS);
    let mut found = Vec::with_capacity(keys.len());
    let mut pending = keys;
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(pending.clone()))
            .consistent_read(true)
            .build()
            .expect("keys set");
        let out = retrying(policy, &format!("batch get from {table}"), || {
            client
                .batch_get_item()
                .request_items(table, request.clone())
                .send()
        })
        .await?;
        if let Some(items) = out.responses().and_then(|r| r.get(table)) {
            found.extend(items.iter().cloned());
        }
        let left: Vec<AvItem> = out
            .unprocessed_keys()
            .and_then(|m| m.get(table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if !left.is_empty() {
            attempt += 1;
            if left.len() < pending.len() {
                attempt = 1;
            }
            if attempt > policy.max_retries {
                return Err(Error::Target(format!(
                    "batch get from {table}: {} keys still unprocessed after {} retries",
                    left.len(),
                    policy.max_retries
                )));
            }
            tokio::time::sleep(policy.delay(attempt, &mut rng)).await;
        }
        pending = left;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn classification() {
        assert_eq!(
            classify_code(Some("ProvisionedThroughputExceededException"), Some(400)),
            Class::Throttled
        );
        assert_eq!(
            classify_code(Some("ThrottlingException"), Some(400)),
            Class::Throttled
        );
        assert_eq!(
            classify_code(Some("RequestLimitExceeded"), Some(400)),
            Class::Throttled
        );
        assert_eq!(
            classify_code(Some("InternalServerError"), Some(500)),
            Class::Transient
        );
        assert_eq!(classify_code(None, Some(503)), Class::Transient);
        assert_eq!(
            classify_code(Some("ValidationException"), Some(400)),
            Class::Refused
        );
        assert!(!Class::Refused.retryable());
        assert_eq!(
            classify_code(Some("ResourceNotFoundException"), Some(400)),
            Class::Terminal
        );
        assert_eq!(
            classify_code(Some("AccessDeniedException"), Some(400)),
            Class::Terminal
        );
    }

    #[test]
    fn a_bare_5xx_without_an_error_code_is_transient() {
        use aws_sdk_dynamodb::config::http::HttpResponse;
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
        let status = |code: u16| {
            let raw = HttpResponse::new(
                code.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            );
            let err = SdkError::service_error(BatchWriteItemError::unhandled("gateway page"), raw);
            classify(&err)
        };
        assert_eq!(status(502), Class::Transient);
        assert_eq!(status(504), Class::Transient);
        assert_eq!(status(400), Class::Terminal);
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let p = RetryPolicy {
            max_retries: 8,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(1),
            exponential: true,
            request_timeout: Duration::from_secs(30),
            rate: None,
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(50));
        assert_eq!(p.ceiling(2), Duration::from_millis(100));
        assert_eq!(p.ceiling(5), Duration::from_millis(800));
        assert_eq!(p.ceiling(6), Duration::from_secs(1));
        assert_eq!(p.ceiling(60), Duration::from_secs(1));
        let mut rng = fastrand::Rng::with_seed(7);
        let waits: Vec<Duration> = (0..1000).map(|_| p.delay(3, &mut rng)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(200)));
        // full jitter spreads over the whole range, not just near the ceiling
        assert!(waits.iter().any(|w| *w < Duration::from_millis(20)));
        assert!(waits.iter().any(|w| *w > Duration::from_millis(180)));
        let flat = RetryPolicy {
            exponential: false,
            ..p
        };
        assert_eq!(flat.ceiling(5), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    #[allow(clippy::result_large_err)]
    async fn retrying_backs_off_in_virtual_time_and_gives_up() {
        // Virtual time: the waits are real sleeps, but the clock only jumps.
        let p = RetryPolicy {
            max_retries: 3,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(4),
            exponential: true,
            request_timeout: Duration::from_secs(30),
            rate: None,
        };
        let timeout = || {
            Err::<(), _>(
                SdkError::<aws_sdk_dynamodb::operation::scan::ScanError, ()>::timeout_error(
                    "attempt timed out",
                ),
            )
        };
        // Two timeouts then success: two waits, each within its ceiling.
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        retrying(&p, "scan", || {
            calls += 1;
            let r = if calls <= 2 { timeout() } else { Ok(()) };
            async move { r }
        })
        .await
        .unwrap();
        assert_eq!(calls, 3);
        assert!(tokio::time::Instant::now() - start <= Duration::from_secs(1 + 2));
        // Always failing: max_retries retries, then a clear error.
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        let err = retrying(&p, "scan of T", || {
            calls += 1;
            async move { timeout() }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 4);
        assert!(tokio::time::Instant::now() - start <= Duration::from_secs(1 + 2 + 4));
        assert!(err.to_string().contains("scan of T"), "{err}");
    }

    #[test]
    fn sizes_and_conversions() {
        // parsed from text: the json! macro would pass numbers through f64
        let text = r#"{"PK": "abc", "n": 1234.50, "m": {"a": "xy"}, "b": true}"#;
        let item: Item = serde_json::from_str(text).unwrap();
        // PK 2+3, n 1 + (6 digits→3)+1, m 1 + 3 + (1+1+2), b 1+1
        assert_eq!(
            item_size(&crate::json::Obj::parse(text).unwrap()),
            5 + 5 + 8 + 2
        );
        let av = item_to_av(&item);
        assert_eq!(av["n"], AttributeValue::N("1234.50".into()));
        assert_eq!(Value::Object(item_from_av(&av)), Value::Object(item));
    }

    /// DynamoDB's wire JSON of an SDK value, written independently of
    /// [`Write`]'s serializer, to check it against.
    fn wire_of(v: &AttributeValue) -> Value {
        match v {
            AttributeValue::S(s) => serde_json::json!({ "S": s }),
            AttributeValue::N(n) => serde_json::json!({ "N": n }),
            AttributeValue::Bool(b) => serde_json::json!({ "BOOL": b }),
            AttributeValue::Null(b) => serde_json::json!({ "NULL": b }),
            AttributeValue::L(l) => {
                serde_json::json!({ "L": l.iter().map(wire_of).collect::<Vec<_>>() })
            }
            AttributeValue::M(m) => serde_json::json!({ "M": wire_item(m) }),
            other => panic!("not produced from JSON: {other:?}"),
        }
    }

    fn wire_item(item: &AvItem) -> Value {
        Value::Object(item.iter().map(|(k, v)| (k.clone(), wire_of(v))).collect())
    }

    #[test]
    fn writes_are_serialized_as_dynamodb_wire_json() {
        let line = r#"{"PK": "S#a\"b\u00e9", "SK": "M", "n": 1234.50, "big": 12345678901234567890.000001,
            "m": {"a": "xy", "l": [1, true, null, {"k\n": -500.25}]}, "b": false, "e": "", "z": null}"#;
        let put = Write::put_json(line).unwrap();
        assert!(put.is_put());
        let via_value: Item = serde_json::from_str(line).unwrap();
        let expected =
            serde_json::json!({"PutRequest": {"Item": wire_item(&item_to_av(&via_value))}});
        let got: Value = serde_json::from_slice(&put.wire).unwrap();
        assert_eq!(got, expected);
        // numbers keep their exact text, strings their characters
        let text = String::from_utf8(put.wire.clone()).unwrap();
        assert!(text.contains(r#""n":{"N":"1234.50"}"#), "{text}");
        assert!(
            text.contains(r#"{"N":"12345678901234567890.000001"}"#),
            "{text}"
        );
        assert!(text.contains(r#"{"N":"-500.25"}"#), "{text}");
        // as written, where serde_json's Value would respell it as -0.5e+3
        let e = Write::put_json(r#"{"PK": "a", "x": -0.5e3}"#).unwrap();
        assert!(
            String::from_utf8(e.wire)
                .unwrap()
                .contains(r#"{"N":"-0.5e3"}"#)
        );
        assert_eq!(put.key["PK"], AttributeValue::S("S#a\"bé".into()));
        assert_eq!(put.key.len(), 2);
        // the same item given as a map gives the same request
        let from_map = Write::put(&via_value);
        assert_eq!(from_map.key, put.key);
        assert_eq!(
            serde_json::from_slice::<Value>(&from_map.wire).unwrap(),
            expected
        );

        let key: Item = serde_json::from_str(r#"{"PK": "P#1", "SK": "M"}"#).unwrap();
        let delete = Write::delete(&key);
        assert!(!delete.is_put());
        assert_eq!(
            serde_json::from_slice::<Value>(&delete.wire).unwrap(),
            serde_json::json!({"DeleteRequest": {"Key": {"PK": {"S": "P#1"}, "SK": {"S": "M"}}}})
        );

        let body = batch_body("T-\"1", &[(0, put), (1, delete)]);
        let body: Value = serde_json::from_slice(&body).unwrap();
        let requests = body["RequestItems"]["T-\"1"].as_array().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0], expected);
        assert!(Write::put_json("{\"PK\": ").is_err());
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://localhost:4566"));
        assert!(is_loopback("http://127.0.0.1:4566/"));
        assert!(!is_loopback("https://dynamodb.eu-south-1.amazonaws.com"));
    }

    #[test]
    fn write_units_count_size_and_the_indexes_an_item_is_in() {
        use crate::entities::table::{Index, Key, Projection, s};
        let gsi = |name, hash, range| Index {
            name,
            key: Key {
                hash: s(hash),
                range: Some(s(range)),
            },
            projection: Projection::All,
        };
        let indexes = [gsi("GSI1", "G1PK", "G1SK"), gsi("GSI2", "G2PK", "G2SK")];
        let big = "x".repeat(1500);
        let line = format!(
            r#"{{"PK":"P","SK":"S","G1PK":"a","G1SK":"b","G2PK":"c","n":12.50,"m":{{"k":[true,null]}},"d":"{big}"}}"#
        );
        let put = Write::put_json_in(&line, &indexes).unwrap();
        // 2 KB rounded up, in the table and GSI1 (GSI2 lacks its range key)
        assert_eq!(put.units, 4);
        // the same item as a backup holds it: the same size, the same units
        let wire = put.item_wire().unwrap().to_string();
        let obj = Obj::parse(&wire).unwrap();
        assert_eq!(wire_item_size(&obj), item_size(&Obj::parse(&line).unwrap()));
        assert_eq!(Write::put_wire_in(&wire, &indexes).unwrap().units, 4);
        let key: Item = serde_json::from_str(r#"{"PK":"P","SK":"S"}"#).unwrap();
        assert_eq!(Write::delete_in(&key, &indexes).units, 3);
        assert_eq!(Write::put_json(&line).unwrap().units, 2);
    }
}
