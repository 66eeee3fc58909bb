//! Unit tests of the retry drivers over the [`Target`] seam, against
//! [`Memory`] with queued faults: what is retried, what is re-sent, what is
//! counted, and what stops a phase (docs/design.md, "The Target seam").

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::*;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
        exponential: true,
        request_timeout: Duration::from_secs(1),
        rate: None,
        calls: Default::default(),
    }
}

fn put(i: u64) -> (u64, Write) {
    let line = format!(r#"{{"PK":"BUYER#{i:03}","SK":"METADATA","n":{i}}}"#);
    (i, Write::put_json(&line).unwrap())
}

fn puts(n: u64) -> Vec<(u64, Write)> {
    (0..n).map(put).collect()
}

fn key(pk: &str, sk: &str) -> AvItem {
    AvItem::from([
        ("PK".to_string(), AttributeValue::S(pk.into())),
        ("SK".to_string(), AttributeValue::S(sk.into())),
    ])
}

fn memory(table: &str) -> Memory {
    let m = Memory::new();
    m.create_table(table);
    m
}

#[tokio::test]
async fn throttles_and_server_errors_are_retried_and_counted() {
    let m = memory("t");
    m.fail_next(
        Op::Write,
        Fault::Fail(Class::Throttled, "ThrottlingException".into()),
    );
    m.fail_next(
        Op::Write,
        Fault::Fail(Class::Transient, "InternalServerError".into()),
    );
    m.fail_next(Op::Write, Fault::Timeout);
    let stats = CallStats::default();
    let out = write_batch(&m, "t", puts(25), &policy(), &stats)
        .await
        .unwrap();
    assert_eq!((out.written, out.failed.len()), (25, 0));
    assert_eq!(m.items("t").len(), 25);
    let c = stats.counts();
    assert_eq!((c.requests, c.retries), (4, 3));
    assert_eq!((c.throttled, c.server_errors, c.timeouts), (1, 1, 1));
    assert_eq!(c.write_units, 4 * 25, "every attempt takes its units");
}

#[tokio::test]
async fn only_unprocessed_items_are_sent_again() {
    let m = memory("t");
    m.fail_next(Op::Write, Fault::Unprocessed(10));
    m.fail_next(Op::Write, Fault::Unprocessed(4));
    let stats = CallStats::default();
    let out = write_batch(&m, "t", puts(25), &policy(), &stats)
        .await
        .unwrap();
    assert_eq!((out.written, out.failed.len()), (25, 0));
    let c = stats.counts();
    assert_eq!(c.unprocessed_items, 14);
    assert_eq!(c.write_units, 25 + 10 + 4, "the re-sent items alone");
    assert_eq!(m.calls(Op::Write), 3);
}

#[tokio::test]
async fn items_left_after_every_retry_fail_with_the_reason() {
    let m = memory("t");
    for _ in 0..4 {
        m.fail_next(
            Op::Write,
            Fault::Fail(Class::Throttled, "ThrottlingException".into()),
        );
    }
    let stats = CallStats::default();
    let out = write_batch(&m, "t", puts(3), &policy(), &stats)
        .await
        .unwrap();
    assert_eq!(out.written, 0);
    let failed: Vec<u64> = out.failed.iter().map(|(i, _)| *i).collect();
    assert_eq!(failed, [0, 1, 2]);
    assert!(out.failed[0].1.contains("ThrottlingException"));
    assert_eq!(m.calls(Op::Write), 4, "one try and max_retries more");
    assert!(m.items("t").is_empty());
}

#[tokio::test]
async fn a_missing_table_stops_at_once_naming_table_and_first_key() {
    let m = Memory::new();
    let stats = CallStats::default();
    let err = write_batch(&m, "gone", puts(2), &policy(), &stats)
        .await
        .unwrap_err();
    let BatchError::Terminal(t) = err else {
        panic!("a missing table is terminal: {err:?}")
    };
    assert_eq!(t.first_index, 0);
    assert!(t.message.contains("table gone"), "{}", t.message);
    assert!(
        t.message.contains("PK=BUYER#000, SK=METADATA"),
        "{}",
        t.message
    );
    assert_eq!(m.calls(Op::Write), 1, "not retried");
}

#[tokio::test]
async fn a_refused_item_is_isolated_and_the_rest_written() {
    let m = memory("t");
    m.refuse_pk("BUYER#017");
    let stats = CallStats::default();
    let out = crate::pipeline::write_isolating(&m, "t", puts(25), &policy(), &stats)
        .await
        .unwrap();
    assert_eq!(out.written, 24);
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].0, 17);
    assert!(out.failed[0].1.contains("BUYER#017"), "{}", out.failed[0].1);
    assert_eq!(stats.counts().refused, 1);
    assert_eq!(m.items("t").len(), 24);
    assert!(m.item("t", "BUYER#017", "METADATA").is_none());
}

