//! The load phase against real PostgreSQL and a real
//! DynamoDB API, with faults injected by `support::fault_proxy`: retries
//! lose nothing, an item that is always refused fails alone, `kill -9` in
//! the middle of a load resumes to exactly the validated artifact, rollback
//! puts a table back as it was, a dry run writes nothing, and a missing table
//! stops the run before any write.
//!
//! Expectations come from the validated artifacts (what the load must write)
//! and from the fault proxy's own counters, never from the code under test.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use support::fault_proxy::{FaultProxy, Faults, ServerErrorKind, ThrottleKind};
use support::{Env, files_under, text};

const ENTITIES: [&str; 3] = ["buyers", "producers", "sales"];

/// A JSON value with every number replaced by its canonical decimal text, so
/// items compare numbers by value (`1234.50` equals `1234.5`).
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

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 300 {
        return s;
    }
    let cut: String = s.chars().take(300).collect();
    format!("{cut}…({} bytes)", s.len())
}

fn pk_of(v: &Value) -> String {
    v["PK"]
        .as_str()
        .unwrap_or_else(|| panic!("no PK in {}", short(v)))
        .to_string()
}

/// The table holds exactly `expected` (by key), every item equal attribute by
/// attribute with numbers by value.
fn assert_table_is(env: &Env, entity: &str, expected: &[Value]) {
    let table = env.scan(entity);
    let want: BTreeMap<String, Value> = expected.iter().map(|v| (pk_of(v), canon(v))).collect();
    assert_eq!(
        want.len(),
        expected.len(),
        "{entity}: the expected items have duplicate keys"
    );
    let missing: Vec<&String> = want.keys().filter(|k| !table.contains_key(*k)).collect();
    let extra: Vec<&String> = table.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{entity}: {} items missing from the table (e.g. {:?}), {} unexpected (e.g. {:?})",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
    for (pk, w) in &want {
        let got = canon(&Value::Object(table[pk].clone()));
        if &got != w {
            let (wm, gm) = (w.as_object().unwrap(), got.as_object().unwrap());
            let diffs: Vec<String> = wm
                .keys()
                .chain(gm.keys())
                .filter(|k| wm.get(*k) != gm.get(*k))
                .map(|k| {
                    format!(
                        "{k}: want {} got {}",
                        wm.get(k).map(short).unwrap_or("absent".into()),
                        gm.get(k).map(short).unwrap_or("absent".into())
                    )
                })
                .collect();
            panic!("{entity} item {pk} differs: {diffs:?}");
        }
    }
}

