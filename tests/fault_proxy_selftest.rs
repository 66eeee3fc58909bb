//! Self-test of the fault-injecting DynamoDB proxy in `tests/support/fault_proxy.rs`.
//!
//! Needs a DynamoDB-compatible server (moto server) at `MIGRATE_TEST_DYNAMODB`
//! (default `http://127.0.0.1:4566`); fails with a clear message if it is not
//! reachable.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use fault_proxy::{FaultProxy, Faults, ServerErrorKind, ThrottleKind};

fn upstream() -> String {
    let url = std::env::var("MIGRATE_TEST_DYNAMODB")
        .unwrap_or_else(|_| "http://127.0.0.1:4566".to_string());
    let hostport = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let addr = hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("MIGRATE_TEST_DYNAMODB={url:?} is not a host:port URL"));
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "DynamoDB-compatible server not reachable at {url} ({e}). Start it first \
             (e.g. scripts/services.sh, or `moto_server -H 127.0.0.1 -p 4566`), or set \
             MIGRATE_TEST_DYNAMODB."
        );
    }
    url
}

async fn client(endpoint: &str, retries: bool) -> Client {
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let retry = if retries {
        RetryConfig::standard()
            .with_max_attempts(10)
            .with_initial_backoff(Duration::from_millis(5))
            .with_max_backoff(Duration::from_millis(50))
    } else {
        RetryConfig::disabled()
    };
    let conf = aws_sdk_dynamodb::config::Builder::from(&conf)
        .retry_config(retry)
        .build();
    Client::from_conf(conf)
}

fn unique_table(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("fp-selftest-{tag}-{}-{nanos}", std::process::id())
}

async fn create_table(c: &Client, name: &str) {
    c.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("PK")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("SK")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("PK")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("SK")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
    for _ in 0..100 {
        let d = c.describe_table().table_name(name).send().await.unwrap();
        if d.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("table {name} did not become ACTIVE");
}

async fn delete_table(c: &Client, name: &str) {
    c.delete_table()
        .table_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteTable {name}: {e:?}"));
}

fn put(pk: &str) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .item("PK", AttributeValue::S(pk.to_string()))
                .item("SK", AttributeValue::S("METADATA".to_string()))
                .item("n", AttributeValue::N("42".to_string()))
                .build()
                .unwrap(),
        )
        .build()
}

fn pk_of(wr: &WriteRequest) -> String {
    wr.put_request()
        .expect("put request")
        .item()
        .get("PK")
        .and_then(|v| v.as_s().ok())
        .expect("PK")
        .clone()
}

/// All PKs in the table (paginated Scan).
async fn scan_pks(c: &Client, table: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut start = None;
    loop {
        let r = c
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Scan {table}: {e:?}"));
        for item in r.items() {
            out.insert(item["PK"].as_s().unwrap().clone());
        }
        match r.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return out,
        }
    }
}

fn unprocessed_pks(
    u: Option<&HashMap<String, Vec<WriteRequest>>>,
    table: &str,
) -> BTreeSet<String> {
    u.and_then(|m| m.get(table))
        .map(|v| v.iter().map(pk_of).collect())
        .unwrap_or_default()
}

