//! Verify's index check (docs/checks.md): for each index the entity
//! declares, the items a parallel Scan of the index counts (the entity's
//! items only: `PK` begins with its prefix) must equal the validated items
//! that carry the index's key attributes, and a few sample partitions
//! queried through the index (e.g. one buyer's sales through `GSI1`) must
//! hold exactly the artifact's items of that key. Memory: counts, and the
//! keys of at most [`SAMPLES`] samples of at most [`SAMPLE_KEYS`] items.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

use crate::artifact::ArtifactReader;
use crate::dynamo::{self, QueryRequest, RetryPolicy, Target};
use crate::entities::Entity;
use crate::entities::table::{Index, Scalar};
use crate::error::{Error, Result};
use crate::json::{Obj, Val};

/// Sample partitions queried per index.
pub const SAMPLES: usize = 3;
/// Keys kept per sample (beyond them only the count is compared).
pub const SAMPLE_KEYS: usize = 1000;
/// Keys listed per sample in the report when they differ.
const LISTED: usize = 10;

/// One sampled partition of an index: its key value and the artifact's
/// items under it.
struct Sample {
    value: String,
    count: u64,
    pks: BTreeSet<String>,
}

/// What the artifact says one index should hold.
pub struct Expected {
    index: Index,
    expected: u64,
    samples: Vec<Sample>,
}

/// A key attribute of a plain JSON item as text.
fn text<'a>(item: &'a Obj<'_>, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        Val::Str(s) => Some(s),
        Val::Num(n) => Some(n),
        _ => None,
    }
}

/// Per declared index, the items it should hold and the first [`SAMPLES`]
/// partitions with their items, counted from the validated items as they
/// pass (nothing kept per item).
pub struct Expecting(Vec<Expected>);

impl Expecting {
    pub fn new(entity: &Entity) -> Expecting {
        Expecting(
            entity
                .table
                .indexes
                .iter()
                .map(|i| Expected {
                    index: *i,
                    expected: 0,
                    samples: Vec::new(),
                })
                .collect(),
        )
    }

    /// Counts one validated item.
    pub fn add(&mut self, item: &Obj<'_>) {
        for e in &mut self.0 {
            if !e.index.holds(|a| text(item, a).is_some()) {
                continue;
            }
            e.expected += 1;
            let (Some(value), Some(pk)) = (text(item, e.index.key.hash.name), item.str("PK"))
            else {
                continue;
            };
            let room = e.samples.len() < SAMPLES && e.index.key.hash.kind != Scalar::B;
            match e.samples.iter_mut().find(|s| s.value == value) {
                Some(s) => {
                    s.count += 1;
                    if s.pks.len() < SAMPLE_KEYS {
                        s.pks.insert(pk.to_string());
                    }
                }
                None if room => {
                    e.samples.push(Sample {
                        value: value.to_string(),
                        count: 1,
                        pks: BTreeSet::from([pk.to_string()]),
                    });
                }
                None => {}
            }
        }
    }

    /// Whether the entity declares no index (nothing to count).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn finish(self) -> Vec<Expected> {
        self.0
    }
}

/// One pass over the validated artifact for [`Expecting`] (the BatchGetItem
/// method, whose own pass reads items in another form).
pub fn expected(artifact: &Path, entity: &Entity) -> Result<Vec<Expected>> {
    let mut expecting = Expecting::new(entity);
    if expecting.is_empty() {
        return Ok(expecting.finish());
    }
    let mut reader = ArtifactReader::open_streamed(artifact)?;
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        let item = Obj::parse(&buf)
            .map_err(|e| Error::artifact(artifact, format!("line {}: {e}", reader.line_no())))?;
        expecting.add(&item);
    }
    Ok(expecting.finish())
}

/// The `PK`s of the entity's items under one partition key of an index:
/// how many, and at most [`SAMPLE_KEYS`] of them.
async fn query(
    target: &dyn Target,
    table: &str,
    index: &Index,
    value: &str,
    prefix: &str,
    policy: &RetryPolicy,
) -> Result<(u64, BTreeSet<String>)> {
    let key = match index.key.hash.kind {
        Scalar::N => AttributeValue::N(value.into()),
        _ => AttributeValue::S(value.into()),
    };
    let mut request = QueryRequest {
        table,
        index: index.name,
        hash: (index.key.hash.name, key),
        prefix,
        start: None,
    };
    let (mut n, mut pks) = (0u64, BTreeSet::new());
    loop {
        let (items, last) = dynamo::query_page(target, &request, policy).await?;
        for item in &items {
            n += 1;
            if let (true, Some(AttributeValue::S(pk))) = (pks.len() < SAMPLE_KEYS, item.get("PK")) {
                pks.insert(pk.clone());
            }
        }
        match last {
            Some(k) => request.start = Some(k),
            None => return Ok((n, pks)),
        }
    }
}

/// Checks every declared index of `entity` in `table`: the report section
/// (one entry per index) and how many indexes differ.
pub async fn verify(
    target: &dyn Target,
    table: &str,
    entity: &Entity,
    expected: Vec<Expected>,
    segments: u32,
    policy: &RetryPolicy,
) -> Result<(Vec<Value>, u64)> {
    let prefix = entity.key_prefix;
    let mut section = Vec::new();
    let mut bad = 0u64;
    for e in expected {
        let name = e.index.name;
        let mut counted =
            dynamo::count_index(target, table, name, prefix, segments, policy).await?;
        if counted != e.expected {
            // An index is updated shortly after the table (eventually
            // consistent on DynamoDB): count once more before calling it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            counted = dynamo::count_index(target, table, name, prefix, segments, policy).await?;
        }
        let mut ok = counted == e.expected;
        let mut samples = Vec::new();
        for s in &e.samples {
            let (found, pks) = query(target, table, &e.index, &s.value, prefix, policy).await?;
            let complete = s.count <= SAMPLE_KEYS as u64 && found <= SAMPLE_KEYS as u64;
            let missing: Vec<&String> = if complete {
                s.pks.difference(&pks).take(LISTED).collect()
            } else {
                Vec::new()
            };
            let extra: Vec<&String> = if complete {
                pks.difference(&s.pks).take(LISTED).collect()
            } else {
                Vec::new()
            };
            let same = found == s.count && missing.is_empty() && extra.is_empty();
            ok &= same;
            samples.push(json!({
                "key": s.value, "expected": s.count, "found": found, "ok": same,
                "missing": missing, "extra": extra,
            }));
        }
        if !ok {
            bad += 1;
            tracing::warn!(
                "{}: index {name} of {table} holds {counted} of its items, the artifact has {} with its keys",
                entity.name,
                e.expected
            );
        }
        section.push(json!({
            "index": name,
            "key": e.index.key.to_string(),
            "expected": e.expected,
            "countByScan": counted,
            "ok": ok,
            "samples": samples,
        }));
    }
    Ok((section, bad))
}
