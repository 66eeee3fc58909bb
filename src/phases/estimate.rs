//! The dry run's estimate of a load's time, from what bounds a real load
//! (docs/tables.md, "The dry run's estimate"):
//!
//! - the write units: each item rounded up to 1 KB in the table, and again
//!   in every index that holds it (it has the index's key attributes; a
//!   KEYS_ONLY index entry is one unit);
//! - against AWS, the write throughput of the table and of each index:
//!   provisioned WCU, else the warm throughput DescribeTable reports, else
//!   the 4,000 write units/s of a new on-demand table; the slowest of them,
//!   or the client (requests × a measured round trip ÷ concurrency) when
//!   that is slower;
//! - against a local endpoint, which enforces no throughput, a measured
//!   rate: a few hundred items sampled across the artifact are written with
//!   the load's own batch writer, batch size and concurrency into a scratch
//!   table of the same keys and indexes, which the dry run creates and
//!   deletes. The target tables are never written.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{BillingMode, ProjectionType, TableDescription};
use futures_util::StreamExt;

use crate::config::Billing;
use crate::ctx::Ctx;
use crate::dynamo::{self, CallStats, RetryPolicy, WRITE_UNIT_BYTES, Write, item_size};
use crate::entities::table::Projection;
use crate::error::{Error, Result};
use crate::json::Obj;
use crate::progress::thousands;
use crate::tables::{self, TableSpec};

/// Items written to the scratch table to measure a local endpoint's rate.
pub const SAMPLE_ITEMS: u64 = 400;
/// The sample's bytes stop growing here (the sales hold items of 380 KB).
const SAMPLE_MAX_BYTES: usize = 16 << 20;
/// Write units per second a new on-demand table (and each of its indexes)
/// sustains before DynamoDB has scaled it out.
pub const NEW_ON_DEMAND_WRITE_UNITS: i64 = 4_000;
/// How long the scratch table may take to be created or deleted.
const SCRATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// The write throughput of a table or index.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rate {
    Provisioned(i64),
    Warm(i64),
    NewOnDemand,
}

impl Rate {
    fn per_second(self) -> f64 {
        match self {
            Rate::Provisioned(n) | Rate::Warm(n) => n as f64,
            Rate::NewOnDemand => NEW_ON_DEMAND_WRITE_UNITS as f64,
        }
    }
    fn describe(self) -> String {
        match self {
            Rate::Provisioned(n) => format!("{} WCU provisioned", thousands(n as u64)),
            Rate::Warm(n) => format!("{} write units/s warm throughput", thousands(n as u64)),
            Rate::NewOnDemand => format!(
                "{} write units/s (on-demand, no warm throughput reported: a new table's)",
                thousands(NEW_ON_DEMAND_WRITE_UNITS as u64)
            ),
        }
    }
}

/// Where an item's writes land: the table, or one index.
#[derive(Debug)]
struct Target {
    /// `None` for the table itself.
    index: Option<String>,
    /// The index's key attributes (an item without one is not in it).
    keys: Vec<String>,
    keys_only: bool,
    rate: Rate,
    units: u64,
}

/// What the load of one entity would write, counted over its artifact.
#[derive(Debug)]
pub struct Tally {
    pub items: u64,
    targets: Vec<Target>,
    stride: u64,
    sample: Vec<String>,
    sample_bytes: usize,
}

