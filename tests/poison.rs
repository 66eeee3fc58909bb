//! Nothing lost, nothing blocked by one bad record (docs/safety.md), against
//! real PostgreSQL and a real DynamoDB API: a batch DynamoDB refuses for one
//! item's sake is split until that item alone fails; with continueOnError
//! false the refused batch is never confirmed, so `--resume` tries it again;
//! a panic while mapping a record fails the phase and keeps nothing, instead
//! of cutting the artifact short.
//!
//! Expectations come from the validated artifacts and the fault proxy's own
//! counters, never from the code under test.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, text};

/// Numbers compared by value (`1234.50` equals `1234.5`).
fn canon(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            let d = Decimal::from_str_exact(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .unwrap_or_else(|e| panic!("number {s}: {e}"));
            Value::String(format!("N:{}", d.normalize()))
        }
        Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), canon(v))).collect()),
        other => other.clone(),
    }
}

fn pk_of(v: &Value) -> String {
    v["PK"].as_str().expect("a PK").to_string()
}

/// The table holds exactly `expected`, item by item.
fn assert_table_is(env: &Env, entity: &str, expected: &[Value]) {
    let table: BTreeMap<String, Value> = env
        .scan(entity)
        .into_iter()
        .map(|(k, v)| (k, canon(&Value::Object(v))))
        .collect();
    let want: BTreeMap<String, Value> = expected.iter().map(|v| (pk_of(v), canon(v))).collect();
    let missing: Vec<&String> = want.keys().filter(|k| !table.contains_key(*k)).collect();
    let extra: Vec<&String> = table.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{entity}: missing {missing:?}, unexpected {extra:?}"
    );
    for (pk, w) in &want {
        assert_eq!(&table[pk], w, "{entity} item {pk}");
    }
}

fn prepare(env: &Env, entities: &[&str]) {
    for phase in ["extract", "transform", "validate"] {
        let mut args = vec!["--phase", phase, "--quiet"];
        for e in entities {
            args.extend(["--entity", e]);
        }
        let out = env.migrate(&args);
        assert!(out.status.success(), "{phase}: {}", text(&out));
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn load_step(env: &Env, entity: &str) -> Value {
    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).unwrap())
            .unwrap();
    cp["entities"][entity]["load"].clone()
}

#[test]
fn a_refused_item_is_isolated_and_the_rest_is_written() {
    let env = Env::new("isolate");
    env.generate(200, 120, 10, 21);
    env.config(json!({}));
    prepare(&env, &["buyers", "producers"]);
    let buyers = env.jsonl("validated/buyers.jsonl");
    let poison = pk_of(&buyers[buyers.len() / 2]);
    let others: Vec<Value> = buyers
        .iter()
        .filter(|v| pk_of(v) != poison)
        .cloned()
        .collect();
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            refuse_pk: Some(poison.clone()),
            ..Faults::default()
        },
    );

    // continueOnError: the refused item fails alone, with the server's
    // message; every other item is written.
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"retryDelay": 0.005, "continueOnError": true}}));
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("failed/buyers.jsonl"),
        "{}",
        text(&out)
    );
    let failed = env.jsonl("reports/failed/buyers.jsonl");
    assert_eq!(failed.len(), 1, "only the refused item: {failed:?}");
    assert_eq!(failed[0]["PK"], json!(poison), "{}", failed[0]);
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ValidationException") && error.contains("injected by fault proxy"),
        "the server's message: {error}"
    );
    assert_table_is(&env, "buyers", &others);
    let refused = proxy.stats().refused_batches;
    // 25 items: refused whole, then one half of each split, down to the item.
    assert!(
        (2..=8).contains(&refused),
        "split by halving, {refused} refused requests"
    );
    let report = env.report("reports/load_report.json");
    let b = &report["entities"]["buyers"];
    assert_eq!(b["failed"], 1, "{b}");
    assert_eq!(b["written"].as_u64(), Some(others.len() as u64), "{b}");
    assert_eq!(b["refused"], 1, "{b}");

    // continueOnError false: the load stops at the refused item, which is
    // not confirmed: the checkpoint never passes it.
    let producers = env.jsonl("validated/producers.jsonl");
    assert!(producers.len() > 75, "several batches: {}", producers.len());
    let at = producers.len() / 2;
    let poison = pk_of(&producers[at]);
    proxy.set_faults(Faults {
        refuse_pk: Some(poison.clone()),
        ..Faults::default()
    });
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"retryDelay": 0.005, "continueOnError": false, "concurrency": 1}}));
    let out = env.migrate(&["--phase", "load", "--entity", "producers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("continueOnError is false"),
        "{}",
        text(&out)
    );
    let failed = env.jsonl("reports/failed/producers.jsonl");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["PK"], json!(poison));
    let step = load_step(&env, "producers");
    assert!(
        step["confirmed"].as_u64().unwrap() <= at as u64,
        "the checkpoint does not pass the refused item {at}: {step}"
    );
    assert_eq!(step["state"], "failed", "{step}");

    // --resume tries the refused batch again (and fails again while the
    // server still refuses it)...
    let before = proxy.stats().refused_batches;
    let out = env.migrate(&["--resume", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        proxy.stats().refused_batches > before,
        "--resume sent the refused item again"
    );
    // ...and once the server takes it, finishes with every item written.
    proxy.set_faults(Faults::none());
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table_is(&env, "producers", &producers);
    let report = env.report("reports/load_report.json");
    let p = &report["entities"]["producers"];
    assert_eq!(p["failed"], 0, "{p}");
    assert_eq!(p["written"].as_u64(), Some(producers.len() as u64), "{p}");
    let failed = std::fs::read_to_string(env.data_dir().join("reports/failed/producers.jsonl"))
        .unwrap_or_default();
    assert!(failed.is_empty(), "nothing left failed: {failed}");
}

