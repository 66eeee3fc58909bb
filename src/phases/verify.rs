//! Verify: proof that the table holds what was validated. Every item of the
//! validated artifact is fetched (BatchGetItem, 100 keys a request, several
//! in flight, unprocessed keys retried) and compared attribute by attribute,
//! numbers by value and maps member by member. One keys-only parallel scan
//! counts the entity's items and lists those with the entity's prefix that
//! the artifact does not hold (ignoring those the pre-load backup shows were
//! there before); references to other entities
//! are checked against their tables. Differences go to
//! `data/reports/verification_report.json`.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::{KeySet, key_hash};
use crate::artifact::ArtifactReader;
use crate::checkpoint::{Checkpoint, Phase, Step};
use crate::dynamo::{self, AvItem, MAX_BATCH_GET_KEYS, RetryPolicy, item_from_av, key_of};
use crate::entities::{self, Entity, Item};
use crate::error::{Error, Result};
use crate::mapping::canonical_number;
use crate::report;
use crate::runner::Ctx;

/// How many examples of each kind of difference the report lists.
const EXAMPLES: usize = 50;

/// Whether two attribute values are equal: numbers by value, maps member by
/// member, lists element by element.
pub fn same_value(expected: &Value, found: &Value) -> bool {
    match (expected, found) {
        (Value::Number(a), Value::Number(b)) => {
            canonical_number(a.as_str()) == canonical_number(b.as_str())
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (a, b) => a == b,
    }
}

/// The attributes that differ: (attribute, expected, found), absent as null.
pub fn differences(expected: &Item, found: &Item) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    for (k, v) in expected {
        match found.get(k) {
            Some(w) if same_value(v, w) => {}
            other => out.push((k.clone(), v.clone(), other.cloned().unwrap_or(Value::Null))),
        }
    }
    for (k, w) in found {
        if !expected.contains_key(k) {
            out.push((k.clone(), Value::Null, w.clone()));
        }
    }
    out
}

#[derive(Default)]
struct Findings {
    expected: u64,
    matched: u64,
    missing: u64,
    different: u64,
    orphans: u64,
    missing_examples: Vec<Value>,
    different_examples: Vec<Value>,
    orphan_examples: Vec<Value>,
}