impl Tally {
    /// Counts for `spec`'s table as `desc` describes it (its real indexes and
    /// throughput), or as it is defined when there is no description.
    pub fn new(spec: &TableSpec, desc: Option<&TableDescription>, records: u64) -> Tally {
        let mut targets = vec![Target {
            index: None,
            keys: Vec::new(),
            keys_only: false,
            rate: table_rate(desc),
            units: 0,
        }];
        match desc {
            Some(d) => {
                for g in d.global_secondary_indexes() {
                    let rate = match (
                        g.provisioned_throughput()
                            .and_then(|p| p.write_capacity_units()),
                        g.warm_throughput().and_then(|w| w.write_units_per_second()),
                    ) {
                        (Some(n), _) if n > 0 => Rate::Provisioned(n),
                        (_, Some(n)) if n > 0 => Rate::Warm(n),
                        _ => Rate::NewOnDemand,
                    };
                    targets.push(Target {
                        index: Some(g.index_name().unwrap_or("?").to_string()),
                        keys: g
                            .key_schema()
                            .iter()
                            .map(|k| k.attribute_name().to_string())
                            .collect(),
                        keys_only: g.projection().and_then(|p| p.projection_type())
                            == Some(&ProjectionType::KeysOnly),
                        rate,
                        units: 0,
                    });
                }
            }
            None => {
                for i in &spec.indexes {
                    targets.push(Target {
                        index: Some(i.name.to_string()),
                        keys: i.key.attrs().map(|a| a.name.to_string()).collect(),
                        keys_only: i.projection == Projection::KeysOnly,
                        rate: Rate::NewOnDemand,
                        units: 0,
                    });
                }
            }
        }
        Tally {
            items: 0,
            targets,
            stride: (records / SAMPLE_ITEMS).max(1),
            sample: Vec::new(),
            sample_bytes: 0,
        }
    }

    /// Counts one item (`line` is its JSON text, `item` the same parsed).
    pub fn add(&mut self, line: &str, item: &Obj<'_>) {
        let units = item_size(item).div_ceil(WRITE_UNIT_BYTES).max(1) as u64;
        for t in &mut self.targets {
            if t.keys.iter().all(|k| item.get(k).is_some()) {
                t.units += if t.keys_only { 1 } else { units };
            }
        }
        if self.items.is_multiple_of(self.stride)
            && (self.sample.len() as u64) < SAMPLE_ITEMS
            && self.sample_bytes + line.len() <= SAMPLE_MAX_BYTES
        {
            self.sample_bytes += line.len();
            self.sample.push(line.to_string());
        }
        self.items += 1;
    }

    /// The items' own write units in the table (each rounded up to 1 KB).
    pub fn units(&self) -> u64 {
        self.targets[0].units
    }

    /// The write units of the items and of their index entries.
    pub fn total_units(&self) -> u64 {
        self.targets.iter().map(|t| t.units).sum()
    }
}

fn table_rate(desc: Option<&TableDescription>) -> Rate {
    let Some(d) = desc else {
        return Rate::NewOnDemand;
    };
    let on_demand = d.billing_mode_summary().and_then(|b| b.billing_mode())
        == Some(&BillingMode::PayPerRequest);
    let wcu = d
        .provisioned_throughput()
        .and_then(|p| p.write_capacity_units())
        .filter(|n| *n > 0);
    let warm = d
        .warm_throughput()
        .and_then(|w| w.write_units_per_second())
        .filter(|n| *n > 0);
    match (wcu, warm) {
        (Some(n), _) if !on_demand => Rate::Provisioned(n),
        (_, Some(n)) => Rate::Warm(n),
        _ => Rate::NewOnDemand,
    }
}

/// A load's estimated time and the assumptions behind it, to print beside it.
#[derive(Debug)]
pub struct Estimate {
    pub secs: f64,
    pub assumptions: Vec<String>,
}

