//! Crash anywhere (docs/safety.md): `migrate --full` is killed with SIGKILL
//! at seeded random moments spread over extract, transform, validate, load
//! and verify; `migrate --resume` must then finish, and the tables (item by
//! item) and every report count must be what a clean run gives. Nothing a
//! crash leaves (temporary files) survives the resume.
//!
//! The database is small and the load slowed a little at the fault proxy, so
//! the whole test takes a couple of minutes.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, files_under, text};

const ENTITIES: [&str; 3] = ["buyers", "producers", "sales"];
const PHASES: [&str; 5] = ["extract", "transform", "validate", "load", "verify"];
/// Kills that must land while `migrate` still runs.
const KILLS: usize = 10;

fn read(env: &Env, rel: &str) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(env.data_dir().join(rel)).ok()?).ok()
}

/// An item without the audit times, which fall back to the run's start time
/// when the source has none (so differ between runs).
fn stable(item: &Value) -> Value {
    let mut m: Map<String, Value> = item.as_object().cloned().unwrap_or_default();
    m.remove("createdAt");
    m.remove("updatedAt");
    Value::Object(m)
}

/// What a run must reproduce: per entity the validated items (stable part,
/// by PK) and the counts of the reports.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: BTreeMap<String, BTreeMap<String, Value>>,
    counts: BTreeMap<String, Value>,
}

fn outcome(env: &Env) -> Outcome {
    let mut items = BTreeMap::new();
    let mut counts = BTreeMap::new();
    let validation = read(env, "reports/validation_report.json").expect("validation report");
    let load = read(env, "reports/load_report.json").expect("load report");
    let verify = read(env, "reports/verification_report.json").expect("verification report");
    for e in ENTITIES {
        let validated = env.jsonl(&format!("validated/{e}.jsonl"));
        items.insert(
            e.to_string(),
            validated
                .iter()
                .map(|v| (v["PK"].as_str().unwrap().to_string(), stable(v)))
                .collect(),
        );
        let v = &validation["entities"][e];
        let l = &load["entities"][e];
        let f = &verify["entities"][e];
        counts.insert(
            e.to_string(),
            json!({
                "input": v["input"], "valid": v["valid"], "rejected": v["rejected"],
                "warned": v["recordsWithWarnings"], "rejects": v["rejectsByReason"],
                "warnings": v["warningsByReason"],
                "loadItems": l["items"], "written": l["written"], "failed": l["failed"],
                "confirmed": l["confirmed"],
                "verifyOk": f["ok"], "expected": f["expected"], "matched": f["matched"],
                "missing": f["missing"], "different": f["different"],
            }),
        );
    }
    Outcome { items, counts }
}

/// Every table holds exactly its validated artifact, item by item.
fn assert_tables_match_artifacts(env: &Env) {
    for e in ENTITIES {
        let want: BTreeMap<String, Value> = env
            .jsonl(&format!("validated/{e}.jsonl"))
            .into_iter()
            .map(|v| (v["PK"].as_str().unwrap().to_string(), v))
            .collect();
        let got = env.scan(e);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{e}: the table's keys"
        );
        for (pk, w) in &want {
            // Numbers as text: the artifact's exact digits against DynamoDB's.
            let g = Value::Object(got[pk].clone());
            assert_eq!(
                canon(&g),
                canon(w),
                "{e} item {pk} differs from the validated artifact"
            );
        }
    }
}

fn canon(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            let d = rust_decimal::Decimal::from_str_exact(&s)
                .or_else(|_| rust_decimal::Decimal::from_scientific(&s))
                .unwrap_or_else(|e| panic!("number {s}: {e}"));
            Value::String(d.normalize().to_string())
        }
        Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), canon(v))).collect()),
        other => other.clone(),
    }
}

/// The phase the checkpoint shows running (the last step started).
fn running_phase(env: &Env) -> String {
    let Some(cp) = read(env, "checkpoint.json") else {
        return "start".into();
    };
    let mut last: Option<(String, String)> = None;
    for e in ENTITIES {
        for p in PHASES {
            let s = &cp["entities"][e][p];
            if s["state"] == "running" && s["runId"] == cp["runId"] {
                let at = s["startedAt"].as_str().unwrap_or_default().to_string();
                if last.as_ref().is_none_or(|(t, _)| at > *t) {
                    last = Some((at, p.to_string()));
                }
            }
        }
    }
    last.map(|(_, p)| p).unwrap_or_else(|| "between".into())
}