/// Verifies one entity against its table.
pub async fn run(ctx: &Ctx, entity: &dyn Entity, step: &mut Step) -> Result<Vec<String>> {
    let started = Instant::now();
    let artifact = ctx.artifact(Phase::Validate, entity.name());
    let mut reader = ArtifactReader::open(&artifact)?;
    step.input_sha256 = Some(reader.manifest().sha256.clone());
    let total = reader.manifest().records;
    let table = ctx.table(entity)?.to_string();
    let client = ctx.dynamo().await.clone();
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let segments = ctx.config.migration.scan_segments;

    // The ids present in the tables this entity refers to.
    let mut ref_sets: Vec<(entities::Reference, KeySet)> = Vec::new();
    for r in entity.references() {
        let target = entities::find(r.entity)
            .ok_or_else(|| Error::Dependency(format!("unknown entity {}", r.entity)))?;
        let ref_table = ctx.table(target)?.to_string();
        let mut ids = KeySet::new();
        let mut pages = dynamo::scan(
            &client,
            &ref_table,
            segments,
            Some(target.key_prefix()),
            true,
            &policy,
        );
        while let Some(page) = pages.recv().await {
            for item in page? {
                if let Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)) = item.get("PK") {
                    ids.insert(key_hash(pk.trim_start_matches(target.key_prefix()), ""));
                }
            }
        }
        ref_sets.push((*r, ids));
    }

    let bar = ctx.progress.bar(entity.name(), "verify", Some(total));
    let mut f = Findings::default();
    // Sorted once the comparison is done: 16 bytes an item, no hash table.
    let mut expected_keys: Vec<u128> = Vec::with_capacity(total as usize);
    let mut buf = String::new();
    let mut in_flight = FuturesUnordered::new();
    let concurrency = ctx.config.migration.concurrency.max(1);
    let mut group: Vec<Item> = Vec::with_capacity(MAX_BATCH_GET_KEYS);
    let mut done = false;
    while !done || !in_flight.is_empty() {
        while !done && in_flight.len() < concurrency {
            match reader.next_record::<Item>(&mut buf)? {
                Some(item) => {
                    let (pk, sk) = key_of(&item);
                    expected_keys.push(key_hash(&pk, &sk));
                    group.push(item);
                    if group.len() < MAX_BATCH_GET_KEYS {
                        continue;
                    }
                }
                None => done = true,
            }
            if group.is_empty() {
                continue;
            }
            let items = std::mem::take(&mut group);
            let (client, table, policy) = (client.clone(), table.clone(), policy.clone());
            in_flight.push(async move {
                let keys: Vec<AvItem> = items
                    .iter()
                    .map(|i| {
                        let (pk, sk) = key_of(i);
                        HashMap::from([
                            (
                                "PK".to_string(),
                                aws_sdk_dynamodb::types::AttributeValue::S(pk),
                            ),
                            (
                                "SK".to_string(),
                                aws_sdk_dynamodb::types::AttributeValue::S(sk),
                            ),
                        ])
                    })
                    .collect();
                let found = dynamo::batch_get(&client, &table, keys, &policy).await;
                (items, found)
            });
        }
        let Some((items, found)) = in_flight.next().await else {
            break;
        };
        let found = found?;
        let mut by_key: HashMap<(String, String), Item> = found
            .iter()
            .map(|av| {
                let item = item_from_av(av);
                (key_of(&item), item)
            })
            .collect();
        for expected in &items {
            f.expected += 1;
            let key = key_of(expected);
            match by_key.remove(&key) {
                None => {
                    f.missing += 1;
                    if f.missing_examples.len() < EXAMPLES {
                        f.missing_examples.push(
                            json!({"PK": key.0, "SK": key.1, "legacyId": expected.get("legacyId")}),
                        );
                    }
                }
                Some(actual) => {
                    let diffs = differences(expected, &actual);
                    if diffs.is_empty() {
                        f.matched += 1;
                    } else {
                        f.different += 1;
                        if f.different_examples.len() < EXAMPLES {
                            f.different_examples.push(json!({
                                "PK": key.0, "SK": key.1,
                                "attributes": diffs.iter().map(|(a, e, v)| json!({"attribute": a, "expected": e, "found": v})).collect::<Vec<_>>(),
                            }));
                        }
                    }
                    for (r, ids) in &ref_sets {
                        let ok = actual
                            .get(r.attribute)
                            .and_then(Value::as_str)
                            .is_some_and(|id| ids.contains(&key_hash(id, "")));
                        if !ok {
                            f.orphans += 1;
                            if f.orphan_examples.len() < EXAMPLES {
                                f.orphan_examples.push(
                                    json!({"PK": key.0, "SK": key.1, "attribute": r.attribute,
                                    "value": actual.get(r.attribute), "table": r.entity}),
                                );
                            }
                        }
                    }
                }
            }
        }
        bar.inc(items.len() as u64);
        bar.set_errors(f.missing + f.different + f.orphans, String::new());
    }
    bar.finish();

    // Items in the table the artifact does not hold, apart from those there before the load.
    expected_keys.sort_unstable();
    // One keys-only parallel Scan both counts the entity's items in the table
    // and finds the extra ones (a separate Select=COUNT scan cost the server a
    // second pass over the table).
    let before = backup_keys(ctx, entity)?;
    let mut counted = 0u64;
    let mut extra = 0u64;
    let mut preexisting = 0u64;
    let mut extra_examples = Vec::new();
    let mut pages = dynamo::scan(
        &client,
        &table,
        segments,
        Some(entity.key_prefix()),
        true,
        &policy,
    );
    while let Some(page) = pages.recv().await {
        for item in page? {
            counted += 1;
            let key = key_of(&item_from_av(&item));
            let h = key_hash(&key.0, &key.1);
            if expected_keys.binary_search(&h).is_ok() {
                continue;
            }
            if before.contains(&h) {
                preexisting += 1;
            } else {
                extra += 1;
                if extra_examples.len() < EXAMPLES {
                    extra_examples.push(json!({"PK": key.0, "SK": key.1}));
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let problems = f.missing + f.different + extra + f.orphans;
    step.records_in = f.expected;
    step.records_out = f.matched;
    step.rejected = problems;
    step.reasons = [
        ("missing", f.missing),
        ("different", f.different),
        ("extra", extra),
        ("orphan_reference", f.orphans),
    ]
    .into_iter()
    .filter(|(_, v)| *v > 0)
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    report::update(
        &ctx.report("verification_report.json"),
        &ctx.run_id,
        entity.name(),
        json!({
            "table": table,
            "ok": problems == 0,
            "expected": f.expected,
            "found": f.expected - f.missing,
            "matched": f.matched,
            "countByScan": counted,
            "missing": f.missing,
            "different": f.different,
            "extra": extra,
            "orphanReferences": f.orphans,
            "preexistingItemsIgnored": preexisting,
            "examples": {
                "missing": f.missing_examples,
                "different": f.different_examples,
                "extra": extra_examples,
                "orphanReferences": f.orphan_examples,
            },
            "seconds": seconds,
            "itemsPerSecond": if seconds > 0.0 { f.expected as f64 / seconds } else { 0.0 },
        }),
    )?;
    if problems == 0 {
        tracing::info!(
            "verified {}: {} items match, {counted} counted by scan",
            entity.name(),
            f.matched
        );
        Ok(Vec::new())
    } else {
        Ok(vec![format!(
            "{}: verification found {} missing, {} different, {extra} extra, {} orphan reference(s); see {}",
            entity.name(),
            f.missing,
            f.different,
            f.orphans,
            ctx.report("verification_report.json").display()
        )])
    }
}

/// Keys with the entity's prefix that the pre-load backup held.
fn backup_keys(ctx: &Ctx, entity: &dyn Entity) -> Result<KeySet> {
    let mut set = KeySet::new();
    let Some(cp) = Checkpoint::load(&ctx.data_dir)? else {
        return Ok(set);
    };
    let Some(backup) = cp
        .step(entity.name(), Phase::Load)
        .and_then(|s| s.backup.clone())
    else {
        return Ok(set);
    };
    let mut reader = ArtifactReader::open(&backup.path)?;
    let mut buf = String::new();
    while let Some(item) = reader.next_record::<Item>(&mut buf)? {
        let (pk, sk) = key_of(&item);
        if pk.starts_with(entity.key_prefix()) {
            set.insert(key_hash(&pk, &sk));
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_by_value_maps_by_member() {
        let a: Item = serde_json::from_str(r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}}"#).unwrap();
        let b: Item = serde_json::from_str(r#"{"n": 1.5, "m": {"y": 2, "x": "1"}}"#).unwrap();
        assert!(differences(&a, &b).is_empty());
        let c: Item = serde_json::from_str(r#"{"n": 1.51, "m": {"x": "1"}, "z": true}"#).unwrap();
        let d = differences(&a, &c);
        let names: Vec<&str> = d.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["m", "n", "z"]);
    }
}
