//! Verify: proof that the table holds what was validated. Every item of the
//! validated artifact is compared with the table's, all attributes, numbers
//! by value and maps member by member, in one of two ways:
//! - `scan` (default): the artifact's item fingerprints (8 bytes an item,
//!   sorted) against one consistent parallel Scan of the table; the few items
//!   that do not match are told apart (different, missing, extra) by key in a
//!   second pass over the artifact;
//! - `batchGet`: every artifact key read back with BatchGetItem (100 keys a
//!   request, several in flight), then a keys-only parallel Scan for the count
//!   and the extra items.
//!
//! Either way the Scan counts the entity's items, items the baseline backup
//! shows were there before are not extra, and references to other entities
//! are checked against their tables. Differences go to
//! `data/reports/verification_report.json`.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::reconcile::{self, Tally};
use super::{KeySet, key_hash, verify_indexes};
use crate::artifact::ArtifactReader;
use crate::checkpoint::{Phase, Step};
use crate::config::VerifyMethod;
use crate::ctx::Ctx;
use crate::dynamo::{self, MAX_BATCH_GET_KEYS, RetryPolicy, item_from_av, key_of};
use crate::entities::{self, Entity, Item};
use crate::error::{Error, Result};
use crate::fingerprint::{fingerprint, fingerprint_line, fingerprint_wire};
use crate::json::{Obj, Val};
use crate::mapping::canonical_number_cow;
use crate::report;

/// How many examples of each kind of difference the report lists.
const EXAMPLES: usize = 50;

/// Whether two attribute values are equal: numbers by value, maps member by
/// member, lists element by element.
pub fn same_value(expected: &Value, found: &Value) -> bool {
    match (expected, found) {
        (Value::Number(a), Value::Number(b)) => {
            canonical_number_cow(a.as_str()) == canonical_number_cow(b.as_str())
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

/// A scanned item's wire JSON, parsed in place.
fn scanned<'a>(table: &str, wire: &'a str) -> Result<Obj<'a>> {
    Obj::parse(wire)
        .map_err(|e| Error::Target(format!("scan of {table}: an item is not JSON: {e}")))
}

/// A string attribute of a scanned item (`{"S": "…"}`).
fn wire_str<'a>(item: &'a Obj<'_>, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        Val::Obj(o) => o.str("S"),
        _ => None,
    }
}

#[derive(Default)]
struct Findings {
    expected: u64,
    matched: u64,
    missing: u64,
    different: u64,
    orphans: u64,
    counted: u64,
    extra: u64,
    preexisting: u64,
    missing_examples: Vec<Value>,
    different_examples: Vec<Value>,
    orphan_examples: Vec<Value>,
    extra_examples: Vec<Value>,
}

impl Findings {
    fn missing(&mut self, key: (&str, &str), expected: &Item) {
        self.missing += 1;
        if self.missing_examples.len() < EXAMPLES {
            self.missing_examples
                .push(json!({"PK": key.0, "SK": key.1, "legacyId": expected.get("legacyId")}));
        }
    }

    fn different_example(&mut self, key: (&str, &str), expected: &Item, actual: &Item) {
        if self.different_examples.len() < EXAMPLES {
            let diffs = differences(expected, actual);
            self.different_examples.push(json!({
                "PK": key.0, "SK": key.1,
                "attributes": diffs.iter().map(|(a, e, v)| json!({"attribute": a, "expected": e, "found": v})).collect::<Vec<_>>(),
            }));
        }
    }

    /// Checks the references of an item the table holds; `attribute` reads
    /// one of its string attributes.
    fn references<'i>(
        &mut self,
        refs: &[(entities::Reference, KeySet)],
        key: (&str, &str),
        attribute: impl Fn(&str) -> Option<&'i str>,
    ) {
        for (r, ids) in refs {
            let value = attribute(r.attribute);
            if !value.is_some_and(|id| ids.contains(&key_hash(id, ""))) {
                self.orphans += 1;
                if self.orphan_examples.len() < EXAMPLES {
                    self.orphan_examples.push(json!({"PK": key.0, "SK": key.1,
                        "attribute": r.attribute, "value": value, "table": r.entity}));
                }
            }
        }
    }

    /// An item with the entity's prefix that the artifact does not hold.
    fn not_expected(&mut self, before: &KeySet, key: (&str, &str)) {
        if before.contains(&key_hash(key.0, key.1)) {
            self.preexisting += 1;
        } else {
            self.extra += 1;
            if self.extra_examples.len() < EXAMPLES {
                self.extra_examples.push(json!({"PK": key.0, "SK": key.1}));
            }
        }
    }
}

