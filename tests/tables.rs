//! `migrate tables create` and the dry run's estimate, run as a user runs
//! them, against the DynamoDB server: tables made from the entities'
//! definitions (keys, indexes, billing), a second run that changes nothing,
//! a table of another shape refused with exit 2 naming it, `--entity`
//! narrowing, and a dry run whose estimate comes from a measured rate in a
//! scratch table that is gone afterwards.

mod support;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TableStatus,
};
use serde_json::json;
use support::{Env, text};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The table's description, `None` when it does not exist.
fn describe(env: &Env, table: &str) -> Option<TableDescription> {
    env.rt.block_on(async {
        match env.client.describe_table().table_name(table).send().await {
            Ok(out) => out.table,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("describe {table}: {e:?}"),
        }
    })
}

/// `{"PK": "HASH S", ...}` of a key schema, with the attribute types.
fn keys(elements: &[KeySchemaElement], desc: &TableDescription) -> BTreeMap<String, String> {
    elements
        .iter()
        .map(|k| {
            let t = desc
                .attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == k.attribute_name())
                .map_or("?", |a| a.attribute_type().as_str());
            (
                k.attribute_name().to_string(),
                format!("{} {t}", k.key_type().as_str()),
            )
        })
        .collect()
}

fn pk_sk(hash: &str, range: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (hash.to_string(), "HASH S".to_string()),
        (range.to_string(), "RANGE S".to_string()),
    ])
}

/// Index name → (keys, projection, status).
fn indexes(
    desc: &TableDescription,
) -> BTreeMap<String, (BTreeMap<String, String>, String, String)> {
    desc.global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap().to_string(),
                (
                    keys(g.key_schema(), desc),
                    g.projection()
                        .and_then(|p| p.projection_type())
                        .map_or("?", |p| p.as_str())
                        .to_string(),
                    g.index_status().map_or("?", |s| s.as_str()).to_string(),
                ),
            )
        })
        .collect()
}

fn table_names(env: &Env) -> Vec<String> {
    env.rt.block_on(async {
        let mut names = Vec::new();
        let mut start = None;
        loop {
            let page = env
                .client
                .list_tables()
                .set_exclusive_start_table_name(start)
                .send()
                .await
                .unwrap();
            names.extend(page.table_names().iter().cloned());
            start = page.last_evaluated_table_name().map(str::to_string);
            if start.is_none() {
                return names;
            }
        }
    })
}

#[test]
fn tables_create_makes_the_declared_tables_then_leaves_them_alone() {
    let env = Env::without_tables("tcreate");
    for t in env.tables.values() {
        assert!(describe(&env, t).is_none(), "{t} exists before the test");
    }

    let out = env.migrate(&["tables", "create"]);
    assert!(out.status.success(), "{}", text(&out));
    let so = stdout(&out);
    for (entity, table) in &env.tables {
        let desc = describe(&env, table).unwrap_or_else(|| panic!("{table} not created: {so}"));
        assert_eq!(desc.table_status(), Some(&TableStatus::Active), "{table}");
        assert_eq!(keys(desc.key_schema(), &desc), pk_sk("PK", "SK"), "{table}");
        assert_eq!(
            desc.billing_mode_summary().and_then(|b| b.billing_mode()),
            Some(&BillingMode::PayPerRequest),
            "on-demand by default: {table}"
        );
        let want = if entity == "sales" {
            BTreeMap::from([
                (
                    "GSI1".to_string(),
                    (pk_sk("GSI1PK", "GSI1SK"), "ALL".into(), "ACTIVE".into()),
                ),
                (
                    "GSI2".to_string(),
                    (pk_sk("GSI2PK", "GSI2SK"), "ALL".into(), "ACTIVE".into()),
                ),
            ])
        } else {
            BTreeMap::new()
        };
        assert_eq!(indexes(&desc), want, "{table}");
        assert!(
            so.contains(&format!("table {table} ({entity}): created")),
            "{so}"
        );
    }

    // Second run: nothing changes, the data stays.
    let item = json!({"PK": "BUYER#keep", "SK": "METADATA", "note": "keep me"});
    env.put("buyers", item.as_object().unwrap());
    let created: Vec<_> = env
        .tables
        .values()
        .map(|t| describe(&env, t).unwrap().creation_date_time().cloned())
        .collect();
    let out = env.migrate(&["tables", "create"]);
    assert!(out.status.success(), "{}", text(&out));
    let so = stdout(&out);
    assert_eq!(so.matches("left as it is").count(), 3, "{so}");
    assert!(!so.contains("created"), "{so}");
    let again: Vec<_> = env
        .tables
        .values()
        .map(|t| describe(&env, t).unwrap().creation_date_time().cloned())
        .collect();
    assert_eq!(created, again, "no table was made again");
    assert_eq!(env.scan("buyers").len(), 1, "the item is still there");
}

/// Creates `table` with the SDK, keyed by `keys` (HASH first), no index.
fn create_raw(env: &Env, table: &str, keys: &[&str]) {
    env.rt.block_on(async {
        let mut req = env
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest);
        for (i, k) in keys.iter().enumerate() {
            req = req
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(*k)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(*k)
                        .key_type(if i == 0 {
                            KeyType::Hash
                        } else {
                            KeyType::Range
                        })
                        .build()
                        .unwrap(),
                );
        }
        req.send().await.unwrap();
    });
}