#[test]
fn kill_9_anywhere_then_resume_gives_the_clean_result() {
    let t0 = Instant::now();
    let env = Env::new("crash");
    env.generate(300, 60, 2500, 41);
    // Every BatchWriteItem and Scan waits a little: load and verify take
    // seconds, like extract, transform and validate together.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(40),
            only_ops: Some(vec!["BatchWriteItem".into(), "Scan".into()]),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint}, "migration": {"concurrency": 4}}));

    // The clean run: the reference, and how long each phase takes.
    let started = Instant::now();
    let out = env.migrate(&["--full", "--quiet"]);
    let clean_secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "clean run: {}", text(&out));
    let clean = outcome(&env);
    assert_tables_match_artifacts(&env);
    for (e, c) in &clean.counts {
        assert_eq!(c["verifyOk"], true, "{e}: {c}");
        assert_eq!(c["failed"], 0, "{e}: {c}");
    }
    let cp = read(&env, "checkpoint.json").unwrap();
    let at = |s: &Value| {
        chrono::DateTime::parse_from_rfc3339(s.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let run_start = at(&cp["startedAt"]);
    // Per phase: the window (ms after the run started) it ran in.
    let windows: Vec<(u64, u64)> = PHASES
        .iter()
        .map(|p| {
            let steps: Vec<&Value> = ENTITIES.iter().map(|e| &cp["entities"][e][*p]).collect();
            let from = steps.iter().map(|s| at(&s["startedAt"])).min().unwrap();
            let to = steps.iter().map(|s| at(&s["finishedAt"])).max().unwrap();
            (
                (from - run_start).max(0) as u64,
                (to - run_start).max(1) as u64,
            )
        })
        .collect();
    eprintln!("clean run {clean_secs:.1}s, phase windows (ms) {windows:?}");

    let mut rng = fastrand::Rng::with_seed(0xc4a5);
    let mut hit: BTreeMap<String, usize> = BTreeMap::new();
    let mut kills = 0;
    let mut attempt = 0;
    while kills < KILLS {
        attempt += 1;
        assert!(attempt <= KILLS * 3, "could not kill {KILLS} runs in time");
        let (from, to) = windows[attempt % PHASES.len()];
        let wait = Duration::from_millis(rng.u64(from..=to.max(from + 1)));
        let before = read(&env, "checkpoint.json").map(|c| c["runId"].clone());
        let mut child = env.spawn(&["--full", "--quiet"]);
        // From when the run is recorded, not from the process's start.
        let deadline = Instant::now() + Duration::from_secs(30);
        while read(&env, "checkpoint.json").map(|c| c["runId"].clone()) == before {
            assert!(Instant::now() < deadline, "the run never started");
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_some() {
            continue; // finished before the kill: not a crash
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() || read(&env, "checkpoint.json").is_some_and(|c| c["finished"] == true)
        {
            continue; // it finished just before the kill: not a crash
        }
        kills += 1;
        let phase = running_phase(&env);
        *hit.entry(phase.clone()).or_default() += 1;

        let out = env.migrate(&["--resume", "--quiet"]);
        assert!(
            out.status.success(),
            "resume after a kill in {phase} ({wait:?}): {}",
            text(&out)
        );
        let leftovers: Vec<_> = files_under(&env.data_dir())
            .into_iter()
            .filter(|p| migrate::lock::is_leftover(&p.file_name().unwrap().to_string_lossy()))
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        assert_tables_match_artifacts(&env);
        let now = outcome(&env);
        assert_eq!(
            now.items, clean.items,
            "kill in {phase}: the validated items"
        );
        for (e, c) in &clean.counts {
            assert_eq!(&now.counts[e], c, "kill in {phase}: {e}'s counts");
        }
    }
    eprintln!(
        "kill_9_anywhere_then_resume_gives_the_clean_result: {kills} kills in {attempt} runs, \
         by phase {hit:?}, {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        hit.keys().filter(|p| PHASES.contains(&p.as_str())).count() >= 3,
        "kills spread over the phases: {hit:?}"
    );
}