/// Estimates the load of the items `tally` counted into `spec`'s table;
/// `rtt` is a measured round trip to the endpoint.
pub async fn estimate(ctx: &Ctx, spec: &TableSpec, tally: &Tally, rtt: Duration) -> Estimate {
    let m = &ctx.config.migration;
    let mut assumptions = vec![writes_line(tally)];
    let local = ctx
        .config
        .target
        .endpoint
        .as_deref()
        .is_some_and(dynamo::is_loopback);
    if local && !tally.sample.is_empty() {
        match measure(ctx, spec, &tally.sample).await {
            Ok((rate, scratch)) => {
                assumptions.push(format!(
                    "rate: {} items/s measured at the local endpoint: {} items sampled across the artifact, BatchWriteItem of {}, {} in flight, into scratch table {scratch} (same keys and indexes; created, then deleted)",
                    thousands(rate.round() as u64),
                    tally.sample.len(),
                    m.batch_size,
                    m.concurrency
                ));
                return Estimate {
                    secs: tally.items as f64 / rate,
                    assumptions,
                };
            }
            Err(e) => {
                tracing::warn!(
                    "the estimate's measured rate failed ({e}); estimating from the table's throughput"
                );
                assumptions.push(format!("rate: not measured ({e})"));
            }
        }
    }
    let mut secs = 0.0f64;
    let mut rates = Vec::new();
    for t in &tally.targets {
        secs = secs.max(t.units as f64 / t.rate.per_second());
        let what = t.index.as_deref().unwrap_or("table");
        rates.push(format!("{what} {}", t.rate.describe()));
    }
    let requests = tally.items.div_ceil(m.batch_size as u64);
    let client = requests as f64 * rtt.as_secs_f64() / m.concurrency as f64;
    assumptions.push(format!(
        "throughput: {} → {secs:.1}s at the slowest",
        rates.join("; ")
    ));
    assumptions.push(format!(
        "client: {requests} requests × {} ms round trip ÷ {} in flight = {client:.1}s; the estimate is the slower of the two",
        rtt.as_millis(),
        m.concurrency
    ));
    Estimate {
        secs: secs.max(client),
        assumptions,
    }
}

/// `writes: 9,120 units (items) + 8,542 (GSI1) + … = 26,204, 2.87× the items'`.
fn writes_line(tally: &Tally) -> String {
    let parts: Vec<String> = tally
        .targets
        .iter()
        .map(|t| {
            format!(
                "{} ({})",
                thousands(t.units),
                t.index.as_deref().unwrap_or("items")
            )
        })
        .collect();
    let factor = tally.total_units() as f64 / tally.units().max(1) as f64;
    format!(
        "writes: {} = {} write units, {factor:.2}× the items' (each item rounded up to 1 KB, again in every index holding it)",
        parts.join(" + "),
        thousands(tally.total_units())
    )
}

/// Writes the sample into a scratch table like `spec`'s and returns the
/// items per second and the scratch table's name. The table is deleted
/// whatever happened.
async fn measure(ctx: &Ctx, spec: &TableSpec, sample: &[String]) -> Result<(f64, String)> {
    let m = &ctx.config.migration;
    let client = ctx.dynamo().await;
    let policy = RetryPolicy::from_config(m);
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    // Recognisably the dry run's, and whose: `migrate-estimate-<random>-<target>`.
    let mut name = format!("migrate-estimate-{suffix}-{}", spec.name);
    name.truncate(255);
    if ctx.config.target.tables.values().any(|t| *t == name) {
        return Err(Error::target(format!(
            "the scratch table name {name} is a configured table"
        )));
    }
    let scratch = spec.renamed(name.clone());
    if !tables::create(client, &scratch, Billing::PayPerRequest, &policy).await? {
        return Err(Error::target(format!(
            "scratch table {name} already exists"
        )));
    }
    let target = ctx.target().await;
    let result = async {
        tables::wait_active(client, &name, SCRATCH_TIMEOUT, &policy).await?;
        timed_writes(
            &*target,
            &name,
            sample,
            m.batch_size,
            m.concurrency,
            &policy,
        )
        .await
    }
    .await;
    let deleted = tables::delete(&*target, &name, SCRATCH_TIMEOUT, &policy).await;
    let rate = result?;
    deleted?;
    Ok((rate, name))
}