/// What both ways of verifying need.
struct Target<'a> {
    entity: &'a dyn Entity,
    table: String,
    client: aws_sdk_dynamodb::Client,
    policy: RetryPolicy,
    segments: u32,
    concurrency: usize,
    refs: Vec<(entities::Reference, KeySet)>,
    before: KeySet,
}

impl Target<'_> {
    /// A consistent parallel Scan of the entity's items in its table.
    fn scan(&self, keys_only: bool) -> tokio::sync::mpsc::Receiver<Result<dynamo::RawPage>> {
        dynamo::scan(
            &self.client,
            &self.table,
            self.segments,
            Some(self.entity.key_prefix()),
            keys_only,
            &self.policy,
        )
    }
}

/// Reads the table's side of `items` by key (BatchGetItem, consistent),
/// keyed by (PK, SK); items the table lacks are absent.
async fn read_by_key(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    policy: &RetryPolicy,
    items: &[Item],
) -> Result<HashMap<(String, String), Item>> {
    let keys = items
        .iter()
        .map(|i| {
            let (pk, sk) = key_of(i);
            HashMap::from([
                ("PK".to_string(), AttributeValue::S(pk)),
                ("SK".to_string(), AttributeValue::S(sk)),
            ])
        })
        .collect();
    Ok(dynamo::batch_get(client, table, keys, policy)
        .await?
        .iter()
        .map(|av| {
            let item = item_from_av(av);
            (key_of(&item), item)
        })
        .collect())
}

/// Verifies one entity against its table.
pub async fn run(ctx: &Ctx, entity: &dyn Entity, step: &mut Step) -> Result<Vec<String>> {
    let started = Instant::now();
    let artifact = ctx.artifact(Phase::Validate, entity.name());
    let mut reader = ArtifactReader::open(&artifact)?;
    step.input_sha256 = Some(reader.manifest().sha256.clone());
    let client = ctx.dynamo().await.clone();
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let segments = ctx.config.migration.scan_segments;
    let method = ctx.config.migration.verify_method;

    // The scan method fingerprints the artifact on a worker thread while the
    // referenced tables' keys are scanned.
    let pass1 = (method == VerifyMethod::Scan).then(|| {
        tokio::task::spawn_blocking(move || {
            let expected = fingerprints(&mut reader);
            // The parsed items are gone: give their pages back before the scan.
            crate::ctx::release_memory();
            expected.map(|e| (reader, e))
        })
    });

    // The ids present in the tables this entity refers to.
    let mut refs: Vec<(entities::Reference, KeySet)> = Vec::new();
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
            stop_if_cancelled(ctx, entity.name())?;
            let page = page?;
            for item in page.items() {
                let item = scanned(&ref_table, item)?;
                if let Some(pk) = wire_str(&item, "PK") {
                    ids.insert(key_hash(pk.trim_start_matches(target.key_prefix()), ""));
                }
            }
        }
        refs.push((*r, ids));
    }
    let t = Target {
        entity,
        table: ctx.table(entity)?.to_string(),
        client,
        policy,
        segments,
        concurrency: ctx.config.migration.concurrency.max(1),
        refs,
        before: backup_keys(ctx, entity)?,
    };

    // What the indexes should hold, and the money the table's items carry
    // (docs/checks.md): counted along the way, nothing kept per item.
    let index_expected = verify_indexes::expected(&artifact, entity)?;
    let mut tally = entity.reconcile().map(Tally::new);
    let f = match pass1 {
        Some(pass1) => {
            let (reader, expected) = match pass1.await {
                Ok(done) => done?,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            match expected {
                Some(expected) => by_scan(ctx, &t, &reader, expected, &mut tally).await?,
                None => {
                    tracing::warn!(
                        "{}: two items share a 64-bit fingerprint; verifying with BatchGetItem instead",
                        entity.name()
                    );
                    by_batch_get(ctx, &t, reader.reopen()?, &mut tally).await?
                }
            }
        }
        None => by_batch_get(ctx, &t, ArtifactReader::open(&artifact)?, &mut tally).await?,
    };
    let (indexes, bad_indexes) = verify_indexes::verify(
        &t.client,
        &t.table,
        entity,
        index_expected,
        segments,
        &t.policy,
    )
    .await?;
    let (reconciliation, unreconciled) = match tally {
        Some(tally) => {
            let (section, problem) = reconcile::verify(ctx, entity, tally).await?;
            (Some(section), problem)
        }
        None => (None, None),
    };
    let table = t.table;

    let seconds = started.elapsed().as_secs_f64();
    let problems = f.missing + f.different + f.extra + f.orphans + bad_indexes;
    step.records_in = f.expected;
    step.records_out = f.matched;
    step.rejected = problems;
    step.reasons = [
        ("missing", f.missing),
        ("different", f.different),
        ("extra", f.extra),
        ("orphan_reference", f.orphans),
        ("index", bad_indexes),
        ("reconciliation", u64::from(unreconciled.is_some())),
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
            "method": match method { VerifyMethod::Scan => "scan", VerifyMethod::BatchGet => "batchGet" },
            "ok": problems == 0 && unreconciled.is_none(),
            "expected": f.expected,
            "found": f.expected - f.missing,
            "matched": f.matched,
            "countByScan": f.counted,
            "missing": f.missing,
            "different": f.different,
            "extra": f.extra,
            "orphanReferences": f.orphans,
            "indexes": indexes,
            "reconciliation": reconciliation,
            "preexistingItemsIgnored": f.preexisting,
            "examples": {
                "missing": f.missing_examples,
                "different": f.different_examples,
                "extra": f.extra_examples,
                "orphanReferences": f.orphan_examples,
            },
            "seconds": seconds,
            "itemsPerSecond": if seconds > 0.0 { f.expected as f64 / seconds } else { 0.0 },
        }),
    )?;
    if problems == 0 && unreconciled.is_none() {
        tracing::info!(
            "verified {}: {} items match, {} counted by scan",
            entity.name(),
            f.matched,
            f.counted
        );
        Ok(Vec::new())
    } else {
        let mut found = Vec::new();
        if problems > 0 {
            found.push(format!(
                "{}: verification found {} missing, {} different, {} extra, {} orphan reference(s), {} index(es) \
                 not holding what they should; see {}",
                entity.name(),
                f.missing,
                f.different,
                f.extra,
                f.orphans,
                bad_indexes,
                ctx.report("verification_report.json").display()
            ));
        }
        found.extend(unreconciled);
        Ok(found)
    }
}

