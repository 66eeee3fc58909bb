//! The write-rate cap and the time limit (docs/cutover.md), against real
//! PostgreSQL and the moto server through the fault proxy, which keeps every
//! `BatchWriteItem` with the time it arrived.
//!
//! The write units are counted here from the requests themselves, as
//! DynamoDB bills them (1 KB rounded up, once for the table and once per
//! index the item appears in; a delete as one per declared index too). Only
//! the cap's upper side is asserted: how close a load comes to its cap on a
//! busy machine is the benchmark's business, never a test's.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, text};

const CAP: f64 = 300.0;

/// The write units of one `BatchWriteItem` body.
fn units(body: &Value) -> u64 {
    let mut total = 0;
    for requests in body["RequestItems"].as_object().unwrap().values() {
        for r in requests.as_array().unwrap() {
            if let Some(item) = r["PutRequest"]["Item"].as_object() {
                let size: u64 = item.iter().map(|(k, v)| k.len() as u64 + size_of(v)).sum();
                let indexes = [("GSI1PK", "GSI1SK"), ("GSI2PK", "GSI2SK")]
                    .iter()
                    .filter(|(h, r)| item.contains_key(*h) && item.contains_key(*r))
                    .count() as u64;
                total += size.div_ceil(1024).max(1) * (1 + indexes);
            } else {
                // a delete: one for the table, one per declared index (sales: 2)
                total += 3;
            }
        }
    }
    total
}

/// A wire-JSON value's size as DynamoDB counts it: strings their bytes,
/// numbers one byte per two significant digits plus one, maps and lists 3
/// plus one per element, BOOL and NULL one.
fn size_of(v: &Value) -> u64 {
    let (tag, inner) = v.as_object().unwrap().iter().next().unwrap();
    match tag.as_str() {
        "S" => inner.as_str().unwrap().len() as u64,
        "N" => {
            let digits = inner
                .as_str()
                .unwrap()
                .bytes()
                .filter(u8::is_ascii_digit)
                .count();
            digits.div_ceil(2) as u64 + 1
        }
        "M" => {
            3 + inner
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + size_of(v))
                .sum::<u64>()
        }
        "L" => {
            3 + inner
                .as_array()
                .unwrap()
                .iter()
                .map(|v| 1 + size_of(v))
                .sum::<u64>()
        }
        "BOOL" | "NULL" => 1,
        other => panic!("this test's items hold no {other}"),
    }
}

/// Over every stretch between two requests, the units sent stay within the
/// cap over that stretch plus one second's budget, with half a second more
/// for the time a request takes from `migrate` to the proxy on a busy
/// machine. Uncapped, the load below sends its ~2,000 units in under half a
/// second, several times the bound. A single request
/// larger than one second's budget goes out after a full second's budget
/// and the ones after it wait for its excess: that excess is allowed too.
fn assert_within_cap(writes: &[(Duration, Value)], cap: f64) -> u64 {
    let sent: Vec<(f64, u64)> = writes
        .iter()
        .map(|(t, b)| (t.as_secs_f64(), units(b)))
        .collect();
    let largest = sent.iter().map(|(_, u)| *u).max().unwrap_or(0) as f64;
    let excess = (largest - cap).max(0.0);
    for i in 0..sent.len() {
        let mut sum = 0;
        for j in i..sent.len() {
            sum += sent[j].1;
            let span = sent[j].0 - sent[i].0;
            let allowed = cap * (span + 1.0 + 0.5) + excess;
            assert!(
                sum as f64 <= allowed,
                "{sum} units in {span:.3} s (requests {i}..={j}); the cap allows {allowed:.0}"
            );
        }
    }
    sent.iter().map(|(_, u)| u).sum()
}

fn prepare(env: &Env) {
    for phase in ["extract", "transform", "validate"] {
        let out = env.migrate(&["--phase", phase, "--quiet"]);
        assert!(out.status.success(), "{phase}: {}", text(&out));
    }
}

#[test]
fn a_capped_load_and_a_capped_rollback_keep_to_the_cap() {
    let env = Env::new("rate_cap");
    env.generate(120, 40, 600, 5);
    env.config(json!({}));
    prepare(&env);
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            record_writes: true,
            ..Faults::none()
        },
    );
    // The cap from the configuration...
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"maxWriteUnitsPerSecond": 100000}}));
    // ...and the command line's, which wins.
    let out = env.migrate(&["--phase", "load", "--quiet", "--max-write-rate", "300"]);
    assert!(out.status.success(), "{}", text(&out));
    let writes = proxy.batch_writes();
    let sent = assert_within_cap(&writes, CAP);
    let first_to_last = writes.last().unwrap().0 - writes[0].0;
    eprintln!(
        "{sent} units in {first_to_last:?}, {} requests",
        writes.len()
    );

    let report = env.report("reports/load_report.json");
    let mut reported = 0;
    for e in ["buyers", "producers", "sales"] {
        let r = &report["entities"][e];
        assert_eq!(r["maxWriteUnitsPerSecond"], json!(300), "{e}: {r}");
        assert!(r["writeUnitsPerSecond"].as_f64().unwrap() > 0.0, "{e}: {r}");
        reported += r["writeUnits"].as_u64().unwrap();
    }
    assert_eq!(reported, sent, "the report counts the units the proxy saw");
    let sales = env.jsonl("validated/sales.jsonl");
    assert_eq!(
        env.scan("sales").len(),
        sales.len(),
        "every sale is written"
    );

    // Rollback of the sales under the same cap: every delete is counted.
    let before = proxy.batch_writes().len();
    let out = env.migrate(&[
        "rollback",
        "--entity",
        "sales",
        "--yes",
        "--quiet",
        "--max-write-rate",
        "300",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let writes = proxy.batch_writes();
    let deleted = assert_within_cap(&writes[before..], CAP);
    assert_eq!(deleted, 3 * sales.len() as u64);
    assert!(env.scan("sales").is_empty(), "the sales are rolled back");
}

#[test]
fn a_time_limit_stops_the_load_with_exit_3_and_resume_finishes_it() {
    let env = Env::new("time_limit");
    env.generate(400, 40, 200, 8);
    env.config(json!({}));
    prepare(&env);
    // Every BatchWriteItem takes half a second: the buyers alone need 8 s.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(500),
            ..Faults::none()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"concurrency": 1}}));
    let out = env.migrate(&["--phase", "load", "--quiet", "--time-limit", "5s"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stopped at the time limit; run migrate --resume"),
        "{stderr}"
    );
    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).unwrap())
            .unwrap();
    let buyers = &cp["entities"]["buyers"]["load"];
    assert_eq!(buyers["state"], json!("interrupted"), "{buyers}");
    let confirmed = buyers["confirmed"].as_u64().unwrap();
    assert!(
        confirmed > 0 && confirmed < 400,
        "stopped during the buyers' load, its position saved: {confirmed}"
    );

    // --resume, without the delays, finishes every entity.
    env.config(json!({}));
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    for e in ["buyers", "producers", "sales"] {
        let expected = env.jsonl(&format!("validated/{e}.jsonl")).len();
        assert_eq!(env.scan(e).len(), expected, "{e}");
    }
}
