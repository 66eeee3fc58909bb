//! Rollback across several commands (docs/rollback.md), against real
//! PostgreSQL and the moto server: backups keep every DynamoDB type byte for
//! byte; backups and ledgers are per entity, so a table shared by all three
//! entities rolls back one entity alone; rollback needs neither the
//! validated artifact nor a backup a later load took; the baseline stays
//! pinned across a `kill -9` and other commands until `baseline reset`;
//! items changed since the load are left alone unless `--force`; a rollback
//! stopped by Ctrl-C is finished by running it again, `status` shows it, and
//! `--resume` does not load a rolled-back entity again.
//!
//! Expectations are the table as the SDK read it before the load.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as A;
use serde_json::{Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, files_under, text};

type AvItem = HashMap<String, A>;
type Table = BTreeMap<(String, String), AvItem>;

fn s(v: &str) -> A {
    A::S(v.to_string())
}

fn key_of(item: &AvItem) -> (String, String) {
    let get = |k: &str| match item.get(k) {
        Some(A::S(s)) => s.clone(),
        other => panic!("{k}: {other:?}"),
    };
    (get("PK"), get("SK"))
}

/// Every item of `table`, as the SDK decodes the server's answer (every type kept).
fn raw_table(env: &Env, table: &str) -> Table {
    env.rt.block_on(async {
        let mut out = Table::new();
        let mut start = None;
        loop {
            let page = env
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                out.insert(key_of(item), item.clone());
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return out;
            }
        }
    })
}

