//! Encrypted data directories (docs/encryption.md): with
//! `migration.artifactKey`, no file under the data directory holds a source
//! record readably, the tables come out as from a plain run, rollback reads
//! its encrypted backups and ledgers, and a wrong or missing key, or a plain
//! directory, is refused before anything is written.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use serde_json::{Map, Value, json};
use support::{Env, files_under, holding, personal_values, text};

const KEY: &str = "k3y-for-the-encryption-test-7f1c";

fn run(env: &Env, key: &str, args: &[&str]) -> Output {
    env.migrate_cmd(args)
        .env("MIGRATE_ARTIFACT_KEY", key)
        .output()
        .unwrap()
}

/// A table's items with the timestamps that fall back to the run's start
/// (rows without any, README "Mapping and rules") replaced by one marker:
/// two data directories started at different times.
fn normalized(env: &Env, entity: &str, started: &str) -> BTreeMap<String, Map<String, Value>> {
    let mut items = env.scan(entity);
    for item in items.values_mut() {
        for attribute in ["createdAt", "updatedAt"] {
            if item
                .get(attribute)
                .and_then(Value::as_str)
                .is_some_and(|t| t >= started)
            {
                item.insert(attribute.into(), json!("the first run's start"));
            }
        }
    }
    items
}

/// Files and their contents, but for the log and the lock, which any
/// command touches before it reads its configuration's key.
fn snapshot(env: &Env) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(&env.data_dir())
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            !name.ends_with("migration.log") && !name.contains("lock")
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn an_encrypted_run_hides_every_record_and_migrates_as_a_plain_one() {
    let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M").to_string();
    let plain = Env::new("crypt_plain");
    plain.generate(120, 40, 400, 21);
    let out = plain.migrate(&["--full"]);
    assert!(out.status.success(), "{}", text(&out));

    let env = Env::new("crypt");
    env.generate(120, 40, 400, 21);
    env.config(json!({"migration": {"artifactKey": "${MIGRATE_ARTIFACT_KEY}"}}));
    let out = run(&env, KEY, &["--full"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(KEY)
            && !String::from_utf8_lossy(&out.stderr).contains(KEY),
        "the key is never printed"
    );
    for entity in ["buyers", "producers", "sales"] {
        let (a, b) = (
            normalized(&plain, entity, &started),
            normalized(&env, entity, &started),
        );
        assert_eq!(a.len(), b.len(), "{entity}");
        assert!(a == b, "{entity}: the encrypted run wrote other items");
    }

    // A source change, then a sync: a changes artifact and before-images.
    let buyer = env.scan("buyers").into_values().next().unwrap();
    let id = buyer["legacyId"].to_string();
    env.sql(&format!(
        "UPDATE msg_anag SET name = 'Ottavio Zanardelli Quintiliani' WHERE first_id = {}",
        id.trim_matches('"')
    ));
    let out = run(&env, KEY, &["--full", "--load-mode", "sync"]);
    assert!(out.status.success(), "{}", text(&out));
    let load = env.report("reports/load_report.json");
    assert_eq!(load["entities"]["buyers"]["sync"]["changed"], 1, "{load}");

    // Every kind of file that holds records exists, as an age file...
    let data = env.data_dir();
    let files = files_under(&data);
    for kind in [
        "extracted/",
        "transformed/",
        "validated/",
        "changes/",
        "backups/",
        ".ledger.jsonl",
        "reports/rejected/",
    ] {
        assert!(
            files.iter().any(|f| f.to_string_lossy().contains(kind)),
            "no {kind} file"
        );
    }
    let sealed = std::fs::read(data.join("validated/sales.jsonl")).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    // ...and no file under the data directory holds a personal value.
    let mut values = personal_values(&env);
    values.push("Ottavio Zanardelli Quintiliani".into());
    let readable = holding(&files, &values);
    assert!(readable.is_empty(), "{readable:?}");
    assert!(
        holding(&files, &[KEY.to_string()]).is_empty(),
        "the key is never written"
    );

    // A wrong key and no key are refused, and nothing is written.
    let before = snapshot(&env);
    let wrong = run(&env, "not-the-key", &["--phase", "verify"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(text(&wrong).contains("not the key"), "{}", text(&wrong));
    env.config(json!({}));
    let none = run(&env, KEY, &["--phase", "verify"]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(
        text(&none).contains("artifactKey is not set"),
        "{}",
        text(&none)
    );
    assert!(before == snapshot(&env), "a refused command wrote files");

    // Rollback reads the encrypted ledgers and backups.
    env.config(json!({"migration": {"artifactKey": "${MIGRATE_ARTIFACT_KEY}"}}));
    let out = run(&env, KEY, &["rollback", "--entity", "sales", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.scan("sales").is_empty(), "rollback left sales behind");

    // A plain data directory with records does not become encrypted.
    plain.config(json!({"migration": {"artifactKey": "${MIGRATE_ARTIFACT_KEY}"}}));
    let mixed = run(&plain, KEY, &["--phase", "verify"]);
    assert_eq!(mixed.status.code(), Some(2), "{}", text(&mixed));
    assert!(
        text(&mixed).contains("all encrypted or all plain"),
        "{}",
        text(&mixed)
    );
    assert!(!plain.data_dir().join("encryption.json").exists());
}
