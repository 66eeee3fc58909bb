//! Verify: after a load, every validated item is read back and
//! compared; the report names what is missing, different, extra or refers to
//! an item that no longer exists. The table is edited by hand here, so each
//! kind of difference is known in advance.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, text};

const ENTITIES: [&str; 3] = ["buyers", "producers", "sales"];

/// The validated artifact of `entity`, keyed by PK.
fn artifact(env: &Env, entity: &str) -> BTreeMap<String, Map<String, Value>> {
    env.jsonl(&format!("validated/{entity}.jsonl"))
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => (m["PK"].as_str().unwrap().to_string(), m),
            other => panic!("artifact record is not an object: {other}"),
        })
        .collect()
}

/// The PKs listed under `examples.<kind>` of an entity's section.
fn example_pks(section: &Value, kind: &str) -> BTreeSet<String> {
    section["examples"][kind]
        .as_array()
        .unwrap_or_else(|| panic!("examples.{kind} is a list: {section}"))
        .iter()
        .map(|e| e["PK"].as_str().unwrap().to_string())
        .collect()
}

/// The same number written differently (`25.1` → `25.10`, `7` → `7.0`).
fn respelled(n: &Value) -> Value {
    let t = n.to_string();
    let other = if t.contains(['.', 'e', 'E']) {
        format!("{t}0")
    } else {
        format!("{t}.0")
    };
    let v: Value = serde_json::from_str(&other).unwrap();
    assert_ne!(
        v.to_string(),
        t,
        "numbers keep their text (serde_json arbitrary_precision)"
    );
    v
}

fn assert_clean(section: &Value, entity: &str) {
    assert_eq!(section["ok"], true, "{entity}: {section}");
    let expected = section["expected"].as_u64().unwrap();
    assert!(expected > 0, "{entity}: something was verified: {section}");
    for (k, want) in [
        ("found", expected),
        ("matched", expected),
        ("countByScan", expected),
    ] {
        assert_eq!(section[k].as_u64(), Some(want), "{entity}.{k}: {section}");
    }
    for k in ["missing", "different", "extra", "orphanReferences"] {
        assert_eq!(section[k], 0, "{entity}.{k}: {section}");
        assert_eq!(
            section["examples"][k],
            json!([]),
            "{entity}.examples.{k}: {section}"
        );
    }
}

#[test]
fn clean_migration_verifies() {
    let env = Env::new("vclean");
    env.generate(120, 40, 600, 11);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    let report = env.report("reports/verification_report.json");
    for e in ENTITIES {
        let section = &report["entities"][e];
        assert_clean(section, e);
        let validated = artifact(&env, e).len() as u64;
        assert_eq!(
            section["expected"].as_u64(),
            Some(validated),
            "{e}: every validated item is checked"
        );
        assert_eq!(
            env.scan(e).len() as u64,
            validated,
            "{e}: the table holds exactly the validated items"
        );
        assert_eq!(section["table"], env.table(e), "{e}");
        assert!(
            section["seconds"].as_f64().is_some() && section["itemsPerSecond"].as_f64().is_some(),
            "{section}"
        );
    }
}

#[test]
fn verify_catches_every_kind_of_difference() {
    every_kind_of_difference("vdiff", "scan");
}

/// The same differences found by reading every artifact key back with
/// BatchGetItem (`verifyMethod: "batchGet"`).
#[test]
fn batch_get_verify_catches_every_kind_of_difference() {
    every_kind_of_difference("vdiffbg", "batchGet");
}

