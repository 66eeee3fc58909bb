//! Extract: every entity of the command from one read-only, repeatable-read
//! snapshot of PostgreSQL, streamed with COPY into `data/extracted/`.

use chrono::Utc;

use crate::artifact::ArtifactWriter;
use crate::checkpoint::{Checkpoint, Phase, State, Step};
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::runner::Ctx;
use crate::source::{self, Snapshot};

/// Extracts `entities` in one snapshot.
pub async fn run(ctx: &Ctx, cp: &mut Checkpoint, entities: &[&'static dyn Entity]) -> Result<()> {
    let client = source::connect(&ctx.config.source).await?;
    let snapshot = Snapshot::begin(client).await?;
    tracing::info!(snapshot = %snapshot.id, "extracting {} entities from one snapshot", entities.len());
    for entity in entities {
        let span = tracing::info_span!("phase", entity = entity.name(), phase = "extract");
        let _guard = span.enter();
        let mut step = Step::start(&ctx.run_id);
        step.snapshot = Some(snapshot.id.clone());
        cp.put(entity.name(), Phase::Extract, step.clone())?;
        match extract_one(ctx, &snapshot, *entity, &mut step).await {
            Ok(()) => {
                step.state = State::Done;
                step.finished_at = Some(Utc::now());
                cp.put(entity.name(), Phase::Extract, step)?;
            }
            Err(e) => {
                step.state = State::Failed;
                step.finished_at = Some(Utc::now());
                step.error = Some(e.to_string());
                cp.put(entity.name(), Phase::Extract, step)?;
                return Err(e);
            }
        }
    }
    snapshot.finish().await
}

async fn extract_one(
    ctx: &Ctx,
    snapshot: &Snapshot,
    entity: &dyn Entity,
    step: &mut Step,
) -> Result<()> {
    let query = entity.extract_query(&ctx.config.source.schema);
    let estimate = snapshot.estimate(&query).await?;
    let bar = ctx.progress.bar(entity.name(), "extract", Some(estimate));
    let path = ctx.artifact(Phase::Extract, entity.name());
    let mut writer = ArtifactWriter::create(&path, &ctx.run_id, "extract", entity.name())?;
    let result = snapshot
        .copy_json(&query, |chunk| {
            if ctx.cancelled() {
                return Err(Error::Interrupted(
                    "extract stopped; nothing was kept".into(),
                ));
            }
            let mut rows = 0;
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                writer.write_raw_line(line)?;
                rows += 1;
            }
            bar.inc(rows);
            Ok(())
        })
        .await;
    if let Err(e) = result {
        writer.discard();
        return Err(e);
    }
    let manifest = writer.finish()?;
    bar.finish();
    step.records_in = manifest.records;
    step.records_out = manifest.records;
    step.output_sha256 = Some(manifest.sha256);
    tracing::info!(
        records = manifest.records,
        "extracted {} to {}",
        entity.name(),
        path.display()
    );
    Ok(())
}
