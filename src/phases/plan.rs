//! The dry-run plan: per entity, the items the load would write, the
//! BatchWriteItem requests, the write units (each item rounded up to 1 KB),
//! and an estimate of the time with the assumptions behind it
//! ([`super::estimate`], docs/tables.md).

use std::time::{Duration, Instant};

use super::estimate::{self, Tally};
use crate::artifact::ArtifactReader;
use crate::checkpoint::Phase;
use crate::dynamo::RetryPolicy;
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::json::Obj;
use crate::runner::Ctx;
use crate::tables;

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
    let policy = RetryPolicy::from_config(m);
    for e in entities {
        let path = ctx.artifact(Phase::Validate, e.name());
        let mut reader = ArtifactReader::open(&path)?;
        let table = ctx.table(*e)?;
        let spec = tables::specs(&ctx.config, &[*e])?.remove(0);
        // The table's indexes and throughput; the call's round trip, measured,
        // stands for the client's share of one BatchWriteItem request.
        let t = Instant::now();
        let desc = tables::describe(client, table, &policy).await?;
        let rtt = t.elapsed().max(Duration::from_millis(1));
        let mut tally = Tally::new(&spec, desc.as_ref(), reader.manifest().records);
        let mut buf = String::new();
        while reader.next_line(&mut buf)? {
            let item = Obj::parse(&buf)
                .map_err(|e| Error::artifact(&path, format!("line {}: {e}", reader.line_no())))?;
            tally.add(&buf, &item);
        }
        let (items, units) = (tally.items, tally.units());
        let requests = items.div_ceil(m.batch_size as u64);
        let estimate = estimate::estimate(ctx, &spec, &tally, rtt).await;
        let secs = estimate.secs;
        println!(
            "{:<10} {:<24} {:>10} {:>10} {:>12} {:>11.1}s",
            e.name(),
            table,
            items,
            requests,
            units,
            secs
        );
        for line in &estimate.assumptions {
            println!("  {}: {line}", e.name());
        }
        tracing::info!(entity = e.name(), items, requests, write_units = units, write_units_with_indexes = tally.total_units(), estimate_s = secs, rtt_ms = rtt.as_millis() as u64, assumptions = ?estimate.assumptions, "load plan");
    }
    println!(
        "(write units: the items' own, each rounded up to 1 KB; the lines under each entity give the index writes and the estimate's assumptions)"
    );
    Ok(())
}
