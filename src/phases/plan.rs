//! The dry-run plan: per entity, the items the load would write, the
//! BatchWriteItem requests, the write units (each item rounded up to 1 KB),
//! and an estimate of the time with the assumptions behind it
//! ([`super::estimate`], docs/tables.md).

use std::time::{Duration, Instant};

use super::estimate::{self, Tally};
use crate::artifact::ArtifactReader;
use crate::checkpoint::{Phase, SyncCounts};
use crate::config::{LoadMode, LoadVia};
use crate::ctx::Ctx;
use crate::dynamo::RetryPolicy;
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::import;
use crate::json::Obj;
use crate::progress::thousands;
use crate::tables;

/// One row of the plan.
#[derive(Debug)]
pub(crate) struct Row {
    pub entity: &'static str,
    pub table: String,
    /// Items the load would send (puts and, in sync mode, deletes).
    pub items: u64,
    pub requests: u64,
    pub units: u64,
    pub secs: f64,
    /// What the estimate rests on, one line each (docs/tables.md).
    pub assumptions: Vec<String>,
    /// Sync mode: the difference the items and units are of.
    pub sync: Option<SyncCounts>,
}

/// Prints the load plan of `entities`: everything is measured first, then
/// the table is printed in one piece (nothing logged between its rows).
pub async fn print(ctx: &Ctx, entities: &[&'static Entity]) -> Result<()> {
    let m = &ctx.config.migration;
    let (rows, import_rows) = plan(ctx, entities).await?;
    println!("{}", table(m.batch_size, m.concurrency, &rows));
    if ctx.config.target.load_via == LoadVia::S3Import {
        let t = &ctx.config.target.import;
        let prefix = if t.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", t.prefix)
        };
        let destination = format!("s3://{}/{prefix}", t.bucket.as_deref().unwrap_or("?"));
        println!("{}", import::estimate::table(&import_rows, &destination));
    }
    Ok(())
}

