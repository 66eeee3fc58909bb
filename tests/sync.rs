//! Sync loads (docs/cutover.md), through the real binary against PostgreSQL
//! and the moto server: a sync after the source moved writes exactly the
//! difference and converges the tables to a fresh migration of the moved
//! source; foreign items stay untouched; `rollback --last` puts the tables
//! back as they were before the sync; a sync with nothing to do sends no
//! write at all; a sync killed with SIGKILL while applying its changes
//! finishes with `--resume`, each change counted once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, text};

const ENTITIES: [&str; 3] = ["buyers", "producers", "sales"];

type Tables = BTreeMap<&'static str, BTreeMap<String, Map<String, Value>>>;

fn tables(env: &Env) -> Tables {
    ENTITIES.iter().map(|e| (*e, env.scan(e))).collect()
}

fn ids(out: &str) -> Vec<i64> {
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn legacy_ids(items: &BTreeMap<String, Map<String, Value>>) -> BTreeSet<i64> {
    items
        .values()
        .filter_map(|i| i.get("legacyId").and_then(Value::as_i64))
        .collect()
}

fn list(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// What the test does to the source, picked from rows the first load
/// migrated; returns the SQL (applied to both databases alike).
struct Moves {
    sql: String,
}

fn plan_moves(env: &Env, t: &Tables) -> Moves {
    let buyers = legacy_ids(&t["buyers"]);
    let individuals: BTreeSet<i64> = t["buyers"]
        .values()
        .filter(|i| i.get("buyerType") == Some(&json!("individual")))
        .filter_map(|i| i.get("legacyId").and_then(Value::as_i64))
        .collect();
    // Buyers no sale refers to: changing them changes nothing else.
    let lonely: Vec<i64> = ids(&env.sql(
        "SELECT first_id FROM msg_anag a WHERE kind IN (2, 3) \
         AND NOT EXISTS (SELECT 1 FROM msg m WHERE m.buyer_id = a.first_id) ORDER BY first_id",
    ))
    .into_iter()
    .filter(|id| buyers.contains(id))
    .collect();
    assert!(lonely.len() >= 7, "the sample has buyers without sales");
    let copies: Vec<i64> = individuals.iter().copied().take(2).collect();
    assert_eq!(copies.len(), 2);
    let sales: Vec<i64> = legacy_ids(&t["sales"]).into_iter().collect();
    assert!(sales.len() >= 10);
    let sql = format!(
        "UPDATE msg_anag SET name = name || ' Renamed' WHERE first_id IN ({renamed});
         UPDATE msg_anag SET enabled = false WHERE first_id IN ({disabled});
         DELETE FROM msg_anag WHERE first_id IN ({deleted});
         INSERT INTO msg_anag SELECT first_id + 100000, kind, name, NULL, NULL, address, city, province, zip,
                country, email, phone, notes, enabled, created_at, updated_at
           FROM msg_anag WHERE first_id IN ({copies});
         UPDATE msg SET description = coalesce(description, 'Sale') || ' (amended)' WHERE first_id IN ({amended});
         UPDATE msg SET enabled = false WHERE first_id IN ({sale_disabled});
         DELETE FROM msg WHERE first_id IN ({sale_deleted});
         UPDATE msg SET quantity = 0 WHERE first_id IN ({invalid});
         INSERT INTO msg SELECT first_id + 100000, buyer_id, producer_id, sale_date, description, quantity,
                unit_price, vat_rate, total_amount, currency, status, payment_method, enabled, created_at, updated_at
           FROM msg WHERE first_id IN ({sale_copies});",
        renamed = list(&lonely[0..3]),
        disabled = list(&lonely[3..5]),
        deleted = list(&lonely[5..7]),
        copies = list(&copies),
        amended = list(&sales[0..3]),
        sale_disabled = list(&sales[3..5]),
        sale_deleted = list(&sales[5..7]),
        invalid = list(&sales[7..8]),
        sale_copies = list(&sales[8..10]),
    );
    Moves { sql }
}

/// Items put into the tables by "the application": never the migration's.
fn foreign(env: &Env) {
    let item = |pk: &str, by: &str| -> Map<String, Value> {
        json!({"PK": pk, "SK": "METADATA", "note": "the application's own", "createdBy": by})
            .as_object()
            .unwrap()
            .clone()
    };
    env.put("buyers", &item("BUYER#app-1", "app@example.com"));
    env.put("sales", &item("SALE#app-1", "app@example.com"));
    env.put("buyers", &item("OTHER#1", "app@example.com"));
}

fn sync_counts(env: &Env, entity: &str) -> Value {
    env.report("reports/load_report.json")["entities"][entity]["sync"].clone()
}

/// Attributes that a row without timestamps takes from each data
/// directory's first run: left out when comparing two migrations.
fn without_fallbacks(env: &Env, mut t: Tables) -> Tables {
    let no_time: BTreeSet<i64> = ids(&env.sql(
        "SELECT first_id FROM msg_anag WHERE created_at IS NULL AND updated_at IS NULL \
         UNION SELECT first_id FROM msg WHERE created_at IS NULL AND updated_at IS NULL",
    ))
    .into_iter()
    .collect();
    for items in t.values_mut() {
        for item in items.values_mut() {
            if item
                .get("legacyId")
                .and_then(Value::as_i64)
                .is_some_and(|id| no_time.contains(&id))
            {
                item.remove("createdAt");
                item.remove("updatedAt");
            }
        }
    }
    t
}

#[test]
fn a_sync_writes_the_difference_converges_and_rolls_back() {
    let env = Env::new("sync");
    env.generate(200, 10, 120, 21);
    env.config(json!({"migration": {"loadMode": "sync"}}));

    // The first sync into empty tables: everything is new.
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = tables(&env);
    for e in ENTITIES {
        let c = sync_counts(&env, e);
        assert_eq!(c["new"].as_u64(), Some(first[e].len() as u64), "{e}: {c}");
        assert_eq!(c["changed"], 0, "{e}: {c}");
    }

    // The application writes its own items; an item of an earlier
    // migration (before the ledger) is in the table too.
    foreign(&env);
    let mut old = Map::new();
    old.insert("PK".into(), json!("BUYER#from-an-old-run"));
    old.insert("SK".into(), json!("METADATA"));
    old.insert("createdBy".into(), json!("migration@system"));
    env.put("buyers", &old);
    let moves = plan_moves(&env, &first);
    env.sql(&moves.sql);
    let before_sync = tables(&env);

    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let synced = tables(&env);
    let b = sync_counts(&env, "buyers");
    let s = sync_counts(&env, "sales");
    let p = sync_counts(&env, "producers");
    // 3 renamed; 2 disabled + 2 deleted + the old run's item; 2 copies.
    assert_eq!(
        (&b["new"], &b["changed"], &b["deleted"], &b["foreign"]),
        (&json!(2), &json!(3), &json!(5), &json!(1)),
        "{b}"
    );
    assert_eq!(
        b["unchanged"].as_u64(),
        Some(first["buyers"].len() as u64 - 7),
        "{b}"
    );
    // 3 amended; 2 disabled + 2 deleted + 1 made invalid; 2 copies.
    assert_eq!(
        (&s["new"], &s["changed"], &s["deleted"], &s["foreign"]),
        (&json!(2), &json!(3), &json!(5), &json!(1)),
        "{s}"
    );
    assert_eq!(
        (&p["new"], &p["changed"], &p["deleted"]),
        (&json!(0), &json!(0), &json!(0)),
        "{p}"
    );
    let load = &env.report("reports/load_report.json")["entities"];
    assert_eq!(load["producers"]["requests"], 0, "nothing to write: {load}");
    assert_eq!(load["buyers"]["written"], 10, "{load}");
    // Foreign items are untouched, and verify does not call them extra.
    for (e, pk) in [
        ("buyers", "BUYER#app-1"),
        ("sales", "SALE#app-1"),
        ("buyers", "OTHER#1"),
    ] {
        assert_eq!(synced[e].get(pk), before_sync[e].get(pk), "{pk}");
    }
    let v = &env.report("reports/verification_report.json")["entities"];
    assert_eq!(v["buyers"]["ok"], true, "{v}");
    assert_eq!(v["buyers"]["foreign"], 1, "{v}");
    assert_eq!(v["sales"]["extra"], 0, "{v}");

    // An independent expectation: a fresh put migration of the moved source
    // into fresh tables, from a fresh data directory.
    let reference = Env::new("syncref");
    reference.generate(200, 10, 120, 21);
    reference.sql(&moves.sql);
    reference.config(json!({}));
    let out = reference.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut ours = synced.clone();
    for items in ours.values_mut() {
        items.retain(|pk, _| !pk.contains("app-1") && pk != "OTHER#1");
    }
    let ours = without_fallbacks(&env, ours);
    let expected = without_fallbacks(&reference, tables(&reference));
    for e in ENTITIES {
        let keys = |t: &Tables| t[e].keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(keys(&ours), keys(&expected), "{e}: the same keys");
        for (pk, item) in &expected[e] {
            assert_eq!(&ours[e][pk], item, "{e} {pk}");
        }
    }

    // Undo the sync: sales first, then buyers (reverse dependency order).
    for e in ["sales", "producers", "buyers"] {
        let out = env.migrate(&["rollback", "--entity", e, "--last", "--yes", "--quiet"]);
        assert!(out.status.success(), "{e}: {}", text(&out));
    }
    let back = tables(&env);
    for e in ENTITIES {
        assert_eq!(back[e], before_sync[e], "{e}: as before the sync");
    }
    let r = &env.report("reports/rollback_report.json")["entities"]["buyers"];
    assert_eq!(r["scope"], "lastSync", "{r}");
    assert_eq!(
        (&r["restored"], &r["deleted"]),
        (&json!(8), &json!(2)),
        "{r}"
    );

    // The sync again gives the synced tables; then a sync with nothing to do
    // sends no BatchWriteItem at all.
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tables(&env), synced);
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            record_writes: true,
            ..Faults::none()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"loadMode": "sync"}}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        proxy.batch_writes().is_empty(),
        "{} BatchWriteItem requests",
        proxy.batch_writes().len()
    );
    let load = &env.report("reports/load_report.json")["entities"];
    for e in ENTITIES {
        assert_eq!(load[e]["requests"], 0, "{e}: {load}");
        let c = &load[e]["sync"];
        assert_eq!(
            (&c["new"], &c["changed"], &c["deleted"]),
            (&json!(0), &json!(0), &json!(0)),
            "{e}: {c}"
        );
    }
    assert_eq!(tables(&env), synced);
}

