//! The dry-run plan: per entity, the items the load would write, the
//! BatchWriteItem requests, the write units (each item rounded up to 1 KB),
//! and an estimate of the time at the configured concurrency, from a
//! measured round trip to the endpoint and the table's provisioned capacity.

use std::time::{Duration, Instant};

use crate::artifact::ArtifactReader;
use crate::checkpoint::Phase;
use crate::dynamo::{WRITE_UNIT_BYTES, item_size};
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::json::Obj;
use crate::progress::thousands;
use crate::runner::Ctx;

/// One row of the plan.
struct Row {
    entity: &'static str,
    table: String,
    items: u64,
    requests: u64,
    units: u64,
    secs: f64,
}

/// Prints the load plan of `entities`: everything is measured first, then
/// the table is printed in one piece (nothing logged between its rows).
pub async fn print(ctx: &Ctx, entities: &[&'static dyn Entity]) -> Result<()> {
    let m = &ctx.config.migration;
    let client = ctx.dynamo().await;
    let mut rows = Vec::new();
    for e in entities {
        let path = ctx.artifact(Phase::Validate, e.name());
        let mut reader = ArtifactReader::open(&path)?;
        let mut buf = String::new();
        let (mut items, mut units) = (0u64, 0u64);
        while reader.next_line(&mut buf)? {
            let item = Obj::parse(&buf)
                .map_err(|e| Error::artifact(&path, format!("line {}: {e}", reader.line_no())))?;
            items += 1;
            units += item_size(&item).div_ceil(WRITE_UNIT_BYTES).max(1) as u64;
        }
        let requests = items.div_ceil(m.batch_size as u64);
        let table = ctx.table(*e)?;
        // One round trip, measured, stands for one BatchWriteItem request.
        let t = Instant::now();
        let desc = client.describe_table().table_name(table).send().await.ok();
        let rtt = t.elapsed().max(Duration::from_millis(1));
        let mut secs = requests as f64 * rtt.as_secs_f64() / m.concurrency as f64;
        let wcu = desc
            .as_ref()
            .and_then(|d| d.table())
            .and_then(|t| t.provisioned_throughput())
            .and_then(|p| p.write_capacity_units())
            .filter(|w| *w > 0);
        if let Some(wcu) = wcu {
            secs = secs.max(units as f64 / wcu as f64);
        }
        tracing::debug!(entity = e.name(), items, requests, write_units = units, estimate_s = secs, rtt_ms = rtt.as_millis() as u64, provisioned_wcu = ?wcu, "load plan");
        rows.push(Row {
            entity: e.name(),
            table: table.to_string(),
            items,
            requests,
            units,
            secs,
        });
    }
    println!("{}", table(m.batch_size, m.concurrency, &rows));
    Ok(())
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
        "  (estimate: requests × measured round trip ÷ concurrency, or write units ÷ provisioned WCU when that is slower)",
    );
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
            },
            Row {
                entity: "sales",
                table: "SalesTable-dev".into(),
                items: 1_000_000,
                requests: 40_000,
                units: 1_000_000,
                secs: 12.0,
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