/// The S3 import's sizes of one entity, when the load goes that way.
type ImportRow = (&'static str, import::estimate::Row);

/// Measures the plan of `entities` against the target: one row each, and
/// the import's sizes when the load goes through S3.
pub(crate) async fn plan(
    ctx: &Ctx,
    entities: &[&'static Entity],
) -> Result<(Vec<Row>, Vec<ImportRow>)> {
    let m = &ctx.config.migration;
    let target = ctx.target().await;
    let policy = RetryPolicy::from_config(m);
    let mut rows = Vec::new();
    let via_import = ctx.config.target.load_via == LoadVia::S3Import;
    let mut import_rows = Vec::new();
    for e in entities {
        let table = ctx.table(e)?;
        // In sync mode the plan is the changes' (docs/cutover.md): the
        // difference is computed, and written to data/changes, nothing sent.
        let sync = match m.load_mode {
            LoadMode::Sync => {
                Some(crate::phases::load::sync::diff(ctx, e, table, &policy, true).await?)
            }
            LoadMode::Put => None,
        };
        let path = match &sync {
            Some(d) => d.changes.clone(),
            None => ctx.artifact(Phase::Validate, e.name),
        };
        let mut reader = ArtifactReader::open(&path)?;
        let spec = tables::specs(&ctx.config, &[*e])?.remove(0);
        // The table's indexes and throughput; the call's round trip, measured,
        // stands for the client's share of one BatchWriteItem request.
        let t = Instant::now();
        let desc = crate::dynamo::describe_table(&*target, table, &policy).await?;
        let rtt = t.elapsed().max(Duration::from_millis(1));
        let mut tally = Tally::new(&spec, desc.as_ref(), reader.manifest().records);
        let mut buf = String::new();
        let mut deletes = 0u64;
        let mut sizes = via_import.then(import::estimate::Sizes::default);
        while reader.next_line(&mut buf)? {
            let at = |e: String| Error::artifact(&path, format!("line {}: {e}", reader.line_no()));
            let text = match &sync {
                Some(_) => match crate::phases::load::sync::put_text(&buf).map_err(at)? {
                    Some(text) => text,
                    None => {
                        deletes += 1;
                        continue;
                    }
                },
                None => buf.as_str(),
            };
            let item = Obj::parse(text).map_err(|e| at(e.to_string()))?;
            tally.add(text, &item);
            if let Some(s) = sizes.as_mut() {
                s.add(text).map_err(|e| at(e.to_string()))?;
            }
        }
        // A delete costs one write unit, like the smallest put.
        let (items, units) = (tally.items + deletes, tally.units() + deletes);
        let requests = items.div_ceil(m.batch_size as u64);
        let estimate = estimate::estimate(ctx, &spec, &tally, rtt).await;
        tracing::debug!(entity = e.name, items, requests, write_units = units, write_units_with_indexes = tally.total_units(), estimate_s = estimate.secs, rtt_ms = rtt.as_millis() as u64, assumptions = ?estimate.assumptions, "load plan");
        if let Some(s) = sizes {
            import_rows.push((
                e.name,
                s.finish(ctx.config.target.import.part_bytes, tally.total_units()),
            ));
        }
        rows.push(Row {
            entity: e.name,
            table: table.to_string(),
            items,
            requests,
            units,
            secs: estimate.secs,
            assumptions: estimate.assumptions,
            sync: sync.map(|d| d.counts),
        });
    }
    Ok((rows, import_rows))
}

/// The plan as one table, numbers with thousands separators.
fn table(batch_size: usize, concurrency: usize, rows: &[Row]) -> String {
    let mut out = format!(
        "\nDry run: nothing was written to DynamoDB. Load plan (batch {batch_size}, concurrency {concurrency}):\n"
    );
    let width = rows.iter().map(|r| r.table.len()).max().unwrap_or(0).max(5);
    let line = |out: &mut String, cols: [&str; 6]| {
        out.push_str(&format!(
            "  {:<10} {:<width$} {:>12} {:>10} {:>12} {:>9}\n",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
        ));
    };
    line(
        &mut out,
        [
            "entity",
            "table",
            "items",
            "requests",
            "write units",
            "estimate",
        ],
    );
    let (mut items, mut requests, mut units, mut secs) = (0, 0, 0, 0.0);
    for r in rows {
        line(
            &mut out,
            [
                r.entity,
                &r.table,
                &thousands(r.items),
                &thousands(r.requests),
                &thousands(r.units),
                &format!("{:.1}s", r.secs),
            ],
        );
        items += r.items;
        requests += r.requests;
        units += r.units;
        secs += r.secs;
    }
    line(
        &mut out,
        [
            "total",
            "",
            &thousands(items),
            &thousands(requests),
            &thousands(units),
            &format!("{secs:.1}s"),
        ],
    );
    out.push_str(
        "  (write units: the items' own, each rounded up to 1 KB; what each estimate rests on:)",
    );
    for r in rows {
        for line in &r.assumptions {
            out.push_str(&format!("\n  {}: {line}", r.entity));
        }
    }
    if rows.iter().any(|r| r.sync.is_some()) {
        out.push_str("\n\nSync: only the changes are written (the items above are the changes):\n");
        out.push_str(&format!(
            "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "entity", "new", "changed", "unchanged", "to delete", "foreign"
        ));
        for r in rows {
            if let Some(c) = r.sync {
                out.push_str(&format!(
                    "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                    r.entity,
                    thousands(c.new),
                    thousands(c.changed),
                    thousands(c.unchanged),
                    thousands(c.deleted),
                    thousands(c.foreign)
                ));
            }
        }
        out.push_str(
            "  (the changes are in data/changes/<entity>.jsonl; foreign items are never touched)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_with_separators_and_a_total() {
        let rows = [
            Row {
                entity: "buyers",
                table: "BuyersTable-dev".into(),
                items: 1234,
                requests: 50,
                units: 1300,
                secs: 0.25,
                assumptions: vec!["4,000 write units/s".into()],
                sync: None,
            },
            Row {
                entity: "sales",
                table: "SalesTable-dev".into(),
                items: 1_000_000,
                requests: 40_000,
                units: 1_000_000,
                secs: 12.0,
                assumptions: Vec::new(),
                sync: None,
            },
        ];
        let t = table(25, 8, &rows);
        assert!(t.contains("1,000,000") && t.contains("1,001,234"), "{t}");
        assert!(t.contains("12.2s"), "{t}");
        // Every row's columns line up under the header.
        let ends: Vec<usize> = t.lines().skip(2).take(4).map(|l| l.len()).collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{t}");
    }
}
