//! Point-in-time recovery before a load (`migration.pointInTimeRecovery`):
//! `warn` names the tables without it and goes on, `require` stops before any
//! write with exit 2, `enable` turns it on first; the load records the
//! restorable window in the checkpoint and the load report. An endpoint
//! that does not implement the API (dynalite) counts as recovery off.

mod support;

use aws_sdk_dynamodb::types::PointInTimeRecoveryStatus;
use serde_json::{Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, text};

const ROWS: &str = r#"
INSERT INTO msg_anag (first_id, kind, name, vat_number, enabled, created_at, updated_at) VALUES
 (1, 2, 'Uno SRL', 'IT01234567897', true, '2024-01-01 00:00:00', NULL),
 (2, 2, 'Due SRL', 'IT00743110157', true, '2024-01-01 00:00:00', NULL);
"#;

fn env_with(mode: &str) -> Env {
    let env = Env::new(&format!("pitr_{mode}"));
    env.sql(ROWS);
    env.config(json!({"migration": {"pointInTimeRecovery": mode}}));
    env
}

fn pitr_enabled(env: &Env, entity: &str) -> bool {
    env.rt.block_on(async {
        let out = env
            .client
            .describe_continuous_backups()
            .table_name(env.table(entity))
            .send()
            .await
            .unwrap();
        out.continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            == Some(&PointInTimeRecoveryStatus::Enabled)
    })
}

#[test]
fn require_refuses_a_table_without_it_before_any_write() {
    let env = env_with("require");
    let out = env.migrate(&["--full", "--entity", "buyers"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "point-in-time recovery is off for table(s) {}",
            env.table("buyers")
        )) && said.contains("\"require\""),
        "{said}"
    );
    assert!(env.scan("buyers").is_empty(), "nothing may be written");
    assert!(!env.data_dir().join("extracted/buyers.jsonl").exists());
}

#[test]
fn warn_names_the_table_and_loads() {
    let env = env_with("warn");
    let out = env.migrate(&["--full", "--entity", "buyers"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "point-in-time recovery is off for table(s) {}",
            env.table("buyers")
        )),
        "{}",
        text(&out)
    );
    assert_eq!(env.scan("buyers").len(), 2);
    assert!(!pitr_enabled(&env, "buyers"), "warn changes nothing");
}

#[test]
fn enable_turns_it_on_first_and_the_load_records_the_window() {
    let env = env_with("enable");
    // A dry run only says what the load would do.
    let dry = env.migrate(&["--dry-run", "--full", "--entity", "buyers"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(!pitr_enabled(&env, "buyers"), "a dry run changes nothing");

    let out = env.migrate(&["--full", "--entity", "buyers"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(pitr_enabled(&env, "buyers"));
    assert_eq!(env.scan("buyers").len(), 2);

    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).unwrap())
            .unwrap();
    let window = &cp["entities"]["buyers"]["load"]["pitr"];
    assert_eq!(window["enabled"], true, "{cp}");
    assert!(window["earliestRestorable"].is_string(), "{window}");
    assert!(window["latestRestorable"].is_string(), "{window}");
    let report = env.report("reports/load_report.json");
    assert_eq!(
        report["entities"]["buyers"]["pointInTimeRecovery"], *window,
        "{report}"
    );
}

#[test]
fn an_endpoint_without_the_api_counts_as_off() {
    let env = Env::new("pitr_unknown");
    env.sql(ROWS);
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            unknown_ops: vec!["DescribeContinuousBackups".into()],
            ..Faults::none()
        },
    );
    for (mode, loads) in [("require", false), ("warn", true)] {
        env.config(json!({"target": {"endpoint": proxy.endpoint},
                          "migration": {"pointInTimeRecovery": mode}}));
        let out = env.migrate(&["--full", "--entity", "buyers"]);
        let said = text(&out);
        assert!(
            said.contains("does not implement point-in-time recovery"),
            "{mode}: {said}"
        );
        if loads {
            assert!(out.status.success(), "{mode}: {said}");
            assert_eq!(env.scan("buyers").len(), 2, "{mode}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{mode}: {said}");
            assert!(env.scan("buyers").is_empty(), "{mode}: nothing written");
        }
    }
}