fn every_kind_of_difference(name: &str, method: &str) {
    let env = Env::new(name);
    env.generate(60, 20, 300, 23);
    env.config(json!({"migration": {"verifyMethod": method}}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    let sales = artifact(&env, "sales");
    let table = env.scan("sales");
    assert_eq!(table.len(), sales.len());
    let pks: Vec<&String> = sales.keys().collect();
    assert!(pks.len() > 10, "enough sales to pick from: {}", pks.len());

    // 1. One attribute of one sale changed.
    let changed_pk = pks[0].clone();
    let mut changed = sales[&changed_pk].clone();
    let want_total = changed["totalAmount"].clone();
    let new_total: Value = serde_json::from_str("0.01").unwrap();
    assert_ne!(want_total.to_string(), "0.01");
    changed.insert("totalAmount".into(), new_total.clone());
    env.put("sales", &changed);

    // 2. Another sale deleted.
    let deleted_pk = pks[1].clone();
    env.delete("sales", &deleted_pk);

    // 3. An item the migration wrote in some run (the sales prefix and
    //    `createdBy` `migration@system`) that the artifact does not hold.
    let extra_id = uuid::Uuid::new_v4().to_string();
    let extra_pk = format!("SALE#{extra_id}");
    let mut extra = Map::new();
    extra.insert("PK".into(), json!(extra_pk));
    extra.insert("SK".into(), json!("METADATA"));
    extra.insert("saleId".into(), json!(extra_id));
    extra.insert("createdBy".into(), json!("migration@system"));
    env.put("sales", &extra);

    // 4. A buyer that a remaining sale refers to, deleted.
    let referring_pk = pks[2].clone();
    let buyer_id = sales[&referring_pk]["buyerId"]
        .as_str()
        .unwrap()
        .to_string();
    let buyer_pk = format!("BUYER#{buyer_id}");
    assert!(
        env.scan("buyers").contains_key(&buyer_pk),
        "the buyer was migrated"
    );
    env.delete("buyers", &buyer_pk);

    // 5. A sale rewritten with its numbers spelled differently: not a difference.
    let respelled_pk = pks
        .iter()
        .skip(3)
        .find(|pk| sales[**pk]["buyerId"] != json!(buyer_id))
        .expect("a sale of another buyer")
        .to_string();
    let mut same = sales[&respelled_pk].clone();
    for attr in [
        "quantity",
        "unitPrice",
        "vatRate",
        "totalAmount",
        "legacyId",
    ] {
        let n = same[attr].clone();
        assert!(n.is_number(), "{attr} is a number: {n}");
        same.insert(attr.into(), respelled(&n));
    }
    env.put("sales", &same);
    let stored = env.scan("sales")[&respelled_pk].clone();
    assert_ne!(
        stored["totalAmount"].to_string(),
        sales[&respelled_pk]["totalAmount"].to_string(),
        "the table really holds another spelling of the number"
    );

    // The sales that now refer to a buyer that does not exist.
    let orphans: BTreeSet<String> = sales
        .iter()
        .filter(|(pk, item)| **pk != deleted_pk && item["buyerId"] == json!(buyer_id))
        .map(|(pk, _)| pk.clone())
        .collect();
    assert!(orphans.contains(&referring_pk));

    let out = env.migrate(&["--phase", "verify", "--quiet"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "differences fail the command: {}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("verification_report.json"),
        "the message points at the report: {}",
        text(&out)
    );

    let report = env.report("reports/verification_report.json");
    let s = &report["entities"]["sales"];
    assert_eq!(s["method"], method, "{s}");
    let n = sales.len() as u64;
    assert_eq!(s["ok"], false, "{s}");
    assert_eq!(s["expected"].as_u64(), Some(n), "{s}");
    assert_eq!(s["found"].as_u64(), Some(n - 1), "{s}");
    assert_eq!(
        s["matched"].as_u64(),
        Some(n - 2),
        "only the changed and the deleted sale fail to match: {s}"
    );
    assert_eq!(s["missing"], 1, "{s}");
    assert_eq!(s["different"], 1, "{s}");
    assert_eq!(s["extra"], 1, "{s}");
    assert_eq!(
        s["orphanReferences"].as_u64(),
        Some(orphans.len() as u64),
        "{s}"
    );
    assert_eq!(
        s["countByScan"].as_u64(),
        Some(n),
        "n − 1 deleted + 1 extra: {s}"
    );

    // The changed sale: by key, with the attribute, the expected and the found value.
    assert_eq!(
        s["examples"]["different"],
        json!([{"PK": changed_pk, "SK": "METADATA",
                "attributes": [{"attribute": "totalAmount", "expected": want_total, "found": new_total}]}]),
        "{s}"
    );
    // Numbers compared by value: the respelled sale is not among the differences.
    assert!(!example_pks(s, "different").contains(&respelled_pk), "{s}");
    // The deleted sale, with its legacy id.
    assert_eq!(
        s["examples"]["missing"],
        json!([{"PK": deleted_pk, "SK": "METADATA", "legacyId": sales[&deleted_pk]["legacyId"]}]),
        "{s}"
    );
    // The extra item.
    assert_eq!(
        s["examples"]["extra"],
        json!([{"PK": extra_pk, "SK": "METADATA"}]),
        "{s}"
    );
    // The orphan references: every sale of the deleted buyer, and nothing else.
    assert_eq!(example_pks(s, "orphanReferences"), orphans, "{s}");
    for o in s["examples"]["orphanReferences"].as_array().unwrap() {
        assert_eq!(o["attribute"], "buyerId", "{o}");
        assert_eq!(o["value"], json!(buyer_id), "{o}");
        assert_eq!(o["table"], "buyers", "{o}");
        assert_eq!(o["SK"], "METADATA", "{o}");
    }

    // The buyers entity: the deleted buyer is missing.
    let b = &report["entities"]["buyers"];
    assert_eq!(b["ok"], false, "{b}");
    assert_eq!(b["missing"], 1, "{b}");
    assert_eq!(b["different"], 0, "{b}");
    assert_eq!(b["extra"], 0, "{b}");
    assert_eq!(
        example_pks(b, "missing"),
        BTreeSet::from([buyer_pk.clone()]),
        "{b}"
    );
    assert_eq!(
        b["countByScan"].as_u64(),
        Some(b["expected"].as_u64().unwrap() - 1),
        "{b}"
    );
    // Producers untouched.
    assert_clean(&report["entities"]["producers"], "producers");

    // Put everything back as the artifact says, numbers in another spelling
    // included: verify passes again.
    env.put("sales", &sales[&changed_pk]);
    env.put("sales", &sales[&deleted_pk]);
    env.delete("sales", &extra_pk);
    let buyer = artifact(&env, "buyers")
        .remove(&buyer_pk)
        .expect("the buyer is in the artifact");
    env.put("buyers", &buyer);
    let out = env.migrate(&["--phase", "verify", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = env.report("reports/verification_report.json");
    for e in ENTITIES {
        assert_clean(&report["entities"][e], e);
    }
    assert_ne!(
        env.scan("sales")[&respelled_pk]["quantity"].to_string(),
        sales[&respelled_pk]["quantity"].to_string(),
        "still the other spelling"
    );
}

#[test]
fn verify_alone_on_existing_data_dir() {
    let env = Env::new("valone");
    env.generate(40, 10, 50, 5);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = env.report("reports/verification_report.json");

    let out = env.migrate(&["--phase", "verify", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = env.report("reports/verification_report.json");
    assert_ne!(
        report["runId"], first["runId"],
        "a new run wrote the report"
    );
    assert_clean(&report["entities"]["buyers"], "buyers");
    assert_eq!(
        report["entities"]["buyers"]["expected"].as_u64(),
        Some(artifact(&env, "buyers").len() as u64)
    );

    // The checkpoint records the verify step of that run.
    let status = env.migrate(&["status"]);
    let s = String::from_utf8_lossy(&status.stdout);
    assert!(
        s.lines()
            .any(|l| l.starts_with("buyers") && l.contains("verify") && l.contains("done")),
        "{s}"
    );

    // And a difference made afterwards is caught by verify alone.
    let (pk, _) = env.scan("buyers").into_iter().next().unwrap();
    env.delete("buyers", &pk);
    let out = env.migrate(&["--phase", "verify", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let b = &env.report("reports/verification_report.json")["entities"]["buyers"];
    assert_eq!(example_pks(b, "missing"), BTreeSet::from([pk]), "{b}");
}

#[test]
fn throttled_reads_are_retried_and_counted_in_the_report() {
    let env = Env::new("vreads");
    env.generate(40, 10, 50, 6);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    // Verify again, every Scan page through a proxy that throttles or fails
    // most of them.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            throttle_rate: 0.4,
            server_error_rate: 0.3,
            only_ops: Some(vec!["Scan".into()]),
            seed: 77,
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint},
                      "migration": {"maxRetries": 20, "retryDelay": 0.005, "maxRetryDelay": 0.05}}));
    let out = env.migrate(&["--phase", "verify", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let stats = proxy.stats();
    assert!(
        stats.throttled > 0 && stats.server_errors > 0,
        "the proxy failed some scans: {stats:?}"
    );
    let b = &env.report("reports/verification_report.json")["entities"]["buyers"];
    assert_clean(b, "buyers");
    // The report counts exactly what the proxy injected.
    let reads = &b["reads"];
    assert_eq!(reads["throttled"].as_u64(), Some(stats.throttled), "{b}");
    assert_eq!(
        reads["serverErrors"].as_u64(),
        Some(stats.server_errors),
        "{b}"
    );
    assert_eq!(
        reads["retries"].as_u64(),
        Some(stats.throttled + stats.server_errors),
        "{b}"
    );
    assert!(
        reads["requests"].as_u64() > reads["retries"].as_u64(),
        "{b}"
    );
}

#[test]
fn items_that_are_not_the_migrations_are_foreign_not_extra() {
    let env = Env::new("vpre");
    env.generate(40, 10, 50, 9);
    let mut pre = Map::new();
    pre.insert("PK".into(), json!("BUYER#pre-existing"));
    pre.insert("SK".into(), json!("METADATA"));
    pre.insert("companyName".into(), json!("Already there"));
    env.put("buyers", &pre);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    let report = env.report("reports/verification_report.json");
    let b = &report["entities"]["buyers"];
    assert_eq!(b["ok"], true, "{b}");
    assert_eq!(b["extra"], 0, "{b}");
    assert_eq!(b["foreign"], 1, "not the migration's, so not extra: {b}");
    let expected = b["expected"].as_u64().unwrap();
    assert_eq!(b["matched"].as_u64(), Some(expected), "{b}");
    assert_eq!(
        b["countByScan"].as_u64(),
        Some(expected + 1),
        "the scan counts the pre-existing item too: {b}"
    );
    assert!(
        env.scan("buyers").contains_key("BUYER#pre-existing"),
        "the load left it alone"
    );

    // An item the migration wrote in another run (the buyers prefix and
    // `createdBy` `migration@system`) that the artifact lacks is extra; the
    // pre-existing one is still foreign.
    let mut late = pre.clone();
    late.insert("PK".into(), json!("BUYER#after-the-load"));
    late.insert("createdBy".into(), json!("migration@system"));
    env.put("buyers", &late);
    let out = env.migrate(&["--phase", "verify", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let b = &env.report("reports/verification_report.json")["entities"]["buyers"];
    assert_eq!(b["extra"], 1, "{b}");
    assert_eq!(b["foreign"], 1, "{b}");
    assert_eq!(
        example_pks(b, "extra"),
        BTreeSet::from(["BUYER#after-the-load".to_string()]),
        "{b}"
    );
}

/// More differences than verify keeps in memory: the table side of the first
/// 1,000 unmatched items of the Scan is kept, the rest is read back by key
/// (BatchGetItem) for the report's examples, which are the first 50
/// differences in artifact order. With every one of 1,250-odd sales changed,
/// those 50 are a mix of both kinds (artifact order is by legacy id, Scan
/// order by key; the chance that all 50 were kept is about 1 in 100,000).
/// Every example must show the value the table really holds.
#[test]
fn many_differences_keep_exact_examples() {
    let env = Env::new("vmany");
    env.generate(30, 10, 1300, 31);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    // The sales in artifact order.
    let sales: Vec<Map<String, Value>> = env
        .jsonl("validated/sales.jsonl")
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => m,
            other => panic!("artifact record is not an object: {other}"),
        })
        .collect();
    assert!(
        sales.len() > 1100,
        "more sales than verify keeps: {}",
        sales.len()
    );
    let mut found: BTreeMap<String, Value> = BTreeMap::new();
    for item in &sales {
        let pk = item["PK"].as_str().unwrap().to_string();
        let was = item["totalAmount"].to_string();
        let now = if was == "0.01" { "0.02" } else { "0.01" };
        let mut changed = item.clone();
        changed.insert("totalAmount".into(), serde_json::from_str(now).unwrap());
        env.put("sales", &changed);
        found.insert(pk, serde_json::from_str(now).unwrap());
    }
    let expected: BTreeMap<String, Value> = sales
        .iter()
        .map(|s| {
            (
                s["PK"].as_str().unwrap().to_string(),
                s["totalAmount"].clone(),
            )
        })
        .collect();

    let out = env.migrate(&["--phase", "verify", "--entity", "sales", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = &env.report("reports/verification_report.json")["entities"]["sales"];
    let n = sales.len() as u64;
    assert_eq!(s["ok"], false, "{s}");
    for (k, want) in [
        ("expected", n),
        ("found", n),
        ("countByScan", n),
        ("different", n),
        ("matched", 0),
        ("missing", 0),
        ("extra", 0),
        ("orphanReferences", 0),
    ] {
        assert_eq!(s[k].as_u64(), Some(want), "sales.{k}: {s}");
    }
    let examples = s["examples"]["different"].as_array().expect("a list");
    assert_eq!(examples.len(), 50, "the report keeps 50 examples: {s}");
    for e in examples {
        let pk = e["PK"].as_str().unwrap();
        assert_eq!(e["SK"], "METADATA", "{e}");
        assert_eq!(
            e["attributes"],
            json!([{"attribute": "totalAmount", "expected": expected[pk], "found": found[pk]}]),
            "{pk}: the expected value from the artifact, the found one from the table"
        );
    }
}
