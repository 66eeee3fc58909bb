//! Ctrl-C during a load stops gracefully — the requests in flight
//! finish, the checkpoint is saved, the command says how to resume — and
//! `--resume` then finishes the load with every item present, counted once.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, text};

fn confirmed(env: &Env) -> Option<(String, u64)> {
    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).ok()?)
            .ok()?;
    let load = &cp["entities"]["buyers"]["load"];
    Some((
        load["state"].as_str()?.to_string(),
        load["confirmed"].as_u64()?,
    ))
}

#[test]
fn ctrl_c_saves_the_checkpoint_and_resume_finishes() {
    let env = Env::new("sigint");
    env.generate(600, 10, 0, 3);
    env.config(json!({}));
    for phase in ["extract", "transform", "validate"] {
        let out = env.migrate(&["--phase", phase, "--entity", "buyers", "--quiet"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let validated = env.jsonl("validated/buyers.jsonl");
    // Slow every batch down so the load is still running when Ctrl-C comes.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(400),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint}, "migration": {"concurrency": 1}}));
    let child = env
        .migrate_cmd(&["--phase", "load", "--entity", "buyers", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some((_, c)) = confirmed(&env)
            && c > 0
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the load never confirmed anything"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("migrate --resume"),
        "says how to resume: {}",
        text(&out)
    );
    let (state, at) = confirmed(&env).expect("checkpoint saved");
    assert_eq!(state, "interrupted");
    assert!(
        at < validated.len() as u64,
        "stopped midway: {at} of {}",
        validated.len()
    );
    // Every confirmed item is really in the table (in-flight requests finished).
    let table = env.scan("buyers");
    for item in &validated[..at as usize] {
        assert!(
            table.contains_key(item["PK"].as_str().unwrap()),
            "confirmed item missing"
        );
    }

    drop(proxy);
    env.config(json!({}));
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = env.scan("buyers");
    assert_eq!(table.len(), validated.len());
    let report = env.report("reports/load_report.json");
    assert_eq!(
        report["entities"]["buyers"]["written"],
        json!(validated.len()),
        "{report}"
    );
    assert_eq!(report["entities"]["buyers"]["failed"], json!(0));
}
