//! Transform: extracted rows → items, through each entity's pure mapping,
//! on all cores with the output kept in input order. Rows that cannot be
//! mapped at all go to `data/reports/quarantine/<entity>.jsonl`. Every row
//! read is an item or a quarantined row, and every line of the input is read,
//! or the phase keeps nothing (docs/safety.md, "No silent truncation").

use serde_json::{Value, json};

use super::{Outcome, Unit, conserved};
use crate::artifact::{ArtifactReader, ArtifactWriter};
use crate::checkpoint::Phase;
use crate::entities::{MapContext, Row};
use crate::error::{Error, Result};
use crate::parallel;

enum Out {
    Item(Vec<u8>),
    Unmappable(Value),
}

/// Transforms one entity; unmappable rows are reported, not a failure.
pub async fn run(unit: Unit<'_>) -> Result<Outcome> {
    let (ctx, entity) = (unit.ctx, unit.entity);
    let input = ctx.artifact(Phase::Extract, entity.name);
    // Checked while it is read: the outputs are kept only if it was whole.
    let reader = ArtifactReader::open_streamed(&input)?;
    let input_sha256 = Some(reader.manifest().sha256.clone());
    let expected = reader.manifest().records;
    let bar = ctx
        .progress
        .bar(entity.name, "transform", Some(reader.manifest().records));
    let output = ctx.artifact(Phase::Transform, entity.name);
    let mut writer = ArtifactWriter::create(&output, &ctx.run_id, "transform", entity.name)?;
    let qpath = ctx.report(&format!("quarantine/{}.jsonl", entity.name));
    let mut quarantine = ArtifactWriter::create(&qpath, &ctx.run_id, "transform", entity.name)?;
    let map_ctx = MapContext {
        namespace: ctx.config.migration.uuid_namespace,
        first_run_started_at: ctx.first_run_started_at,
    };
    let path = input.clone();
    let map_line = move |line: &str| -> Result<Out> {
        let row = Row::parse(line)
            .map_err(|e| Error::artifact(&path, format!("a row is not a JSON object: {e}")))?;
        Ok(match entity.map(&row, &map_ctx) {
            Ok(t) => {
                let mut bytes = Vec::with_capacity(line.len() * 5 / 2);
                serde_json::to_writer(&mut bytes, &t).expect("items serialize");
                Out::Item(bytes)
            }
            Err(message) => Out::Unmappable(json!({
                "legacyId": row.0.get(entity.source.legacy_id).map(|v| v.to_value()),
                "reason": "unmappable",
                "message": message,
                "row": row.to_value(),
            })),
        })
    };
    let mut n = 0u64;
    let result = parallel::map_lines(reader, parallel::workers(), map_line, |first_line, outs| {
        if ctx.cancelled() {
            return Err(Error::Interrupted(
                "transform stopped; nothing was kept".into(),
            ));
        }
        let before = n;
        for (i, out) in outs.into_iter().enumerate() {
            match out {
                Out::Item(bytes) => writer.write_raw_line(&bytes)?,
                Out::Unmappable(mut v) => {
                    v["line"] = json!(first_line + i as u64);
                    quarantine.write(&v)?;
                }
            }
            n += 1;
        }
        bar.inc(n - before);
        Ok(())
    });
    let result = result
        .map_err(|e| parallel::in_step(e, "transform", entity.name))
        .and_then(|()| {
            conserved(
                "transform",
                entity.name,
                &input,
                expected,
                n,
                &[
                    ("items", writer.records()),
                    ("quarantined", quarantine.records()),
                ],
            )
        });
    if let Err(e) = result {
        writer.discard();
        quarantine.discard();
        return Err(e);
    }
    bar.finish();
    let rejected = quarantine.records();
    let mut reasons = std::collections::BTreeMap::new();
    if rejected > 0 {
        reasons.insert("unmappable".to_string(), rejected);
    }
    let manifest = writer.finish()?;
    quarantine.finish()?;
    Ok(Outcome {
        records_in: n,
        records_out: manifest.records,
        rejected,
        input_sha256,
        output_sha256: Some(manifest.sha256),
        reasons,
        ..Outcome::default()
    })
}