#[tokio::test]
async fn deletes_remove_and_puts_replace() {
    let m = memory("t");
    let stats = CallStats::default();
    write_batch(&m, "t", puts(3), &policy(), &stats)
        .await
        .unwrap();
    let mut second = vec![(
        0,
        Write::put_json(r#"{"PK":"BUYER#000","SK":"METADATA","n":99}"#).unwrap(),
    )];
    let gone: crate::entities::Item =
        serde_json::from_str(r#"{"PK":"BUYER#001","SK":"METADATA"}"#).unwrap();
    second.push((1, Write::delete(&gone)));
    write_batch(&m, "t", second, &policy(), &stats)
        .await
        .unwrap();
    assert_eq!(m.items("t").len(), 2);
    let first = m.item("t", "BUYER#000", "METADATA").unwrap();
    assert!(first.contains(r#""99""#), "{first}");
}

async fn scan_all(
    target: &SharedTarget,
    segments: u32,
    prefix: Option<&str>,
    keys_only: bool,
) -> crate::error::Result<Vec<String>> {
    let mut rx = scan(target, "t", segments, prefix, keys_only, &policy());
    let mut items = Vec::new();
    while let Some(page) = rx.recv().await {
        items.extend(page?.items().map(str::to_string));
    }
    items.sort();
    Ok(items)
}

#[tokio::test]
async fn a_scan_reads_every_item_once_across_segments_and_pages() {
    let m = Arc::new(memory("t"));
    for i in 0..2500 {
        m.put_json(
            "t",
            &format!(r#"{{"PK":"BUYER#{i:04}","SK":"METADATA","createdBy":"r"}}"#),
        );
    }
    for i in 0..30 {
        m.put_json(
            "t",
            &format!(r#"{{"PK":"SALE#{i:02}","SK":"METADATA","big":"x"}}"#),
        );
    }
    // A transient fault on one page is retried, not surfaced.
    m.fail_next(
        Op::Scan,
        Fault::Fail(Class::Transient, "InternalServerError".into()),
    );
    let target: SharedTarget = m.clone();
    let all = scan_all(&target, 2, None, false).await.unwrap();
    assert_eq!(all.len(), 2530);
    all.windows(2)
        .for_each(|w| assert_ne!(w[0], w[1], "no item twice"));
    // About 1265 items a segment, 1000 a page: two pages each, and the retry.
    assert_eq!(m.calls(Op::Scan), 2 * 2 + 1);

    let sales = scan_all(&target, 3, Some("SALE#"), true).await.unwrap();
    assert_eq!(sales.len(), 30);
    assert!(
        sales.iter().all(|s| !s.contains("big")),
        "keys only: {}",
        sales[0]
    );
}

#[tokio::test]
async fn a_scan_of_a_missing_table_says_so() {
    let target: SharedTarget = Arc::new(Memory::new());
    let err = scan_all(&target, 2, None, false).await.unwrap_err();
    assert!(err.to_string().contains("table t not found"), "{err}");
}

#[tokio::test]
async fn a_batch_get_asks_again_for_unprocessed_keys() {
    let m = memory("t");
    for i in 0..10 {
        m.put_json("t", &format!(r#"{{"PK":"BUYER#{i}","SK":"METADATA"}}"#));
    }
    m.fail_next(Op::Get, Fault::Unprocessed(4));
    m.fail_next(Op::Get, Fault::Timeout);
    let keys: Vec<AvItem> = (0..12)
        .map(|i| key(&format!("BUYER#{i}"), "METADATA"))
        .collect();
    let found = batch_get(&m, "t", keys, &policy()).await.unwrap();
    assert_eq!(found.len(), 10, "the two absent keys are not found");
    assert_eq!(m.calls(Op::Get), 3);
}

#[tokio::test]
async fn keys_still_unprocessed_after_every_retry_are_an_error() {
    let m = memory("t");
    for _ in 0..5 {
        m.fail_next(Op::Get, Fault::Unprocessed(1));
    }
    let keys = vec![key("BUYER#1", "METADATA")];
    let err = batch_get(&m, "t", keys, &policy()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("1 keys still unprocessed after 3 retries"),
        "{err}"
    );
}

#[tokio::test]
async fn memory_keeps_the_limits_dynamodb_keeps() {
    let m = memory("t");
    let many: Vec<(u64, Write)> = puts(26);
    let err = m.write("t", &many).await.unwrap_err();
    assert_eq!(err.class, Class::Refused);
    let keys: Vec<AvItem> = (0..101).map(|i| key(&format!("P{i}"), "S")).collect();
    assert_eq!(m.get("t", keys).await.unwrap_err().class, Class::Refused);
}

#[tokio::test]
async fn a_table_is_described_and_checked_through_the_seam() {
    use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType, TableDescription};
    let m = Memory::new();
    assert!(describe_table(&m, "T", &policy()).await.unwrap().is_none());
    let missing = check_table(&m, "T", &policy()).await.unwrap_err();
    assert!(
        missing.to_string().contains("table T does not exist"),
        "{missing}"
    );

    // Throttled twice, then answered: retried, and the table passes.
    m.create_table("T");
    for _ in 0..2 {
        m.fail_next(
            Op::Describe,
            Fault::Fail(Class::Throttled, "ThrottlingException".into()),
        );
    }
    let before = m.calls(Op::Describe);
    check_table(&m, "T", &policy()).await.unwrap();
    assert_eq!(m.calls(Op::Describe) - before, 3);

    // A terminal failure is not retried.
    m.fail_next(
        Op::Describe,
        Fault::Fail(Class::Terminal, "AccessDeniedException".into()),
    );
    let denied = check_table(&m, "T", &policy()).await.unwrap_err();
    assert!(denied.to_string().contains("AccessDenied"), "{denied}");
    assert_eq!(denied.class(), Class::Terminal);

    // A table keyed otherwise is refused, naming what it found.
    let id = KeySchemaElement::builder()
        .attribute_name("id")
        .key_type(KeyType::Hash)
        .build()
        .unwrap();
    m.describe_as("T", TableDescription::builder().key_schema(id).build());
    let other = check_table(&m, "T", &policy()).await.unwrap_err();
    assert!(
        other
            .to_string()
            .contains("expected key schema PK (S, HASH)"),
        "{other}"
    );
}

#[tokio::test]
async fn gets_retry_failures_and_unprocessed_keys_on_one_budget() {
    let m = memory("t");
    for i in 0..3u64 {
        let (_, w) = put(i);
        m.put_wire("t", w.item_wire().unwrap());
    }
    let keys: Vec<AvItem> = (0..3)
        .map(|i| key(&format!("BUYER#{i:03}"), "METADATA"))
        .collect();

    // A throttle, then 2 keys left, then 1 (progress), then a 5xx: every
    // key comes back, in five calls.
    m.fail_next(
        Op::Get,
        Fault::Fail(Class::Throttled, "ThrottlingException".into()),
    );
    m.fail_next(Op::Get, Fault::Unprocessed(2));
    m.fail_next(Op::Get, Fault::Unprocessed(1));
    m.fail_next(Op::Get, Fault::Fail(Class::Transient, "HTTP 500".into()));
    let p = policy();
    let found = batch_get(&m, "t", keys.clone(), &p).await.unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(m.calls(Op::Get), 5);
    // counted in the policy's calls, as a report shows them
    let c = p.calls.counts();
    assert_eq!(
        (
            c.requests,
            c.throttled,
            c.server_errors,
            c.unprocessed_items,
            c.retries
        ),
        (5, 1, 1, 3, 4)
    );

    // Four failures in a row spend the budget of three retries.
    for _ in 0..4 {
        m.fail_next(Op::Get, Fault::Fail(Class::Transient, "HTTP 503".into()));
    }
    let err = batch_get(&m, "t", keys, &policy()).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(err.class(), Class::Transient);
}