/// Pass 1 of the scan method: the sorted fingerprints of every artifact item
/// (key and content: the key attributes are part of the item), 8 bytes an
/// item. `None` when two items share one (odds ~10⁻⁸ at a million items):
/// the caller then verifies with BatchGetItem.
fn fingerprints(reader: &mut ArtifactReader) -> Result<Option<Vec<u64>>> {
    let mut expected = Vec::with_capacity(reader.manifest().records as usize);
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        let fp = fingerprint_line(&buf).map_err(|e| {
            Error::artifact(reader.path(), format!("line {}: {e}", reader.line_no()))
        })?;
        expected.push(fp);
    }
    expected.sort_unstable();
    let collision = expected.windows(2).any(|w| w[0] == w[1]);
    Ok((!collision).then_some(expected))
}

/// A table item whose fingerprint the artifact does not hold: a changed
/// item, or one the artifact does not have at all. Rare; told apart in pass 2.
struct Unmatched {
    pk: String,
    sk: String,
    /// The item itself, kept for the first few (report examples).
    item: Option<Item>,
    /// Its orphan references, counted only if it turns out to be expected.
    orphans: Findings,
    paired: bool,
}

/// How many unmatched table items keep their attributes for the examples;
/// the expected side of the others is fetched by key when needed.
const KEEP_UNMATCHED_ITEMS: usize = 1000;

