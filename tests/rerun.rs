//! Re-runs over an unchanged source give byte-identical artifacts: the
//! `createdAt` fallback of a row without timestamps is the data directory's
//! first run start, recorded in the checkpoint and reused by every later run
//! (README "Mapping and rules").

mod support;

use serde_json::Value;
use support::Env;

const ROWS: &str = r#"
INSERT INTO msg_anag (first_id, kind, name, vat_number, enabled, created_at, updated_at) VALUES
 (1, 2, 'Senza Date SRL', 'IT01234567897', true, NULL, NULL),
 (2, 2, 'Con Date SRL', 'IT01234567897', true, '2024-01-01 00:00:00', NULL);
"#;

fn validated(env: &Env) -> String {
    std::fs::read_to_string(env.data_dir().join("validated/buyers.jsonl")).unwrap()
}

#[test]
fn two_runs_give_identical_items_for_rows_without_timestamps() {
    let env = Env::new("rerun");
    env.sql(ROWS);
    env.config(serde_json::json!({}));
    let args = ["--dry-run", "--full", "--entity", "buyers"];

    let first = env.migrate(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before = validated(&env);
    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).unwrap())
            .unwrap();
    let first_start = cp["migrationStartedAt"].as_str().unwrap().to_string();

    // A later run (its own start is later by at least a second).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = env.migrate(&args);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        validated(&env),
        before,
        "an unchanged source must give the same items"
    );

    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(cp["migrationStartedAt"].as_str().unwrap(), first_start);
    assert_ne!(
        cp["startedAt"].as_str().unwrap(),
        first_start,
        "a new run started"
    );

    // The row without timestamps took the first run's start, to the millisecond.
    let item: Value = before
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["legacyId"] == 1)
        .unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(&first_start).unwrap();
    assert_eq!(
        item["createdAt"].as_str().unwrap(),
        start.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    );
    assert_eq!(item["updatedAt"], item["createdAt"]);
}