#[test]
fn crc32_is_zlib_crc32() {
    // Value moto (like DynamoDB) sent in x-amz-crc32 for this body.
    assert_eq!(fault_proxy::crc32(br#"{"TableNames": []}"#), 363_771_991);
    assert_eq!(fault_proxy::crc32(b""), 0);
    assert_eq!(fault_proxy::crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
#[should_panic(expected = "loopback")]
fn refuses_non_loopback_upstream() {
    let _ = FaultProxy::start_blocking("http://192.0.2.1:4566", Faults::none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_batch_holds_back_items_and_forwards_the_rest() {
    let up = upstream();
    let proxy = FaultProxy::start(
        &up,
        Faults {
            unprocessed_rate: 1.0,
            seed: 7,
            ..Faults::default()
        },
    )
    .await;
    assert!(proxy.endpoint.starts_with("http://127.0.0.1:"));
    let c = client(&proxy.endpoint, false).await;
    let direct = client(&up, false).await;
    let table = unique_table("partial");
    create_table(&c, &table).await; // CreateTable: not a faulted op by default

    let all: BTreeSet<String> = (0..25).map(|i| format!("ITEM#{i:02}")).collect();
    let r = c
        .batch_write_item()
        .request_items(&table, all.iter().map(|pk| put(pk)).collect())
        .send()
        .await
        .expect("BatchWriteItem through proxy");
    let held = unprocessed_pks(r.unprocessed_items(), &table);
    assert!(!held.is_empty(), "expected UnprocessedItems");
    assert!(
        held.len() < 25,
        "1..=24 held back by default, got {}",
        held.len()
    );
    assert!(held.is_subset(&all));
    let landed = scan_pks(&direct, &table).await;
    let expected: BTreeSet<String> = all.difference(&held).cloned().collect();
    assert_eq!(
        landed, expected,
        "exactly the not-held-back items must land"
    );

    let s = proxy.stats();
    assert_eq!(s.batch_write_requests, 1);
    assert_eq!(s.partial_batches, 1);
    assert_eq!(s.items_held_back, held.len() as u64);
    assert_eq!(s.items_poisoned, 0);
    assert_eq!(s.throttled + s.server_errors, 0);

    // Resubmitting UnprocessedItems until none remain writes everything
    // (at rate 1.0 a lone item would be held back forever, so lower it).
    proxy.set_faults(Faults {
        unprocessed_rate: 0.5,
        seed: 8,
        ..Faults::default()
    });
    let mut pending = r.unprocessed_items().cloned().unwrap_or_default();
    let mut rounds = 0;
    while pending.values().any(|v| !v.is_empty()) {
        rounds += 1;
        assert!(rounds < 100, "did not converge");
        let r = c
            .batch_write_item()
            .set_request_items(Some(pending))
            .send()
            .await
            .unwrap();
        pending = r.unprocessed_items().cloned().unwrap_or_default();
    }
    assert_eq!(scan_pks(&direct, &table).await, all);

    // A fixed fraction: round(0.2 * 25) = 5 held back.
    proxy.set_faults(Faults {
        unprocessed_rate: 1.0,
        unprocessed_fraction: Some(0.2),
        ..Faults::default()
    });
    let r = c
        .batch_write_item()
        .request_items(
            &table,
            (0..25).map(|i| put(&format!("FRAC#{i:02}"))).collect(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unprocessed_pks(r.unprocessed_items(), &table).len(), 5);

    // One proxy connection per SDK connection: keep-alive works.
    let s = proxy.stats();
    assert!(
        s.connections < s.requests,
        "keep-alive: {} connections for {} requests",
        s.connections,
        s.requests
    );
    delete_table(&c, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_and_server_errors_surface_without_sdk_retries() {
    let up = upstream();
    let proxy = FaultProxy::start(
        &up,
        Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        },
    )
    .await;
    let c = client(&proxy.endpoint, false).await;
    // Nothing is forwarded, so the table need not exist.
    let table = unique_table("throttle");
    let batch = || {
        c.batch_write_item()
            .request_items(&table, vec![put("A"), put("B")])
    };

    let err = batch().send().await.expect_err("throttled");
    let se = err.into_service_error();
    assert!(
        se.is_provisioned_throughput_exceeded_exception(),
        "expected ProvisionedThroughputExceededException, got {se:?}"
    );

    proxy.set_faults(Faults {
        throttle_rate: 1.0,
        throttle_kind: ThrottleKind::Throttling,
        ..Faults::default()
    });
    let err = batch().send().await.expect_err("throttled");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(err.code(), Some("ThrottlingException"));

    proxy.set_faults(Faults {
        throttle_rate: 1.0,
        throttle_kind: ThrottleKind::RequestLimitExceeded,
        ..Faults::default()
    });
    let err = batch().send().await.expect_err("throttled");
    assert!(err.into_service_error().is_request_limit_exceeded());

    proxy.set_faults(Faults {
        server_error_rate: 1.0,
        server_error_kind: ServerErrorKind::Internal500,
        ..Faults::default()
    });
    let err = batch().send().await.expect_err("500");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(err.into_service_error().is_internal_server_error());

    proxy.set_faults(Faults {
        server_error_rate: 1.0,
        server_error_kind: ServerErrorKind::Unavailable503,
        ..Faults::default()
    });
    let err = batch().send().await.expect_err("503");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));

    // Other ops are untouched by default (faults apply to BatchWriteItem only) ...
    proxy.set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    c.list_tables()
        .send()
        .await
        .expect("ListTables is not faulted");
    // ... unless listed in only_ops.
    proxy.set_faults(Faults {
        throttle_rate: 1.0,
        only_ops: Some(vec!["ListTables".into()]),
        ..Faults::default()
    });
    let err = c
        .list_tables()
        .send()
        .await
        .expect_err("ListTables throttled");
    assert_eq!(err.code(), Some("ProvisionedThroughputExceededException"));

    // max_faults: only the first 2 are faulted.
    proxy.set_faults(Faults {
        throttle_rate: 1.0,
        only_ops: Some(vec!["*".into()]),
        max_faults: Some(2),
        ..Faults::default()
    });
    assert!(c.list_tables().send().await.is_err());
    assert!(c.list_tables().send().await.is_err());
    c.list_tables().send().await.expect("budget exhausted");

    let s = proxy.stats();
    assert_eq!(s.throttled, 6);
    assert_eq!(s.server_errors, 2);
    assert_eq!(s.batch_write_requests, 5);
    assert_eq!(
        s.forwarded, 2,
        "only the two unfaulted ListTables are forwarded"
    );

    // With SDK retries on and a 50% throttle rate, calls still succeed.
    proxy.set_faults(Faults {
        throttle_rate: 0.5,
        only_ops: Some(vec!["ListTables".into()]),
        seed: 3,
        ..Faults::default()
    });
    proxy.reset_stats();
    let rc = client(&proxy.endpoint, true).await;
    for _ in 0..10 {
        rc.list_tables()
            .send()
            .await
            .expect("retried through throttles");
    }
    let s = proxy.stats();
    assert!(s.throttled > 0 && s.forwarded == 10, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_pk_is_never_written() {
    let up = upstream();
    let proxy = FaultProxy::start(
        &up,
        Faults {
            poison_pk: Some("POISON".into()),
            ..Faults::default()
        },
    )
    .await;
    let c = client(&proxy.endpoint, false).await;
    let direct = client(&up, false).await;
    let table = unique_table("poison");
    create_table(&c, &table).await;

    let pks = ["P1", "P2", "POISON", "P3", "P4"];
    let mut pending: HashMap<String, Vec<WriteRequest>> =
        HashMap::from([(table.clone(), pks.iter().map(|p| put(p)).collect())]);
    for round in 0..5 {
        let before = proxy.stats();
        let r = c
            .batch_write_item()
            .set_request_items(Some(pending))
            .send()
            .await
            .unwrap();
        let held = unprocessed_pks(r.unprocessed_items(), &table);
        assert_eq!(
            held,
            BTreeSet::from(["POISON".to_string()]),
            "round {round}"
        );
        let after = proxy.stats();
        // First round forwards the 4 others; later rounds carry only the
        // poison item, which is answered without forwarding.
        let forwarded = after.forwarded - before.forwarded;
        assert_eq!(forwarded, if round == 0 { 1 } else { 0 }, "round {round}");
        pending = r.unprocessed_items().cloned().unwrap();
    }
    let landed = scan_pks(&direct, &table).await;
    assert_eq!(
        landed,
        ["P1", "P2", "P3", "P4"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let s = proxy.stats();
    assert_eq!(s.items_poisoned, 5);
    assert_eq!(s.items_held_back, 5);
    assert_eq!(s.partial_batches, 5);
    delete_table(&c, &table).await;
}

/// Random mixed faults with SDK retries on: resubmitting UnprocessedItems
/// until none remain writes every item exactly as sent (nothing lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_faults_lose_nothing() {
    let up = upstream();
    let proxy = FaultProxy::start(
        &up,
        Faults {
            throttle_rate: 0.25,
            throttle_kind: ThrottleKind::Mixed,
            server_error_rate: 0.2,
            server_error_kind: ServerErrorKind::Mixed,
            unprocessed_rate: 0.5,
            delay_rate: 0.2,
            delay: Duration::from_millis(20),
            seed: 42,
            ..Faults::default()
        },
    )
    .await;
    let c = client(&proxy.endpoint, true).await;
    let direct = client(&up, false).await;
    let table = unique_table("mixed");
    create_table(&c, &table).await;

    // 40 concurrent writers of 10-item batches (enough requests that every
    // fault kind shows up, whatever the interleaving).
    let all: Vec<String> = (0..400).map(|i| format!("M#{i:03}")).collect();
    let mut tasks = Vec::new();
    for chunk in all.chunks(10) {
        let c = c.clone();
        let table = table.clone();
        let chunk: Vec<String> = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut pending =
                HashMap::from([(table.clone(), chunk.iter().map(|p| put(p)).collect())]);
            for _ in 0..200 {
                let r = c
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .expect("retried by SDK");
                pending = r.unprocessed_items().cloned().unwrap_or_default();
                if pending.values().all(|v| v.is_empty()) {
                    return;
                }
            }
            panic!("chunk did not converge");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let landed = scan_pks(&direct, &table).await;
    assert_eq!(landed, all.iter().cloned().collect());
    let s = proxy.stats();
    assert!(
        s.throttled > 0 && s.server_errors > 0 && s.partial_batches > 0,
        "{s:?}"
    );
    assert!(s.delayed > 0, "{s:?}");
    assert_eq!(s.upstream_errors, 0);
    delete_table(&c, &table).await;
}

/// One raw HTTP/1.1 exchange on an open connection: returns status line,
/// lower-cased headers and body; checks hop-by-hop and x-amz-crc32 handling.
fn raw_exchange(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    host: &str,
    op: &str,
    body: &str,
) -> (String, HashMap<String, String>, Vec<u8>) {
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: DynamoDB_20120810.{op}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    assert_ne!(
        headers.get("connection").map(|v| v.to_ascii_lowercase()),
        Some("close".to_string()),
        "upstream's Connection: close must not be passed on"
    );
    let len: usize = headers["content-length"].parse().unwrap();
    let mut buf = vec![0; len];
    reader.read_exact(&mut buf).unwrap();
    if let Some(crc) = headers.get("x-amz-crc32") {
        assert_eq!(crc, &fault_proxy::crc32(&buf).to_string(), "x-amz-crc32");
    }
    (status.trim_end().to_string(), headers, buf)
}

/// start_blocking from plain sync code; several requests over one raw
/// keep-alive connection, one of them answered by the proxy itself.
#[test]
fn start_blocking_and_raw_keep_alive() {
    let up = upstream();
    let proxy = FaultProxy::start_blocking(
        &up,
        Faults {
            poison_pk: Some("BAD".into()),
            ..Faults::none()
        },
    );
    let host = proxy.addr.to_string();
    let mut stream = TcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..2 {
        let (status, _, body) = raw_exchange(&mut stream, &mut reader, &host, "ListTables", "{}");
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("TableNames").is_some(), "{v}");
    }
    // Only a poison item: answered by the proxy (200, all unprocessed), not forwarded.
    let req = r#"{"RequestItems":{"no-such-table":[{"PutRequest":{"Item":{"PK":{"S":"BAD"},"SK":{"S":"x"},"n":{"N":"1.50"}}}}]}}"#;
    let (status, headers, body) =
        raw_exchange(&mut stream, &mut reader, &host, "BatchWriteItem", req);
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    assert!(headers.contains_key("x-amz-crc32"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let sent: serde_json::Value = serde_json::from_str(req).unwrap();
    assert_eq!(
        v["UnprocessedItems"], sent["RequestItems"],
        "held back verbatim"
    );

    let s = proxy.stats();
    assert_eq!((s.connections, s.requests, s.forwarded), (1, 3, 2));
    assert_eq!((s.items_poisoned, s.partial_batches), (1, 1));
    let addr = proxy.addr;
    drop(proxy);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "port closed after drop"
    );
}