#[test]
fn a_sync_killed_while_applying_resumes_to_the_same_tables() {
    let env = Env::new("synckill");
    env.generate(200, 60, 1500, 31);
    env.config(json!({"migration": {"loadMode": "sync"}}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = legacy_ids(&env.scan("sales"));
    let sales: Vec<i64> = first.iter().copied().collect();
    assert!(sales.len() >= 700, "{} sales migrated", sales.len());

    // 400 sales amended, 50 disabled, 50 deleted, 100 new.
    let (amended, rest) = sales.split_at(400);
    let (disabled, rest) = rest.split_at(50);
    let (deleted, rest) = rest.split_at(50);
    let copies = &rest[..100];
    env.sql(&format!(
        "UPDATE msg SET description = coalesce(description, 'Sale') || ' (amended)' WHERE first_id IN ({});
         UPDATE msg SET enabled = false WHERE first_id IN ({});
         DELETE FROM msg WHERE first_id IN ({});
         INSERT INTO msg SELECT first_id + 100000, buyer_id, producer_id, sale_date, description, quantity,
                unit_price, vat_rate, total_amount, currency, status, payment_method, enabled, created_at, updated_at
           FROM msg WHERE first_id IN ({});",
        list(amended),
        list(disabled),
        list(deleted),
        list(copies)
    ));

    // Small batches, each held 100 ms by the proxy: applying the 600
    // changes takes seconds, and the checkpoint records progress meanwhile.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(100),
            ..Faults::none()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"loadMode": "sync", "batchSize": 5, "concurrency": 2}}));
    let mut child = env.spawn(&["--full", "--quiet"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let confirmed = loop {
        assert!(Instant::now() < deadline, "the sales sync never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync finished before it could be killed"
        );
        let load = env
            .checkpoint()
            .map(|c| c["entities"]["sales"]["load"].clone());
        if let Some(n) = load
            .filter(|l| l["state"] == "running" && l["sync"].is_object())
            .and_then(|l| l["confirmed"].as_u64())
            .filter(|n| *n > 0)
        {
            break n;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    assert!(
        confirmed < 600,
        "killed in the middle: {confirmed} of 600 confirmed"
    );
    let changes = env.jsonl("changes/sales.jsonl");
    assert_eq!(changes.len(), 600, "the changes artifact");

    proxy.set_faults(Faults::none());
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    // The table: what the source now holds, worked out from the moves alone.
    let table = env.scan("sales");
    let gone: BTreeSet<i64> = disabled.iter().chain(deleted).copied().collect();
    let mut expected: BTreeSet<i64> = first.difference(&gone).copied().collect();
    expected.extend(copies.iter().map(|id| id + 100000));
    assert_eq!(legacy_ids(&table), expected);
    for item in table.values() {
        let id = item["legacyId"].as_i64().unwrap();
        assert_eq!(
            item.get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| d.ends_with(" (amended)")),
            amended.contains(&id),
            "sale {id}: {item:?}"
        );
    }
    // Each change counted once, though some were sent twice.
    let load = &env.report("reports/load_report.json")["entities"]["sales"];
    assert_eq!(
        (
            &load["sync"]["new"],
            &load["sync"]["changed"],
            &load["sync"]["deleted"]
        ),
        (&json!(100), &json!(400), &json!(100)),
        "{load}"
    );
    assert_eq!(load["written"], 600, "{load}");
    let v = &env.report("reports/verification_report.json")["entities"]["sales"];
    assert_eq!(
        (&v["ok"], &v["missing"], &v["different"], &v["extra"]),
        (&json!(true), &json!(0), &json!(0), &json!(0)),
        "{v}"
    );
}