/// One parallel Scan of the table, each item's fingerprint looked up among
/// the artifact's: found = the same item (marked). The rest — table items
/// whose fingerprint the artifact lacks, artifact items never marked — are
/// few, and a second pass over the artifact (only then) pairs them by key:
/// both sides = different; artifact only = missing; table only = extra, or
/// there before the load.
async fn by_scan(
    ctx: &Ctx,
    t: &Target<'_>,
    reader: &ArtifactReader,
    expected: Vec<u64>,
    tally: &mut Option<Tally>,
) -> Result<Findings> {
    let mut f = Findings {
        expected: expected.len() as u64,
        ..Findings::default()
    };
    let mut marked = vec![0u64; expected.len().div_ceil(64)];
    let mut unmatched: Vec<Unmatched> = Vec::new();
    let bar = ctx
        .progress
        .bar(t.entity.name(), "verify", Some(f.expected));
    let mut pages = t.scan(false);
    while let Some(page) = pages.recv().await {
        stop_if_cancelled(ctx, t.entity.name())?;
        let page = page?;
        for wire in page.items() {
            let av = scanned(&t.table, wire)?;
            let av = &av;
            f.counted += 1;
            if let Some(tally) = tally.as_mut() {
                tally.add(|a| reconcile::wire_value(av, a));
            }
            let text = |name: &str| wire_str(av, name);
            let key = (
                text("PK").unwrap_or_default(),
                text("SK").unwrap_or_default(),
            );
            match expected.binary_search(&fingerprint_wire(av)) {
                Ok(i) => {
                    marked[i / 64] |= 1 << (i % 64);
                    f.matched += 1;
                    f.references(&t.refs, key, text);
                }
                Err(_) => {
                    let mut orphans = Findings::default();
                    orphans.references(&t.refs, key, text);
                    unmatched.push(Unmatched {
                        pk: key.0.to_string(),
                        sk: key.1.to_string(),
                        item: if unmatched.len() < KEEP_UNMATCHED_ITEMS {
                            Some(item_from_av(&dynamo::wire_item_to_av(wire).map_err(
                                |e| Error::Target(format!("scan of {}: {e}", t.table)),
                            )?))
                        } else {
                            None
                        },
                        orphans,
                        paired: false,
                    });
                }
            }
        }
        bar.inc(page.len() as u64);
        bar.set_errors(unmatched.len() as u64 + f.orphans, String::new());
    }
    bar.finish();
    let unmarked = f.expected - f.matched;
    if unmarked > 0 || !unmatched.is_empty() {
        let by_key: HashMap<u128, usize> = unmatched
            .iter()
            .enumerate()
            .map(|(i, u)| (key_hash(&u.pk, &u.sk), i))
            .collect();
        // Differences whose table side was not kept: fetched afterwards.
        let mut fetch: Vec<Item> = Vec::new();
        let mut reader = reader.reopen()?;
        let mut buf = String::new();
        let mut seen = 0u64;
        while seen < unmarked {
            let Some(item) = reader.next_record::<Item>(&mut buf)? else {
                break;
            };
            let Ok(i) = expected.binary_search(&fingerprint(&item)) else {
                continue; // the artifact changed under us: reopen() guards it
            };
            if marked[i / 64] & (1 << (i % 64)) != 0 {
                continue;
            }
            seen += 1;
            let (pk, sk) = key_of(&item);
            match by_key.get(&key_hash(&pk, &sk)) {
                Some(&u) => {
                    let u = &mut unmatched[u];
                    u.paired = true;
                    f.different += 1;
                    // The first EXAMPLES differences of the artifact are the
                    // examples, whether their table side was kept or is fetched.
                    match &u.item {
                        _ if f.different_examples.len() + fetch.len() >= EXAMPLES => {}
                        Some(actual) => f.different_example((&pk, &sk), &item, actual),
                        None => fetch.push(item),
                    }
                    f.orphans += u.orphans.orphans;
                    for o in u.orphans.orphan_examples.drain(..) {
                        if f.orphan_examples.len() < EXAMPLES {
                            f.orphan_examples.push(o);
                        }
                    }
                }
                None => f.missing((&pk, &sk), &item),
            }
        }
        for u in unmatched.iter().filter(|u| !u.paired) {
            f.not_expected(&t.before, (&u.pk, &u.sk));
        }
        if !fetch.is_empty() {
            let found = read_by_key(&t.client, &t.table, &t.policy, &fetch).await?;
            for expected in &fetch {
                let key = key_of(expected);
                let actual = found.get(&key).cloned().unwrap_or_default();
                f.different_example((&key.0, &key.1), expected, &actual);
            }
        }
    }
    Ok(f)
}