fn table_as_values(env: &Env, entity: &str) -> Vec<Value> {
    env.scan(entity).into_values().map(Value::Object).collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs extract, transform and validate (no DynamoDB involved).
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

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An item's size as DynamoDB documents it: attribute names plus values;
/// strings in UTF-8 bytes; numbers 1 byte per two significant digits plus 1;
/// booleans and nulls 1; maps and lists 3 plus 1 per element.
fn ddb_size(item: &Map<String, Value>) -> usize {
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Number(n) => {
                let s = n.to_string();
                let digits: String = s
                    .chars()
                    .take_while(|c| *c != 'e' && *c != 'E')
                    .filter(char::is_ascii_digit)
                    .collect();
                let sig = digits
                    .trim_start_matches('0')
                    .trim_end_matches('0')
                    .len()
                    .max(1);
                sig.div_ceil(2) + 1
            }
            Value::Bool(_) | Value::Null => 1,
            Value::Array(a) => 3 + a.iter().map(|x| 1 + value(x)).sum::<usize>(),
            Value::Object(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + value(x)).sum::<usize>(),
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn faults_are_retried_and_nothing_is_lost() {
    let t0 = Instant::now();
    let env = Env::new("faults");
    env.generate(200, 60, 1500, 11);
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            throttle_rate: 0.15,
            throttle_kind: ThrottleKind::Mixed,
            server_error_rate: 0.05,
            server_error_kind: ServerErrorKind::Mixed,
            unprocessed_rate: 0.30,
            seed: 4242,
            ..Faults::default()
        },
    );
    // The whole run talks to DynamoDB through the proxy. Enough retries that
    // a batch reduced to one unlucky item still gets through (0.44^17 ≈ 1e-6).
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"maxRetries": 16, "retryDelay": 0.005, "maxRetryDelay": 0.1, "concurrency": 4}}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    let stats = proxy.stats();
    assert!(stats.throttled > 0, "the proxy throttled: {stats:?}");
    assert!(stats.server_errors > 0, "the proxy answered 5xx: {stats:?}");
    assert!(
        stats.partial_batches > 0 && stats.items_held_back > 0,
        "the proxy held items back: {stats:?}"
    );

    let mut validated_total = 0;
    for e in ENTITIES {
        let validated = env.jsonl(&format!("validated/{e}.jsonl"));
        assert!(!validated.is_empty(), "{e}: something to load");
        validated_total += validated.len();
        assert_table_is(&env, e, &validated);
    }

    let report = env.report("reports/load_report.json");
    let sum = |field: &str| -> u64 {
        ENTITIES
            .iter()
            .map(|e| {
                report["entities"][e][field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{e}.{field} in {report}"))
            })
            .sum()
    };
    for e in ENTITIES {
        let r = &report["entities"][e];
        assert_eq!(r["failed"], 0, "{e}: {r}");
        assert_eq!(
            r["written"].as_u64(),
            r["items"].as_u64(),
            "{e}: every item written once: {r}"
        );
    }
    assert_eq!(sum("written") as usize, validated_total, "{report}");
    assert!(
        sum("throttled") > 0 && sum("retries") > 0 && sum("unprocessedItems") > 0,
        "{report}"
    );
    // The client saw exactly what the proxy injected (only BatchWriteItem is faulted).
    assert_eq!(sum("throttled"), stats.throttled, "{report}\n{stats:?}");
    assert_eq!(
        sum("serverErrors"),
        stats.server_errors,
        "{report}\n{stats:?}"
    );
    assert_eq!(
        sum("unprocessedItems"),
        stats.items_held_back,
        "{report}\n{stats:?}"
    );
    assert_eq!(
        sum("requests"),
        stats.batch_write_requests,
        "{report}\n{stats:?}"
    );
    assert!(
        sum("retries") >= stats.throttled + stats.server_errors + stats.partial_batches,
        "{report}\n{stats:?}"
    );
    for e in ENTITIES {
        let failed = env.data_dir().join(format!("reports/failed/{e}.jsonl"));
        assert!(
            !failed.exists() || std::fs::read(&failed).unwrap().is_empty(),
            "{}",
            failed.display()
        );
    }
    let verify = env.report("reports/verification_report.json");
    for e in ENTITIES {
        assert_eq!(verify["entities"][e]["ok"], true, "{e}: {verify}");
    }
    eprintln!(
        "faults_are_retried_and_nothing_is_lost: {:.1}s, proxy {stats:?}",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn an_always_refused_item_fails_alone() {
    let t0 = Instant::now();
    let env = Env::new("poison");
    env.generate(200, 20, 20, 12);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let validated = env.jsonl("validated/buyers.jsonl");
    assert!(validated.len() > 50, "{}", validated.len());
    let poison = pk_of(&validated[validated.len() / 2]);
    let others: Vec<Value> = validated
        .iter()
        .filter(|v| pk_of(v) != poison)
        .cloned()
        .collect();
    assert_eq!(others.len(), validated.len() - 1);

    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            poison_pk: Some(poison.clone()),
            ..Faults::default()
        },
    );
    let failed_path = "reports/failed/buyers.jsonl";

    // continueOnError: the one item fails, everything else is written.
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"maxRetries": 3, "retryDelay": 0.005, "continueOnError": true}}));
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("failed/buyers.jsonl"),
        "the message points at the failed file: {}",
        text(&out)
    );
    let failed = env.jsonl(failed_path);
    assert_eq!(failed.len(), 1, "exactly the poisoned item: {failed:?}");
    assert_eq!(failed[0]["PK"], json!(poison), "{}", failed[0]);
    assert!(
        failed[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "with an error: {}",
        failed[0]
    );
    assert_table_is(&env, "buyers", &others);
    let stats = proxy.stats();
    assert!(
        stats.items_poisoned >= 4,
        "first try and 3 retries refused: {stats:?}"
    );
    let report = env.report("reports/load_report.json");
    assert_eq!(report["entities"]["buyers"]["failed"], 1, "{report}");
    assert_eq!(
        report["entities"]["buyers"]["written"].as_u64(),
        Some(others.len() as u64),
        "{report}"
    );

    // continueOnError false: the load stops, and the failed file names the item.
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"maxRetries": 3, "retryDelay": 0.005, "continueOnError": false}}));
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = env.jsonl(failed_path);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["PK"], json!(poison), "{}", failed[0]);
    assert!(
        failed[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        failed[0]
    );
    assert!(
        !env.scan("buyers").contains_key(&poison),
        "the poisoned item never reached the table"
    );
    let status = stdout(&env.migrate(&["status"]));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("buyers") && l.contains("load") && l.contains("failed")),
        "{status}"
    );
    eprintln!(
        "an_always_refused_item_fails_alone: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

/// The sales load step of the checkpoint: (confirmed, recordsIn).
fn sales_load_progress(env: &Env) -> Option<(u64, u64)> {
    let bytes = std::fs::read(env.data_dir().join("checkpoint.json")).ok()?;
    let cp: Value = serde_json::from_slice(&bytes).ok()?;
    let step = &cp["entities"]["sales"]["load"];
    Some((step["confirmed"].as_u64()?, step["recordsIn"].as_u64()?))
}

#[test]
fn kill_minus_9_mid_load_then_resume() {
    let t0 = Instant::now();
    let env = Env::new("kill9");
    env.generate(200, 60, 3000, 13);
    // Every BatchWriteItem waits 100 ms at the proxy; two in flight: the
    // sales load takes several seconds, across more than one checkpoint save.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(100),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint}, "migration": {"concurrency": 2}}));
    let log = std::fs::File::create(env.dir.join("killed.stderr")).unwrap();
    let mut child = env
        .migrate_cmd(&["--full", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (confirmed, total) = loop {
        if let Some((c, t)) = sales_load_progress(&env)
            && c > 0
        {
            break (c, t);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "migrate ended ({status}) before the sales load was partly confirmed: {}",
                std::fs::read_to_string(env.dir.join("killed.stderr")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the sales load never confirmed anything"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status}");
    assert!(
        confirmed < total,
        "killed midway: confirmed {confirmed} of {total}"
    );
    let validated = env.jsonl("validated/sales.jsonl");
    assert_eq!(validated.len() as u64, total);
    let in_table = env.scan("sales").len() as u64;
    assert!(
        in_table >= confirmed && in_table < total,
        "{in_table} items in the table, {confirmed} confirmed, {total} total"
    );
    let (after_kill, _) = sales_load_progress(&env).unwrap();
    let status = stdout(&env.migrate(&["status"]));
    assert!(status.contains("not finished"), "{status}");
    eprintln!(
        "killed at confirmed {confirmed}/{total} ({after_kill} in checkpoint, {in_table} in table) after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // From here on the proxy passes everything through at once.
    proxy.set_faults(Faults::none());

    // An artifact edited after the kill is refused, whether its manifest
    // still disagrees (edited by hand) or was rewritten to match (validated again).
    let artifact = env.data_dir().join("validated/sales.jsonl");
    let manifest = env.data_dir().join("validated/sales.jsonl.manifest.json");
    let (orig_artifact, orig_manifest) = (
        std::fs::read(&artifact).unwrap(),
        std::fs::read(&manifest).unwrap(),
    );
    let edited = String::from_utf8(orig_artifact.clone()).unwrap().replacen(
        "migration@system",
        "migration@systeM",
        1,
    );
    assert_ne!(edited.as_bytes(), &orig_artifact[..]);
    std::fs::write(&artifact, &edited).unwrap();
    let out = env.migrate(&["--resume", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("validated/sales.jsonl") && err.contains("SHA-256"),
        "{}",
        text(&out)
    );
    let mut m: Value = serde_json::from_slice(&orig_manifest).unwrap();
    m["sha256"] = json!(sha256_hex(edited.as_bytes()));
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let out = env.migrate(&["--resume", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("validated/sales.jsonl") && err.contains("changed"),
        "names the changed artifact: {}",
        text(&out)
    );
    assert_eq!(
        env.scan("sales").len() as u64,
        in_table,
        "a refused resume writes nothing"
    );
    std::fs::write(&artifact, &orig_artifact).unwrap();
    std::fs::write(&manifest, &orig_manifest).unwrap();

    eprintln!(
        "refused resumes done after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("resumed after {:.1}s", t0.elapsed().as_secs_f64());
    assert_table_is(&env, "sales", &validated);
    for e in ["buyers", "producers"] {
        assert_table_is(&env, e, &env.jsonl(&format!("validated/{e}.jsonl")));
    }
    let report = env.report("reports/load_report.json");
    let s = &report["entities"]["sales"];
    assert_eq!(
        s["written"].as_u64(),
        Some(total),
        "each item counted once: {s}"
    );
    assert_eq!(s["confirmed"].as_u64(), Some(total), "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    let failed = env.data_dir().join("reports/failed/sales.jsonl");
    assert!(!failed.exists() || std::fs::read(&failed).unwrap().is_empty());
    let status = stdout(&env.migrate(&["status"]));
    for e in ENTITIES {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(e) && l.contains(" load ") && l.contains(" done ")),
            "{e} load done: {status}"
        );
    }
    let verify = env.report("reports/verification_report.json");
    assert_eq!(verify["entities"]["sales"]["ok"], true, "{verify}");
    eprintln!(
        "kill_minus_9_mid_load_then_resume: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn rollback_restores_the_table_exactly() {
    let t0 = Instant::now();
    let env = Env::new("rollback");
    env.generate(60, 10, 10, 14);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let validated = env.jsonl("validated/buyers.jsonl");
    assert!(validated.len() > 20);

    // (a) three items the load will overwrite, in an older shape;
    // (b) two items the load knows nothing about.
    let mut before: Vec<Value> = Vec::new();
    for v in [
        &validated[0],
        &validated[7],
        &validated[validated.len() - 1],
    ] {
        let mut old = v.as_object().unwrap().clone();
        old.insert("companyName".into(), json!("OLD"));
        old.insert("legacyNote".into(), json!("there before the migration"));
        old.remove("createdBy");
        before.push(Value::Object(old));
    }
    for x in ["x", "y"] {
        before.push(
            json!({"PK": format!("OTHER#{x}"), "SK": "METADATA", "kind": "unrelated", "n": 7}),
        );
    }
    for item in &before {
        env.put("buyers", item.as_object().unwrap());
    }
    assert_table_is(&env, "buyers", &before);

    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut after_load: Vec<Value> = validated.clone();
    after_load.extend(before[3..].iter().cloned());
    assert_table_is(&env, "buyers", &after_load);

    // The export of the table taken before the first write, with its manifest.
    let backups = files_under(&env.data_dir().join("backups"));
    // (Per entity since backups became per entity and per run; in DynamoDB's
    // wire JSON since they keep every type; beside them the load's ledger.)
    let export = backups
        .iter()
        .find(|p| {
            let p = p.to_string_lossy();
            p.ends_with(".jsonl") && !p.ends_with(".ledger.jsonl")
        })
        .unwrap_or_else(|| panic!("no export in {backups:?}"));
    let export_manifest = backups
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".jsonl.manifest.json"))
        .unwrap_or_else(|| panic!("no manifest in {backups:?}"));
    assert!(
        export
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("buyers-"),
        "{}",
        export.display()
    );
    let m = read_json(export_manifest);
    assert_eq!(m["records"], 5, "{m}");
    let exported: Vec<Value> = std::fs::read_to_string(export)
        .unwrap()
        .lines()
        .map(|l| {
            let item = migrate::dynamo::wire_item_to_av(l).unwrap();
            Value::Object(migrate::dynamo::item_from_av(&item))
        })
        .collect();
    let canon_set = |v: &[Value]| -> BTreeMap<String, Value> {
        v.iter().map(|x| (pk_of(x), canon(x))).collect()
    };
    assert_eq!(
        canon_set(&exported),
        canon_set(&before),
        "the export is the table before the load"
    );

    // Without --yes and without a terminal: refused, nothing changed.
    let out = env
        .migrate_cmd(&["rollback", "--entity", "buyers"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--yes"), "{}", text(&out));
    assert_table_is(&env, "buyers", &after_load);
    assert!(!env.data_dir().join("reports/rollback_report.json").exists());

    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table_is(&env, "buyers", &before);
    let report = env.report("reports/rollback_report.json");
    let r = &report["entities"]["buyers"];
    assert_eq!(
        r["deleted"].as_u64(),
        Some(validated.len() as u64 - 3),
        "{report}"
    );
    assert_eq!(r["restored"], 3, "{report}");
    assert_eq!(r["failed"], 0, "{report}");
    assert_eq!(r["table"], json!(env.table("buyers")), "{report}");
    eprintln!(
        "rollback_restores_the_table_exactly: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn dry_run_writes_nothing_to_dynamodb() {
    let t0 = Instant::now();
    let env = Env::new("dryrun");
    env.generate(200, 60, 1500, 15);
    env.config(json!({}));
    let pre = json!({"PK": "OTHER#pre-existing", "SK": "METADATA", "note": "keep me"});
    env.put("producers", pre.as_object().unwrap());
    let tables_before: Vec<Vec<Value>> =
        ENTITIES.iter().map(|e| table_as_values(&env, e)).collect();

    let out = env.migrate(&["--dry-run", "--full"]);
    assert!(out.status.success(), "{}", text(&out));
    let so = stdout(&out);
    assert!(so.contains("Dry run"), "{so}");
    // entity, table, items, requests, write units, estimate
    let plan: BTreeMap<String, (u64, u64, u64)> = so
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6 && env.tables.get(f[0]).is_some_and(|t| t == f[1]) && f[5].ends_with('s'))
                .then(|| {
                    (
                        f[0].to_string(),
                        (
                            f[2].replace(',', "").parse().unwrap(),
                            f[3].replace(',', "").parse().unwrap(),
                            f[4].replace(',', "").parse().unwrap(),
                        ),
                    )
                })
        })
        .collect();
    assert_eq!(plan.len(), 3, "a plan line per entity: {so}");
    for e in ENTITIES {
        let validated = env.jsonl(&format!("validated/{e}.jsonl"));
        let items = validated.len() as u64;
        let units: u64 = validated
            .iter()
            .map(|v| ddb_size(v.as_object().unwrap()).div_ceil(1024).max(1) as u64)
            .sum();
        let (p_items, p_requests, p_units) = plan[e];
        assert!(items > 0, "{e}");
        assert_eq!(p_items, items, "{e} items: {so}");
        assert_eq!(p_requests, items.div_ceil(25), "{e} requests: {so}");
        assert_eq!(p_units, units, "{e} write units: {so}");
        if e != "sales" {
            assert_eq!(p_units, items, "{e}: small items are one unit each");
        }
    }
    assert!(
        plan["sales"].2 > plan["sales"].0,
        "the ~100 KB and 380 KB descriptions weigh more: {so}"
    );

    let tables_after: Vec<Vec<Value>> = ENTITIES.iter().map(|e| table_as_values(&env, e)).collect();
    assert_eq!(tables_before, tables_after, "the dry run changed a table");
    assert_eq!(tables_after[1], vec![pre.clone()]);
    assert!(
        files_under(&env.data_dir().join("backups")).is_empty(),
        "no backup in a dry run"
    );
    assert!(
        !env.data_dir().join("reports/load_report.json").exists(),
        "no load report in a dry run"
    );

    // A dry run against a table that does not exist says so, and writes nothing.
    let missing = format!("missing-{}", env.name);
    env.config(json!({"target": {"buyersTable": missing}}));
    let out = env.migrate(&["--dry-run", "--full", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&missing),
        "names the table: {}",
        text(&out)
    );
    let tables_after: Vec<Vec<Value>> = ENTITIES.iter().map(|e| table_as_values(&env, e)).collect();
    assert_eq!(tables_before, tables_after);
    assert!(files_under(&env.data_dir().join("backups")).is_empty());
    eprintln!(
        "dry_run_writes_nothing_to_dynamodb: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn terminal_error_stops_and_names_the_table() {
    let t0 = Instant::now();
    let env = Env::new("terminal");
    env.generate(60, 10, 30, 16);
    let missing = format!("missing-sales-{}", env.name);
    env.config(json!({"target": {"salesTable": missing}}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(&missing), "names the table: {}", text(&out));
    for e in ENTITIES {
        if e != "sales" {
            assert!(
                env.scan(e).is_empty(),
                "{e}: nothing written before the error"
            );
        }
    }
    assert!(
        files_under(&env.data_dir().join("backups")).is_empty(),
        "no backup taken"
    );
    assert!(!env.data_dir().join("reports/load_report.json").exists());
    assert!(
        !env.data_dir().join("extracted").exists(),
        "stopped before any phase ran"
    );
    eprintln!(
        "terminal_error_stops_and_names_the_table: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn a_target_that_keeps_throttling_is_named_as_one_that_may_pass_later() {
    let env = Env::new("throttled");
    env.generate(50, 5, 5, 13);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    // Every Scan throttled: verify retries, then stops; the message says the
    // failure was the retryable kind, and how to go on.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            throttle_rate: 1.0,
            only_ops: Some(vec!["Scan".into()]),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"maxRetries": 2, "retryDelay": 0.005}}));
    let out = env.migrate(&["--phase", "verify", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("scan of"), "{}", text(&out));
    assert!(
        err.contains("may pass later") && err.contains("migrate --resume"),
        "{}",
        text(&out)
    );
    assert!(proxy.stats().throttled >= 3, "{:?}", proxy.stats());
}
