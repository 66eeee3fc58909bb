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
use crate::runner::Ctx;

/// Prints the load plan of `entities`.
pub async fn print(ctx: &Ctx, entities: &[&'static dyn Entity]) -> Result<()> {
    let m = &ctx.config.migration;
    let client = ctx.dynamo().await;
    println!(
        "\nDry run: nothing was written to DynamoDB. Load plan (batch {}, concurrency {}):",
        m.batch_size, m.concurrency
    );
    println!(
        "{:<10} {:<24} {:>10} {:>10} {:>12} {:>12}",
        "entity", "table", "items", "requests", "write units", "estimate"
    );
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
        println!(
            "{:<10} {:<24} {:>10} {:>10} {:>12} {:>11.1}s",
            e.name(),
            table,
            items,
            requests,
            units,
            secs
        );
        tracing::info!(entity = e.name(), items, requests, write_units = units, estimate_s = secs, rtt_ms = rtt.as_millis() as u64, provisioned_wcu = ?wcu, "load plan");
    }
    println!(
        "(estimate: requests × measured round trip ÷ concurrency, or write units ÷ provisioned WCU when that is slower)"
    );
    Ok(())
}
