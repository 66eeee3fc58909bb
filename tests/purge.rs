//! After the migration: no personal data in the logs, and `migrate purge`
//! deletes exactly the files that hold source records (README "After the
//! migration").

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::{Env, files_under, holding, personal_values, text};

#[test]
fn logs_hold_no_personal_data_and_purge_deletes_exactly_the_records() {
    let env = Env::new("purge");
    env.generate(120, 40, 400, 21);
    env.config(json!({}));
    let out = env.migrate(&["--full"]);
    assert!(out.status.success(), "{}", text(&out));
    let values = personal_values(&env);

    // The console and the JSON log carry ids, keys and reason codes only.
    let console = text(&out);
    let leaked: Vec<&String> = values
        .iter()
        .filter(|v| console.contains(v.as_str()))
        .collect();
    assert!(leaked.is_empty(), "the console shows {leaked:?}");
    let log = env.data_dir().join("reports/migration.log");
    let in_log = holding(std::slice::from_ref(&log), &values);
    assert!(in_log.is_empty(), "{in_log:?}");

    // Without a terminal, purge needs --yes; with backups present, also --even-backups.
    let no = env.migrate(&["purge"]);
    assert_eq!(no.status.code(), Some(2), "{}", text(&no));
    assert!(
        text(&no).contains("--even-backups") || text(&no).contains("--yes"),
        "{}",
        text(&no)
    );
    let kept_backups = env.migrate(&["purge", "--yes"]);
    assert_eq!(
        kept_backups.status.code(),
        Some(2),
        "{}",
        text(&kept_backups)
    );
    assert!(
        text(&kept_backups).contains("--even-backups"),
        "{}",
        text(&kept_backups)
    );
    assert!(
        env.data_dir().join("validated/sales.jsonl").exists(),
        "refused: nothing deleted"
    );

    let before = files_under(&env.data_dir());
    let with_records = holding(&before, &values);
    assert!(
        !with_records.is_empty(),
        "the artifacts hold personal data before a purge"
    );

    let out = env.migrate(&["purge", "--yes", "--even-backups"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = env.report("reports/purge.json");
    let deleted: Vec<PathBuf> = report["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| env.data_dir().join(p.as_str().unwrap()))
        .collect();
    let after = files_under(&env.data_dir());
    // Exactly the listed files are gone; nothing else changed.
    let mut expected_after: Vec<PathBuf> = before
        .iter()
        .filter(|f| !deleted.contains(f))
        .cloned()
        .collect();
    expected_after.push(env.data_dir().join("reports/purge.json"));
    expected_after.sort();
    expected_after.dedup();
    let mut after_sorted = after.clone();
    after_sorted.sort();
    assert_eq!(after_sorted, expected_after);
    for f in &deleted {
        assert!(!f.exists(), "{} still exists", f.display());
    }
    for dir in ["extracted", "transformed", "validated", "backups"] {
        assert!(
            files_under(&env.data_dir().join(dir)).is_empty(),
            "{dir} still holds files"
        );
    }
    // What is left holds no personal value (the verification report's
    // examples are keys and attribute names; on a clean run there are none).
    let left = holding(&after, &values);
    assert!(left.is_empty(), "{left:?}");
    assert!(env.data_dir().join("checkpoint.json").exists());
    assert!(
        env.data_dir()
            .join("reports/validation_report.json")
            .exists()
    );
    let summary: Value = env.report("reports/validation_report.json");
    assert!(summary["entities"]["sales"].is_object());
}