/// Writes `lines` as the load does (batches, `concurrency` in flight) and
/// returns the items written per second.
async fn timed_writes(
    target: &dyn dynamo::Target,
    table: &str,
    lines: &[String],
    batch_size: usize,
    concurrency: usize,
    policy: &RetryPolicy,
) -> Result<f64> {
    let mut batches = Vec::new();
    for (b, chunk) in lines.chunks(batch_size.max(1)).enumerate() {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, line) in chunk.iter().enumerate() {
            let write = Write::put_json(line)
                .map_err(|e| Error::target(format!("a sampled item is not JSON: {e}")))?;
            entries.push(((b * batch_size + i) as u64, write));
        }
        batches.push(entries);
    }
    let stats = CallStats::default();
    let started = Instant::now();
    let mut results = futures_util::stream::iter(batches)
        .map(|entries| dynamo::write_batch(target, table, entries, policy, &stats))
        .buffer_unordered(concurrency.max(1));
    let mut written = 0u64;
    while let Some(r) = results.next().await {
        let outcome = r.map_err(|e| Error::target(e.into_message()))?;
        if let Some((_, why)) = outcome.failed.first() {
            return Err(Error::target(format!(
                "writing to the scratch table {table}: {why}"
            )));
        }
        written += outcome.written;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    Ok(written as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::entities::registry;

    fn sales_spec() -> TableSpec {
        let text = r#"{"source": {"type": "postgresql", "host": "h", "database": "d", "username": "u"},
            "target": {"region": "r", "buyersTable": "B-t", "producersTable": "P-t", "salesTable": "S-t"}}"#;
        let c = Config::from_str(std::path::Path::new("c.json"), text, &|_| None).unwrap();
        tables::specs(&c, registry()).unwrap().remove(2)
    }

    #[test]
    fn index_entries_multiply_the_writes_of_items_that_have_their_keys() {
        let spec = sales_spec();
        let mut tally = Tally::new(&spec, None, 3);
        let both = r#"{"PK":"SALE#1","SK":"METADATA","GSI1PK":"BUYER#1","GSI1SK":"SALE#d#1","GSI2PK":"PRODUCER#1","GSI2SK":"SALE#d#1"}"#;
        let buyer_only =
            r#"{"PK":"SALE#2","SK":"METADATA","GSI1PK":"BUYER#1","GSI1SK":"SALE#d#2"}"#;
        let big = format!(
            r#"{{"PK":"SALE#3","SK":"METADATA","description":"{}"}}"#,
            "x".repeat(3000)
        );
        for line in [both, buyer_only, big.as_str()] {
            tally.add(line, &Obj::parse(line).unwrap());
        }
        assert_eq!(tally.items, 3);
        assert_eq!(tally.units(), 1 + 1 + 3, "the 3 KB item is 3 units");
        assert_eq!(tally.total_units(), 5 + 2 + 1, "GSI1 holds two, GSI2 one");
        assert_eq!(tally.sample.len(), 3);
        let line = writes_line(&tally);
        assert!(
            line.contains("5 (items) + 2 (GSI1) + 1 (GSI2) = 8 write units, 1.60×"),
            "{line}"
        );
    }

    #[test]
    fn the_sample_spans_the_artifact_and_is_bounded() {
        let spec = sales_spec();
        let mut tally = Tally::new(&spec, None, 10 * SAMPLE_ITEMS);
        for i in 0..10 * SAMPLE_ITEMS {
            let line = format!(r#"{{"PK":"SALE#{i}","SK":"METADATA"}}"#);
            tally.add(&line, &Obj::parse(&line).unwrap());
        }
        assert_eq!(tally.sample.len() as u64, SAMPLE_ITEMS);
        assert!(tally.sample[1].contains("SALE#10\""), "every tenth item");
        assert!(tally.sample.last().unwrap().contains("SALE#3990\""));
    }

    #[test]
    fn a_new_on_demand_table_is_4000_units_a_second() {
        assert_eq!(table_rate(None), Rate::NewOnDemand);
        assert_eq!(Rate::NewOnDemand.per_second(), 4000.0);
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