fn get_item(env: &Env, table: &str, pk: &str, sk: &str) -> Option<AvItem> {
    env.rt.block_on(async {
        env.client
            .get_item()
            .table_name(table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item()
            .cloned()
    })
}

fn put_item(env: &Env, table: &str, item: AvItem) {
    env.rt.block_on(async {
        env.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    });
}

fn delete_item(env: &Env, table: &str, pk: &str, sk: &str) {
    env.rt.block_on(async {
        env.client
            .delete_item()
            .table_name(table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .send()
            .await
            .unwrap();
    });
}

/// Describes how two tables differ, for assertion messages.
fn diff(want: &Table, got: &Table) -> String {
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let changed: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(k, v)| format!("{k:?}: want {v:?}\n got {:?}", got[k]))
        .take(3)
        .collect();
    format!(
        "{} missing (e.g. {:?}), {} extra (e.g. {:?}), changed: {changed:#?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    )
}

fn assert_table(env: &Env, table: &str, want: &Table, what: &str) {
    let got = raw_table(env, table);
    assert!(&got == want, "{what}: {}", diff(want, &got));
}

/// Extract, transform and validate (no DynamoDB involved).
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

fn validated_keys(env: &Env, entity: &str) -> Vec<(String, String)> {
    env.jsonl(&format!("validated/{entity}.jsonl"))
        .iter()
        .map(|v| {
            (
                v["PK"].as_str().unwrap().to_string(),
                v["SK"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// An item of every DynamoDB type, nested too, at `key`.
fn every_type(key: &(String, String), n: &str) -> AvItem {
    let blob = |b: &[u8]| Blob::new(b.to_vec());
    HashMap::from([
        ("PK".into(), s(&key.0)),
        ("SK".into(), s(&key.1)),
        ("s".into(), s("é\n\"x")),
        ("n".into(), A::N(n.into())),
        ("b".into(), A::B(blob(&[0, 255, 7]))),
        ("ss".into(), A::Ss(vec!["q".into(), "p".into()])),
        ("ns".into(), A::Ns(vec!["2.5".into(), "-1".into()])),
        ("bs".into(), A::Bs(vec![blob(&[1]), blob(&[2, 3])])),
        ("t".into(), A::Bool(true)),
        ("z".into(), A::Null(true)),
        (
            "l".into(),
            A::L(vec![
                A::N("7".into()),
                A::Ss(vec!["a".into()]),
                A::M(HashMap::from([("deep".into(), A::B(blob(&[1, 2, 3])))])),
            ]),
        ),
        (
            "m".into(),
            A::M(HashMap::from([
                ("e".into(), s("")),
                ("f".into(), A::Bool(false)),
                ("g".into(), A::L(vec![])),
                ("h".into(), A::Ns(vec!["12345678901234567890".into()])),
            ])),
        ),
    ])
}

/// The checkpoint's `confirmed` for the load of `entity`, once it is above 0.
fn load_confirmed(env: &Env, entity: &str) -> Option<u64> {
    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).ok()?)
            .ok()?;
    cp["entities"][entity]["load"]["confirmed"]
        .as_u64()
        .filter(|c| *c > 0)
}

/// Starts `args` and kills it with SIGKILL once the load of `entity` has
/// confirmed some items; returns how many items the table then holds.
fn kill_mid_load(env: &Env, entity: &str, args: &[&str]) {
    let log = std::fs::File::create(env.dir.join("killed.stderr")).unwrap();
    let mut child = env
        .migrate_cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while load_confirmed(env, entity).is_none() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "migrate ended ({status}) before the load was partly confirmed: {}",
                std::fs::read_to_string(env.dir.join("killed.stderr")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the load never confirmed anything"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status_line(env: &Env, entity: &str) -> String {
    let out = env.migrate(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = stdout(&out);
    status
        .lines()
        .find(|l| l.starts_with(entity) && l.contains(" rollback "))
        .unwrap_or_else(|| panic!("no rollback line for {entity}: {status}"))
        .to_string()
}

#[test]
fn backups_restore_every_type_byte_for_byte() {
    let env = Env::new("rb_types");
    env.generate(30, 5, 0, 31);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let keys = validated_keys(&env, "buyers");
    let table = env.table("buyers").to_string();
    // Two items the load overwrites, one it knows nothing about.
    let other = ("OTHER#1".to_string(), "METADATA".to_string());
    for (key, n) in [(&keys[0], "1.50"), (&keys[9], "-0.001"), (&other, "3")] {
        put_item(&env, &table, every_type(key, n));
    }
    let before: Vec<Option<AvItem>> = [&keys[0], &keys[9], &other]
        .iter()
        .map(|k| get_item(&env, &table, &k.0, &k.1))
        .collect();
    let before_table = raw_table(&env, &table);
    assert_eq!(before_table.len(), 3);

    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(raw_table(&env, &table).len(), keys.len() + 1);
    assert_ne!(get_item(&env, &table, &keys[0].0, &keys[0].1), before[0]);

    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    for (k, want) in [&keys[0], &keys[9], &other].iter().zip(&before) {
        let got = get_item(&env, &table, &k.0, &k.1);
        assert_eq!(&got, want, "{k:?} comes back with every type as it was");
    }
    assert_table(&env, &table, &before_table, "after the rollback");
    let report = env.report("reports/rollback_report.json");
    let r = &report["entities"]["buyers"];
    assert_eq!(r["restored"], 2, "{report}");
    assert_eq!(
        r["deleted"].as_u64(),
        Some(keys.len() as u64 - 2),
        "{report}"
    );
    assert_eq!(r["drift"], 0, "{report}");
}

#[test]
fn a_shared_table_rolls_back_one_entity_alone() {
    let env = Env::without_tables("rb_shared");
    env.generate(40, 8, 30, 32);
    let table = env.table("buyers").to_string();
    // Single-table design: all three entities in one table, created as a
    // user would, with the union of the entities' indexes.
    env.config(json!({"target": {"producersTable": table, "salesTable": table}}));
    env.create_tables();
    prepare(&env, &["buyers", "producers", "sales"]);
    let unrelated = ("OTHER#1".to_string(), "METADATA".to_string());
    put_item(&env, &table, every_type(&unrelated, "1"));
    let before = raw_table(&env, &table);

    let out = env.migrate(&["--phase", "load", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let after_load = raw_table(&env, &table);
    let buyers = validated_keys(&env, "buyers");
    let producers = validated_keys(&env, "producers");
    let sales = validated_keys(&env, "sales");
    assert_eq!(
        after_load.len(),
        1 + buyers.len() + producers.len() + sales.len()
    );
    // One backup and one ledger per entity, none overwriting another.
    let files: Vec<String> = files_under(&env.data_dir().join("backups"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for e in ["buyers", "producers", "sales"] {
        assert!(
            files.iter().any(|f| f.starts_with(&format!("{e}-"))
                && f.ends_with(".jsonl")
                && !f.contains("ledger")),
            "{e} backup in {files:?}"
        );
        assert!(
            files
                .iter()
                .any(|f| f.starts_with(&format!("{e}-")) && f.ends_with(".ledger.jsonl")),
            "{e} ledger in {files:?}"
        );
    }

    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut want = after_load.clone();
    for k in &buyers {
        want.remove(k);
    }
    assert_table(&env, &table, &want, "only the buyers are gone");
    let report = env.report("reports/rollback_report.json");
    assert_eq!(
        report["entities"]["buyers"]["deleted"].as_u64(),
        Some(buyers.len() as u64),
        "{report}"
    );

    // A backup that is not the one the checkpoint recorded is refused.
    let cp: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("checkpoint.json")).unwrap())
            .unwrap();
    let backup = std::path::PathBuf::from(
        cp["baselines"]["producers"]["backup"]["path"]
            .as_str()
            .unwrap(),
    );
    let original = std::fs::read(&backup).unwrap();
    let manifest_path = backup.with_file_name(format!(
        "{}.manifest.json",
        backup.file_name().unwrap().to_string_lossy()
    ));
    let manifest = std::fs::read(&manifest_path).unwrap();
    // Forged with a manifest to match: only the checkpoint's SHA-256 tells.
    let forged = String::from_utf8(original.clone())
        .unwrap()
        .replacen("METADATA", "METADATX", 1)
        .into_bytes();
    assert_ne!(forged, original);
    std::fs::write(&backup, &forged).unwrap();
    let mut m: Value = serde_json::from_slice(&manifest).unwrap();
    m["sha256"] = json!(sha256_hex(&forged));
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    let out = env.migrate(&["rollback", "--entity", "producers", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&*backup.to_string_lossy()),
        "names the backup: {}",
        text(&out)
    );
    assert_table(&env, &table, &want, "a refused rollback writes nothing");
    std::fs::write(&backup, &original).unwrap();
    std::fs::write(&manifest_path, &manifest).unwrap();

    let out = env.migrate(&["rollback", "--entity", "producers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.migrate(&["rollback", "--entity", "sales", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table(&env, &table, &before, "all three rolled back");
}

#[test]
fn rollback_needs_neither_the_validated_artifact_nor_a_later_backup() {
    let env = Env::new("rb_rewritten");
    env.generate(50, 5, 0, 33);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let table = env.table("buyers").to_string();
    let keys = validated_keys(&env, "buyers");
    put_item(&env, &table, every_type(&keys[3], "4"));
    let before = raw_table(&env, &table);

    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    // The source changes and the recommended dry run rewrites the artifacts.
    env.generate(70, 5, 0, 34);
    let out = env.migrate(&["--dry-run", "--full", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(validated_keys(&env, "buyers"), keys, "the artifact changed");

    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table(&env, &table, &before, "back to before the load");
}

#[test]
fn the_baseline_stays_pinned_across_a_kill_and_other_commands() {
    let env = Env::new("rb_pinned");
    env.generate(1500, 5, 0, 35);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let table = env.table("buyers").to_string();
    let keys = validated_keys(&env, "buyers");
    for (k, n) in [(&keys[0], "1"), (&keys[keys.len() - 10], "2")] {
        put_item(&env, &table, every_type(k, n));
    }
    put_item(
        &env,
        &table,
        every_type(&("OTHER#1".into(), "METADATA".into()), "3"),
    );
    let before = raw_table(&env, &table);

    // Slow writes: killed while the load is under way.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(100),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint}, "migration": {"concurrency": 2}}));
    kill_mid_load(
        &env,
        "buyers",
        &["--phase", "load", "--entity", "buyers", "--quiet"],
    );
    let partial = raw_table(&env, &table).len();
    assert!(
        partial > before.len() && partial < before.len() + keys.len() - 2,
        "killed midway: {partial} items"
    );
    proxy.set_faults(Faults::none());

    // Other commands start new runs; then a fresh load.
    let out = env.migrate(&["--dry-run", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.migrate(&["--phase", "verify", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "differences: {}", text(&out));
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(!out.status.success(), "nothing to resume: {}", text(&out));
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(raw_table(&env, &table).len(), keys.len() + 1);

    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table(&env, &table, &before, "back to before the first load");

    // `baseline reset` accepts the table as it is now: after a load of
    // changed source data, rollback goes back to the reset point.
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env
        .migrate_cmd(&["baseline", "reset", "--entity", "buyers"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "asks first: {}", text(&out));
    let out = env.migrate(&["baseline", "reset", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let reset_point = raw_table(&env, &table);
    env.generate(1500, 5, 0, 135);
    prepare(&env, &["buyers"]);
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(
        raw_table(&env, &table),
        reset_point,
        "the new load changed items"
    );
    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table(&env, &table, &reset_point, "back to the reset baseline");
}

#[test]
fn drift_is_left_alone_unless_forced() {
    let env = Env::new("rb_drift");
    env.generate(40, 5, 0, 36);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let table = env.table("buyers").to_string();
    let keys = validated_keys(&env, "buyers");
    put_item(&env, &table, every_type(&keys[2], "5"));
    put_item(&env, &table, every_type(&keys[4], "6"));
    let before = raw_table(&env, &table);
    let out = env.migrate(&["--phase", "load", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    // After the load the new application changes two items and deletes one
    // that was there before; an item it deletes that was not is as before.
    let mut changed = get_item(&env, &table, &keys[2].0, &keys[2].1).unwrap();
    changed.insert("email".into(), s("new@example.com"));
    put_item(&env, &table, changed);
    let mut added = get_item(&env, &table, &keys[7].0, &keys[7].1).unwrap();
    added.insert("note".into(), s("set by the application"));
    put_item(&env, &table, added);
    delete_item(&env, &table, &keys[4].0, &keys[4].1);
    delete_item(&env, &table, &keys[8].0, &keys[8].1);
    let drifted = raw_table(&env, &table);

    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("--force"), "{}", text(&out));
    let mut want = before.clone();
    for k in [&keys[2], &keys[7]] {
        want.insert(k.clone(), drifted[k].clone());
    }
    want.remove(&keys[4]);
    assert_table(&env, &table, &want, "drifted items untouched");
    let report = env.report("reports/rollback_report.json");
    let r = &report["entities"]["buyers"];
    assert_eq!(r["drift"], 3, "{report}");
    let listed: Vec<&str> = r["driftItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["PK"].as_str().unwrap())
        .collect();
    for k in [&keys[2], &keys[7], &keys[4]] {
        assert!(listed.contains(&k.0.as_str()), "{} in {listed:?}", k.0);
    }
    assert!(status_line(&env, "buyers").contains("rolled back"));

    // Running it again changes nothing; --force reverts the drift too.
    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_table(&env, &table, &want, "a second run is harmless");
    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table(&env, &table, &before, "forced: back to before the load");
}

#[test]
fn an_interrupted_rollback_is_finished_by_running_it_again() {
    let env = Env::new("rb_sigint");
    env.generate(1500, 5, 0, 37);
    env.config(json!({}));
    prepare(&env, &["buyers"]);
    let table = env.table("buyers").to_string();
    let keys = validated_keys(&env, "buyers");
    put_item(&env, &table, every_type(&keys[1], "6"));
    let before = raw_table(&env, &table);
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(100),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint}, "migration": {"concurrency": 2}}));
    // A load killed midway, then rolled back: the unfinished run stays.
    kill_mid_load(&env, "buyers", &["--full", "--entity", "buyers", "--quiet"]);

    // Ctrl-C during the rollback (deletes are slow at the proxy).
    proxy.set_faults(Faults {
        delay_rate: 1.0,
        delay: Duration::from_millis(250),
        ..Faults::default()
    });
    env.config(json!({"target": {"endpoint": proxy.endpoint}, "migration": {"concurrency": 1}}));
    let child = env
        .migrate_cmd(&["rollback", "--entity", "buyers", "--yes", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("migrate rollback --entity buyers"),
        "says how to finish: {}",
        text(&out)
    );
    let line = status_line(&env, "buyers");
    assert!(line.contains("rollback interrupted "), "{line}");
    proxy.set_faults(Faults::none());

    let out = env.migrate(&["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table(&env, &table, &before, "finished");
    let line = status_line(&env, "buyers");
    assert!(line.contains("rolled back"), "{line}");

    // --resume continues the killed run, but not the rolled-back load.
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_table(&env, &table, &before, "not loaded again by --resume");
    assert!(status_line(&env, "buyers").contains("rolled back"));
}