#[test]
fn a_worker_panic_fails_the_phase_and_keeps_nothing() {
    let env = Env::new("panic");
    env.generate(3000, 10, 10, 22);
    env.config(json!({}));
    let out = env.migrate(&["--phase", "extract", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let extracted = env.jsonl("extracted/buyers.jsonl").len();
    assert!(
        extracted > 2100,
        "more than two chunks of lines: {extracted}"
    );

    // A panic in the middle of the input (the second of three chunks).
    let out = env
        .migrate_cmd(&["--phase", "transform", "--entity", "buyers", "--quiet"])
        .env("MIGRATE_TEST_PANIC_AT", "buyers:1500")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("transform of buyers") && err.contains("line 1500"),
        "names the entity and the record: {}",
        text(&out)
    );
    assert!(
        !env.data_dir().join("transformed/buyers.jsonl").exists(),
        "no transformed artifact is kept"
    );
    let status = String::from_utf8_lossy(&env.migrate(&["status"]).stdout).into_owned();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("buyers") && l.contains("transform") && l.contains("failed")),
        "{status}"
    );

    // The same command without the fault: every record comes out.
    let out = env.migrate(&["--phase", "transform", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let items = env.jsonl("transformed/buyers.jsonl").len();
    let quarantined =
        std::fs::read_to_string(env.data_dir().join("reports/quarantine/buyers.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
    assert_eq!(items + quarantined, extracted);
}

#[test]
fn timeouts_are_counted_apart_from_server_errors() {
    let env = Env::new("timeouts");
    env.generate(60, 10, 10, 23);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let buyers = env.jsonl("validated/buyers.jsonl");
    // Three BatchWriteItems held past the request timeout, then none.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(1500),
            max_faults: Some(3),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"requestTimeout": 0.5, "retryDelay": 0.005, "concurrency": 1}}));
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(proxy.stats().delayed, 3);
    assert_table_is(&env, "buyers", &buyers);
    let report = env.report("reports/load_report.json");
    let b = &report["entities"]["buyers"];
    assert_eq!(b["timeouts"], 3, "{b}");
    assert_eq!(b["serverErrors"], 0, "{b}");
    assert_eq!(b["written"].as_u64(), Some(buyers.len() as u64), "{b}");
}

/// A full tmpfs mounted over `dir`: every write into it fails with ENOSPC.
/// None when this process may not mount (not root, no CAP_SYS_ADMIN).
struct FullDisk {
    dir: std::path::PathBuf,
}

impl FullDisk {
    fn mount(dir: &std::path::Path) -> Option<FullDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return None;
        }
        // Fill it: the next byte written anywhere in it has no room.
        let _ = std::fs::write(dir.join("filler"), vec![0u8; 64 * 1024]);
        Some(FullDisk {
            dir: dir.to_path_buf(),
        })
    }

    fn unmount(self) {
        drop(self);
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

#[test]
fn a_failed_file_that_cannot_be_written_stops_the_load_before_the_batch_counts() {
    let env = Env::new("failedfull");
    env.generate(200, 10, 10, 24);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let buyers = env.jsonl("validated/buyers.jsonl");
    let at = buyers.len() / 2;
    let poison = pk_of(&buyers[at]);
    let others: Vec<Value> = buyers
        .iter()
        .filter(|v| pk_of(v) != poison)
        .cloned()
        .collect();
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            refuse_pk: Some(poison.clone()),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"retryDelay": 0.005, "continueOnError": true, "concurrency": 1}}));

    // The disk under the failed file is full: the refused item cannot be
    // recorded, so the load stops and its batch is not confirmed.
    let failed_dir = env.data_dir().join("reports/failed");
    let Some(full) = FullDisk::mount(&failed_dir) else {
        panic!(
            "this test mounts a full tmpfs over {} and needs root (CAP_SYS_ADMIN)",
            failed_dir.display()
        );
    };
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    let err = stderr(&out);
    full.unmount();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        err.contains("failed/buyers.jsonl") && err.contains("No space left"),
        "names the file and the cause: {}",
        text(&out)
    );
    let step = load_step(&env, "buyers");
    assert!(
        step["confirmed"].as_u64().unwrap() <= at as u64,
        "the checkpoint does not pass the unrecorded item {at}: {step}"
    );
    assert_eq!(step["state"], "failed", "{step}");

    // With room again, --resume records the refused item and writes the rest.
    let out = env.migrate(&["--resume", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = env.jsonl("reports/failed/buyers.jsonl");
    assert_eq!(failed.len(), 1, "the refused item is recorded: {failed:?}");
    assert_eq!(failed[0]["PK"], json!(poison), "{}", failed[0]);
    assert_table_is(&env, "buyers", &others);
    let report = env.report("reports/load_report.json");
    let b = &report["entities"]["buyers"];
    assert_eq!(b["failed"], 1, "{b}");
    assert_eq!(b["written"].as_u64(), Some(others.len() as u64), "{b}");
}
