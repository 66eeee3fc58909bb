//! Index checks (docs/checks.md): a load refuses a table whose declared
//! index is missing or keyed differently before any write (exit 2, naming
//! table, index and difference); a table shared by several entities with
//! the union of their indexes and an undeclared extra one is fine; verify
//! counts each index's items against the validated artifact and queries
//! sample partitions, so an item missing from an index fails verify.

mod support;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde_json::json;
use support::{Env, text};

fn key(name: &str, t: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(t)
        .build()
        .unwrap()
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

fn gsi(name: &str, hash: &str, range: Option<&str>) -> GlobalSecondaryIndex {
    let mut b = GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        );
    if let Some(r) = range {
        b = b.key_schema(key(r, KeyType::Range));
    }
    b.build().unwrap()
}

/// Creates `table` keyed PK/SK with the given indexes, by hand (not as the
/// entities declare it).
fn create_table(env: &Env, table: &str, indexes: Vec<GlobalSecondaryIndex>) {
    let mut names = vec!["PK".to_string(), "SK".to_string()];
    for g in &indexes {
        for k in g.key_schema() {
            if !names.contains(&k.attribute_name().to_string()) {
                names.push(k.attribute_name().to_string());
            }
        }
    }
    env.rt.block_on(async {
        let mut req = env
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("PK", KeyType::Hash))
            .key_schema(key("SK", KeyType::Range));
        for n in &names {
            req = req.attribute_definitions(attr(n));
        }
        if !indexes.is_empty() {
            req = req.set_global_secondary_indexes(Some(indexes));
        }
        req.send().await.unwrap();
    });
}

/// An env whose buyers and producers tables are made by `migrate tables
/// create` and whose sales table is made by hand with `indexes`.
fn env_with_sales_indexes(tag: &str, indexes: Vec<GlobalSecondaryIndex>) -> Env {
    let env = Env::without_tables(tag);
    let out = env.migrate(&[
        "tables",
        "create",
        "--entity",
        "buyers",
        "--entity",
        "producers",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    create_table(&env, env.table("sales"), indexes);
    env.generate(20, 6, 60, 3);
    env
}

fn assert_refused_before_any_write(env: &Env, out: &std::process::Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    let said = text(out);
    for n in needles {
        assert!(said.contains(n), "{n:?} not in {said}");
    }
    for e in ["buyers", "producers", "sales"] {
        assert!(env.scan(e).is_empty(), "{e}: nothing may be written");
    }
    assert!(
        !env.data_dir().join("extracted/sales.jsonl").exists(),
        "refused before extract"
    );
}

#[test]
fn a_missing_index_is_refused_before_any_write() {
    let env = env_with_sales_indexes("idx_missing", vec![gsi("GSI2", "GSI2PK", Some("GSI2SK"))]);
    let out = env.migrate(&["--full"]);
    let table = env.table("sales").to_string();
    assert_refused_before_any_write(&env, &out, &[&table, "index GSI1 is missing"]);
    // The dry run shows the same refusal.
    let dry = env.migrate(&["--dry-run", "--full"]);
    assert_eq!(dry.status.code(), Some(2), "{}", text(&dry));
    assert!(
        text(&dry).contains("index GSI1 is missing"),
        "{}",
        text(&dry)
    );
}

#[test]
fn a_wrong_index_key_is_refused_before_any_write() {
    let env = env_with_sales_indexes(
        "idx_wrong",
        vec![
            gsi("GSI1", "GSI1SK", None),
            gsi("GSI2", "GSI2PK", Some("GSI2SK")),
        ],
    );
    let out = env.migrate(&["--full"]);
    let table = env.table("sales").to_string();
    assert_refused_before_any_write(
        &env,
        &out,
        &[
            &table,
            "index GSI1 has key GSI1SK (S, HASH), expected GSI1PK (S, HASH) + GSI1SK (S, RANGE)",
        ],
    );
}

#[test]
fn a_shared_table_with_the_union_and_an_extra_index_is_fine() {
    let mut env = Env::without_tables("idx_shared");
    let shared = format!("shared-{}", env.name);
    for t in env.tables.values_mut() {
        *t = shared.clone();
    }
    env.config(json!({}));
    create_table(
        &env,
        &shared,
        vec![
            gsi("GSI1", "GSI1PK", Some("GSI1SK")),
            gsi("GSI2", "GSI2PK", Some("GSI2SK")),
            gsi("GSI3", "legacyType", None),
        ],
    );
    env.generate(20, 6, 60, 5);
    let dry = env.migrate(&["--dry-run", "--full"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("indexes GSI1 on GSI1PK (S, HASH) + GSI1SK (S, RANGE), GSI2"),
        "the dry run shows the check: {}",
        text(&dry)
    );
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = env.report("reports/verification_report.json");
    let indexes = report["entities"]["sales"]["indexes"].as_array().unwrap();
    assert_eq!(indexes.len(), 2, "{report}");
    assert!(indexes.iter().all(|i| i["ok"] == true), "{report}");
    assert_eq!(
        report["entities"]["buyers"]["indexes"],
        json!([]),
        "buyers declare no index"
    );
}

#[test]
fn verify_counts_each_index_and_catches_an_item_left_out_of_it() {
    let env = Env::new("idx_verify");
    env.generate(30, 8, 120, 7);
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = env.report("reports/verification_report.json");
    let sales = &report["entities"]["sales"];
    let indexes = sales["indexes"].as_array().unwrap();
    assert_eq!(indexes.len(), 2, "{sales}");
    let loaded = env.scan("sales").len() as u64;
    for i in indexes {
        assert_eq!(i["ok"], true, "{i}");
        assert_eq!(
            i["expected"].as_u64(),
            Some(loaded),
            "every valid sale has a buyer and a producer: {i}"
        );
        assert_eq!(i["countByScan"], i["expected"], "{i}");
        let samples = i["samples"].as_array().unwrap();
        assert!(!samples.is_empty(), "{i}");
        for s in samples {
            assert!(
                s["expected"].as_u64().unwrap() > 0 && s["found"] == s["expected"],
                "{s}"
            );
        }
    }

    // One sale rewritten without its GSI1 key: it leaves GSI1.
    let (pk, mut item) = env.scan("sales").into_iter().next().unwrap();
    item.remove("GSI1PK");
    env.put("sales", &item);
    let out = env.migrate(&["--phase", "verify", "--entity", "sales", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = env.report("reports/verification_report.json");
    let indexes = report["entities"]["sales"]["indexes"].as_array().unwrap();
    let gsi1 = indexes.iter().find(|i| i["index"] == "GSI1").unwrap();
    assert_eq!(gsi1["ok"], false, "{gsi1}");
    assert_eq!(
        gsi1["countByScan"].as_u64(),
        Some(loaded - 1),
        "{gsi1} ({pk})"
    );
    let gsi2 = indexes.iter().find(|i| i["index"] == "GSI2").unwrap();
    assert_eq!(gsi2["ok"], true, "{gsi2}");
    assert!(text(&out).contains("1 index(es)"), "{}", text(&out));
}
