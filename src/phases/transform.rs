//! Transform: extracted rows → items, through each entity's pure mapping.
//! Rows that cannot be mapped at all go to `data/reports/quarantine/`.

use serde_json::{Map, Value, json};

use crate::artifact::{ArtifactReader, ArtifactWriter};
use crate::checkpoint::{Phase, Step};
use crate::entities::{Entity, MapContext, Row};
use crate::error::{Error, Result};
use crate::runner::Ctx;

/// Transforms one entity; returns no problems (quarantine is reported, not failed).
pub async fn run(ctx: &Ctx, entity: &dyn Entity, step: &mut Step) -> Result<Vec<String>> {
    let input = ctx.artifact(Phase::Extract, entity.name());
    let mut reader = ArtifactReader::open(&input)?;
    step.input_sha256 = Some(reader.manifest().sha256.clone());
    let bar = ctx
        .progress
        .bar(entity.name(), "transform", Some(reader.manifest().records));
    let output = ctx.artifact(Phase::Transform, entity.name());
    let mut writer = ArtifactWriter::create(&output, &ctx.run_id, "transform", entity.name())?;
    let qpath = ctx.report(&format!("quarantine/{}.jsonl", entity.name()));
    let mut quarantine = ArtifactWriter::create(&qpath, &ctx.run_id, "transform", entity.name())?;
    let map_ctx = MapContext {
        namespace: ctx.config.migration.uuid_namespace,
        run_started_at: ctx.run_started_at,
    };
    let mut buf = String::new();
    let mut n = 0u64;
    while let Some(row) = reader.next_record::<Map<String, Value>>(&mut buf)? {
        if ctx.cancelled() {
            writer.discard();
            quarantine.discard();
            return Err(Error::Interrupted(
                "transform stopped; nothing was kept".into(),
            ));
        }
        let row = Row(row);
        match entity.map(&row, &map_ctx) {
            Ok(t) => writer.write(&t)?,
            Err(message) => {
                step.reasons
                    .entry("unmappable".into())
                    .and_modify(|c| *c += 1)
                    .or_insert(1);
                quarantine.write(&json!({
                    "legacyId": row.0.get("first_id"),
                    "line": reader.line_no(),
                    "reason": "unmappable",
                    "message": message,
                    "row": row.0,
                }))?;
            }
        }
        n += 1;
        if n.is_multiple_of(1024) {
            bar.inc(1024);
        }
    }
    bar.inc(n % 1024);
    step.records_in = n;
    step.rejected = quarantine.records();
    let manifest = writer.finish()?;
    quarantine.finish()?;
    bar.finish();
    step.records_out = manifest.records;
    step.output_sha256 = Some(manifest.sha256);
    Ok(Vec::new())
}