#[test]
fn a_table_of_another_shape_is_refused_naming_it_and_nothing_is_created() {
    let env = Env::without_tables("tother");
    let buyers = env.table("buyers").to_string();
    create_raw(&env, &buyers, &["id"]);

    let out = env.migrate(&["tables", "create"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(&buyers), "names the table: {err}");
    assert!(
        err.contains("key schema id (S, HASH), expected PK (S, HASH) + SK (S, RANGE)"),
        "{err}"
    );
    assert!(describe(&env, env.table("producers")).is_none(), "{err}");
    assert!(describe(&env, env.table("sales")).is_none(), "{err}");

    // A sales table with the right keys but without its indexes.
    let env = Env::without_tables("tnoidx");
    let sales = env.table("sales").to_string();
    create_raw(&env, &sales, &["PK", "SK"]);
    let out = env.migrate(&["tables", "create", "--entity", "sales"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(&sales), "{err}");
    assert!(err.contains("index GSI1 is missing"), "{err}");
    assert!(err.contains("index GSI2 is missing"), "{err}");
}

#[test]
fn entity_narrows_to_its_table_and_billing_follows_the_config() {
    let env = Env::without_tables("tentity");
    env.config(json!({"target": {"billingMode": "PROVISIONED",
                                 "readCapacityUnits": 5, "writeCapacityUnits": 7}}));
    let out = env.migrate(&["tables", "create", "--entity", "sales"]);
    assert!(out.status.success(), "{}", text(&out));
    let desc = describe(&env, env.table("sales")).expect("the sales table");
    assert_eq!(indexes(&desc).len(), 2);
    let p = desc.provisioned_throughput().unwrap();
    assert_eq!(
        (p.read_capacity_units(), p.write_capacity_units()),
        (Some(5), Some(7))
    );
    assert!(describe(&env, env.table("buyers")).is_none());
    assert!(describe(&env, env.table("producers")).is_none());

    // Beyond DynamoDB's limits: refused before any call.
    env.config(json!({"target": {"billingMode": "PROVISIONED",
                                 "readCapacityUnits": 5, "writeCapacityUnits": 40001}}));
    let out = env.migrate(&["tables", "create", "--entity", "buyers"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("/target/writeCapacityUnits"),
        "{}",
        text(&out)
    );
    assert!(describe(&env, env.table("buyers")).is_none());
}

#[test]
fn entities_sharing_a_table_get_it_once_with_the_union_of_indexes() {
    let env = Env::without_tables("tshared");
    let one = env.table("sales").to_string();
    env.config(json!({"target": {"buyersTable": one, "producersTable": one}}));
    let out = env.migrate(&["tables", "create", "--entity", "buyers"]);
    assert!(out.status.success(), "{}", text(&out));
    let so = stdout(&out);
    assert!(
        so.contains(&format!("table {one} (buyers, producers, sales): created")),
        "{so}"
    );
    let desc = describe(&env, &one).unwrap();
    assert_eq!(
        indexes(&desc).keys().collect::<Vec<_>>(),
        ["GSI1", "GSI2"],
        "the sales' indexes, though only buyers was named"
    );
}

#[test]
fn dry_run_estimates_from_a_measured_rate_and_leaves_no_scratch_table() {
    let env = Env::new("testim");
    env.generate(150, 40, 2500, 21);
    let out = env.migrate(&["--dry-run", "--full"]);
    assert!(out.status.success(), "{}", text(&out));
    let so = stdout(&out);
    // entity, table, items, requests, write units, estimate
    let estimates: BTreeMap<String, f64> = so
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6 && env.tables.get(f[0]).is_some_and(|t| t == f[1])).then(|| {
                (
                    f[0].to_string(),
                    f[5].trim_end_matches('s').parse().unwrap(),
                )
            })
        })
        .collect();
    assert_eq!(estimates.len(), 3, "{so}");
    for e in ["buyers", "producers", "sales"] {
        assert!(
            so.contains(&format!("  {e}: rate: "))
                && so.contains("items/s measured at the local endpoint"),
            "the assumptions are printed beside the numbers: {so}"
        );
    }
    assert!(
        so.lines().any(|l| l.starts_with("  sales: writes:")
            && l.contains("(GSI1)")
            && l.contains("(GSI2)")),
        "the index writes are counted: {so}"
    );
    // The scratch tables are gone, and the target tables were never written.
    let left: Vec<String> = table_names(&env)
        .into_iter()
        .filter(|t| {
            t.starts_with("migrate-estimate-")
                && env.tables.values().any(|m| t.ends_with(m.as_str()))
        })
        .collect();
    assert!(left.is_empty(), "scratch tables left: {left:?}");
    for e in ["buyers", "producers", "sales"] {
        assert!(env.scan(e).is_empty(), "the dry run wrote to the {e} table");
    }

    // The load the estimate is for. Both run on the same shared machine, so
    // the bound is loose; the old estimate (requests × a DescribeTable round
    // trip ÷ concurrency) was 20× under.
    let out = env.migrate(&["--phase", "load", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = env.report("reports/load_report.json");
    for e in ["buyers", "producers", "sales"] {
        let took = report["entities"][e]["seconds"].as_f64().unwrap();
        let estimated = estimates[e];
        eprintln!("{e}: estimated {estimated:.1}s, the load took {took:.1}s");
        if e == "sales" {
            assert!(
                estimated >= took / 4.0 && estimated <= took * 4.0,
                "{e}: estimated {estimated:.1}s, the load took {took:.1}s: {so}"
            );
        }
    }
}
