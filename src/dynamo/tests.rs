//! Unit tests of the DynamoDB side: classification, backoff, the wire
//! encoding, sizes and write units.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::entities::Item;
use crate::json::Obj;

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
        calls: Default::default(),
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
        calls: Default::default(),
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
    let c = p.calls.counts();
    assert_eq!((c.requests, c.timeouts, c.retries), (3, 2, 2));
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
    let expected = serde_json::json!({"PutRequest": {"Item": wire_item(&item_to_av(&via_value))}});
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