/// BatchGetItem of every artifact key (100 a request, `concurrency` in
/// flight, consistent reads), then a keys-only parallel Scan for the count
/// and the extra items.
async fn by_batch_get(
    ctx: &Ctx,
    t: &Target<'_>,
    mut reader: ArtifactReader,
    tally: &mut Option<Tally>,
) -> Result<Findings> {
    let total = reader.manifest().records;
    let bar = ctx.progress.bar(t.entity.name(), "verify", Some(total));
    let mut f = Findings::default();
    // Sorted once the comparison is done: 16 bytes an item, no hash table.
    let mut expected_keys: Vec<u128> = Vec::with_capacity(total as usize);
    let mut buf = String::new();
    let mut in_flight = FuturesUnordered::new();
    let mut group: Vec<Item> = Vec::with_capacity(MAX_BATCH_GET_KEYS);
    let mut done = false;
    while !done || !in_flight.is_empty() {
        while !done && in_flight.len() < t.concurrency {
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
            let (client, table, policy) = (t.client.clone(), t.table.clone(), t.policy.clone());
            in_flight.push(async move {
                let found = read_by_key(&client, &table, &policy, &items).await;
                (items, found)
            });
        }
        let Some((items, found)) = in_flight.next().await else {
            break;
        };
        let mut by_key = found?;
        for expected in &items {
            f.expected += 1;
            let key = key_of(expected);
            let k = (key.0.as_str(), key.1.as_str());
            match by_key.remove(&key) {
                None => f.missing(k, expected),
                Some(actual) => {
                    if let Some(tally) = tally.as_mut() {
                        tally.add(|a| reconcile::plain_value(&actual, a));
                    }
                    if differences(expected, &actual).is_empty() {
                        f.matched += 1;
                    } else {
                        f.different += 1;
                        f.different_example(k, expected, &actual);
                    }
                    f.references(&t.refs, k, |a| actual.get(a).and_then(Value::as_str));
                }
            }
        }
        bar.inc(items.len() as u64);
        bar.set_errors(f.missing + f.different + f.orphans, String::new());
    }
    bar.finish();

    // One keys-only parallel Scan both counts the entity's items in the table
    // and finds the extra ones.
    expected_keys.sort_unstable();
    let mut pages = t.scan(true);
    while let Some(page) = pages.recv().await {
        stop_if_cancelled(ctx, t.entity.name())?;
        let page = page?;
        for item in page.items() {
            let item = scanned(&t.table, item)?;
            f.counted += 1;
            let key = (
                wire_str(&item, "PK").unwrap_or_default(),
                wire_str(&item, "SK").unwrap_or_default(),
            );
            if expected_keys
                .binary_search(&key_hash(key.0, key.1))
                .is_err()
            {
                f.not_expected(&t.before, key);
            }
        }
    }
    Ok(f)
}

/// Keys with the entity's prefix that the baseline backup held.
fn backup_keys(ctx: &Ctx, entity: &dyn Entity) -> Result<KeySet> {
    crate::backup::baseline_keys(&ctx.data_dir, entity.name(), entity.key_prefix())
}

/// Verify only reads: on Ctrl-C or `--time-limit` it stops between pages
/// and `--resume` verifies the entity again from the start.
fn stop_if_cancelled(ctx: &Ctx, entity: &str) -> Result<()> {
    if ctx.cancelled() {
        return Err(Error::Interrupted(format!(
            "verify of {entity} stopped; `migrate --resume` verifies it again"
        )));
    }
    Ok(())
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

    #[test]
    fn fingerprints_agree_with_the_comparison() {
        let item = |t: &str| serde_json::from_str::<Item>(t).unwrap();
        let a =
            item(r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#);
        let same =
            item(r#"{"z": null, "b": true, "l": [1.0, "a"], "m": {"y": 2, "x": "1"}, "n": 15e-1}"#);
        assert!(differences(&a, &same).is_empty());
        assert_eq!(fingerprint(&a), fingerprint(&same));
        let line =
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "\u0061"], "b": true, "z": null}"#;
        assert_eq!(fingerprint_line(line).unwrap(), fingerprint(&a));
        for other in [
            r#"{"n": 1.51, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": ["a", 1], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": 1, "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": "1"}, "l": [1, "a"], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true}"#,
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": false}"#,
            r#"{"n": "1.50", "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#,
        ] {
            let b = item(other);
            assert!(!differences(&a, &b).is_empty(), "{other}");
            assert_ne!(fingerprint(&a), fingerprint(&b), "{other}");
            assert_eq!(fingerprint_line(other).unwrap(), fingerprint(&b), "{other}");
        }
    }
}
