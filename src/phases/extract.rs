//! Extract: every entity of the command from one read-only, repeatable-read
//! snapshot of PostgreSQL, streamed with COPY into `data/extracted/`.
//!
//! Each row becomes the JSON line `row_to_json` writes: by default `migrate`
//! renders it from `COPY … (FORMAT binary)` (the source server only reads
//! and sends); with `extractFormat: "json"`, or when a column's type has no
//! binary decoder (a warning names it), PostgreSQL renders it
//! (docs/extract.md). The artifact is the same either way.
//!
//! The snapshot is exported and joined by `extractConnections − 1` more
//! connections: an entity that names a split column is read as that many
//! key ranges at once, the first range straight into the artifact, the
//! others into spill files appended in order afterwards, so the artifact is
//! byte for byte what one connection would have written. Every row
//! PostgreSQL sent is a line of the artifact, or the phase keeps nothing
//! (docs/safety.md).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use futures_util::future::try_join_all;

use crate::artifact::{ArtifactWriter, create_private_file};
use crate::checkpoint::{Checkpoint, Phase, State, Step};
use crate::config::ExtractFormat;
use crate::crypt;
use crate::ctx::Ctx;
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::source::{self, Snapshot};

/// Extracts `entities` in one snapshot.
pub async fn run(ctx: &Ctx, cp: &mut Checkpoint, entities: &[&'static Entity]) -> Result<()> {
    let client = source::connect(&ctx.config.source).await?;
    let snapshot = Snapshot::begin(client).await?;
    let mut snapshots = vec![snapshot];
    for _ in 1..ctx.config.migration.extract_connections {
        match snapshots[0].join(&ctx.config.source).await? {
            Some(s) => snapshots.push(s),
            None => break,
        }
    }
    let snapshot = &snapshots[0];
    tracing::info!(snapshot = %snapshot.id, connections = snapshots.len(),
        "extracting {} entities from one snapshot", entities.len());
    for entity in entities {
        let span = tracing::info_span!("phase", entity = entity.name, phase = "extract");
        let _guard = span.enter();
        let mut step = Step::start(&ctx.run_id);
        step.snapshot = Some(snapshot.id.clone());
        cp.put(entity.name, Phase::Extract, step.clone())?;
        // The source side of the money reconciliation, in the same snapshot.
        let done = match extract_one(ctx, &snapshots, entity, &mut step).await {
            Ok(()) => crate::phases::reconcile::record_source(ctx, &snapshots[0], entity).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => {
                step.state = State::Done;
                step.finished_at = Some(Utc::now());
                cp.put(entity.name, Phase::Extract, step)?;
            }
            Err(e) => {
                step.state = State::Failed;
                step.finished_at = Some(Utc::now());
                step.error = Some(e.to_string());
                cp.put(entity.name, Phase::Extract, step)?;
                return Err(e);
            }
        }
    }
    for s in snapshots {
        s.finish().await?;
    }
    Ok(())
}

async fn extract_one(
    ctx: &Ctx,
    snapshots: &[Snapshot],
    entity: &Entity,
    step: &mut Step,
) -> Result<()> {
    let query = entity.extract_query(&ctx.config.source.schema);
    let estimate = snapshots[0].estimate(&query).await?;
    // The binary path's plan comes from the query's own description; the
    // range queries below select the same columns.
    let plan = match ctx.config.migration.extract_format {
        ExtractFormat::Json => None,
        ExtractFormat::Binary => match snapshots[0].row_plan(&query).await? {
            Ok(plan) => Some(plan),
            Err(u) => {
                tracing::warn!(
                    column = %u.column, r#type = %u.type_name,
                    "{}: column {} is of type {}, which the binary extract cannot decode; \
                     PostgreSQL renders this entity with row_to_json (extractFormat \"json\")",
                    entity.name, u.column, u.type_name
                );
                None
            }
        },
    };
    let plan = plan.as_ref();
    tracing::info!(
        format = if plan.is_some() { "binary" } else { "json" },
        "extracting {}",
        entity.name
    );
    let bar = ctx.progress.bar(entity.name, "extract", Some(estimate));
    let path = ctx.artifact(Phase::Extract, entity.name);
    let queries = match entity.split_column() {
        Some(column) if snapshots.len() > 1 => match snapshots[0].bounds(&query, column).await? {
            Some((lo, hi)) => split(lo, hi, snapshots.len())
                .into_iter()
                .map(|range| range_query(&query, column, range))
                .collect(),
            None => vec![query.clone()],
        },
        _ => vec![query.clone()],
    };
    let mut writer = ArtifactWriter::create(&path, &ctx.run_id, "extract", entity.name)?;
    let rows_read = std::sync::atomic::AtomicU64::new(0);
    let spills: Vec<PathBuf> = (1..queries.len()).map(|i| spill_path(&path, i)).collect();
    let result =
        async {
            let mut spill_files = Vec::new();
            for p in &spills {
                let file = BufWriter::with_capacity(1 << 20, create_private_file(p)?);
                spill_files
                    .push(crypt::Sealed::new(file, crypt::current()).map_err(|e| Error::io(p, e))?);
            }
            // The first range goes straight into the artifact, the others to spills.
            let mut sinks: Vec<Sink<'_>> = Vec::new();
            let first = &mut writer;
            sinks.push(Box::new(move |line: &[u8]| first.write_raw_line(line)));
            for (file, p) in spill_files.iter_mut().zip(&spills) {
                sinks.push(Box::new(move |line: &[u8]| {
                    file.write_all(line)
                        .and_then(|()| file.write_all(b"\n"))
                        .map_err(|e| Error::io(p, e))
                }));
            }
            try_join_all(queries.iter().zip(snapshots).zip(sinks).map(
                |((q, snapshot), mut sink)| {
                    let (bar, rows_read) = (&bar, &rows_read);
                    let after_chunk = move |rows: u64| {
                        if ctx.cancelled() {
                            return Err(Error::Interrupted(
                                "extract stopped; nothing was kept".into(),
                            ));
                        }
                        bar.inc(rows);
                        rows_read.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
                        Ok(())
                    };
                    async move {
                        match plan {
                            Some(plan) => snapshot
                                .copy_binary(q, plan, |line| sink(line), after_chunk)
                                .await
                                .map(drop),
                            None => {
                                snapshot
                                    .copy_json(q, |chunk| {
                                        let mut rows = 0;
                                        for line in
                                            chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty())
                                        {
                                            sink(line)?;
                                            rows += 1;
                                        }
                                        after_chunk(rows)
                                    })
                                    .await
                            }
                        }
                    }
                },
            ))
            .await?;
            for (file, p) in spill_files.into_iter().zip(&spills) {
                file.finish()
                    .and_then(|f| f.into_inner().map_err(|e| e.into_error()))
                    .map_err(|e| Error::io(p, e))?;
            }
            for p in &spills {
                append(&mut writer, p)?;
            }
            let read = rows_read.load(std::sync::atomic::Ordering::Relaxed);
            crate::phases::conserved(
                "extract",
                entity.name,
                &path,
                read,
                read,
                &[("lines", writer.records())],
            )
        }
        .await;
    for p in &spills {
        let _ = std::fs::remove_file(p);
    }
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
        entity.name,
        path.display()
    );
    Ok(())
}

/// Where one range's lines go: the artifact or a spill file.
type Sink<'a> = Box<dyn FnMut(&[u8]) -> Result<()> + Send + 'a>;

/// Splits `lo..=hi` into at most `n` contiguous ranges of about equal width.
/// The first is open below and the last above (and takes NULLs), so the
/// ranges cover every row whatever the bounds.
fn split(lo: i64, hi: i64, n: usize) -> Vec<(Option<i64>, Option<i64>)> {
    let width = (i128::from(hi) - i128::from(lo) + 1).max(1);
    let n = (n as i128).clamp(1, width);
    let cut = |i: i128| (i128::from(lo) + width * i / n) as i64;
    (0..n)
        .map(|i| {
            let from = (i > 0).then(|| cut(i));
            let to = (i + 1 < n).then(|| cut(i + 1) - 1);
            (from, to)
        })
        .collect()
}

/// `query` narrowed to a range of `column`, in the same order.
fn range_query(query: &str, column: &str, (from, to): (Option<i64>, Option<i64>)) -> String {
    let c = format!("r.\"{column}\"");
    let filter = match (from, to) {
        (None, None) => "true".to_string(),
        (None, Some(t)) => format!("{c} <= {t}"),
        (Some(f), None) => format!("({c} >= {f} OR {c} IS NULL)"),
        (Some(f), Some(t)) => format!("{c} BETWEEN {f} AND {t}"),
    };
    format!("SELECT * FROM ({query}) r WHERE {filter} ORDER BY {c}")
}

/// Where range `i` of an artifact is spilled until it is appended.
fn spill_path(artifact: &Path, i: usize) -> PathBuf {
    let name = artifact.file_name().unwrap_or_default().to_string_lossy();
    artifact.with_file_name(format!(".{name}.part{i}"))
}

/// Appends a spill file to the artifact.
fn append(writer: &mut ArtifactWriter, spill: &Path) -> Result<()> {
    let mut file = crypt::open_file(spill, crypt::current())?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(spill, e))?;
        if n == 0 {
            return Ok(());
        }
        writer.write_lines(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_value_once() {
        for (lo, hi, n) in [
            (1, 100, 2),
            (100001, 1100000, 3),
            (5, 5, 4),
            (-3, 2, 8),
            (i64::MIN, i64::MAX, 3),
        ] {
            let r = split(lo, hi, n);
            assert!(!r.is_empty() && r.len() <= n);
            assert_eq!(r[0].0, None);
            assert_eq!(r.last().unwrap().1, None);
            for w in r.windows(2) {
                let (to, from) = (w[0].1.unwrap(), w[1].0.unwrap());
                assert_eq!(to + 1, from, "{r:?}");
            }
        }
        assert_eq!(split(1, 100, 2), [(None, Some(50)), (Some(51), None)]);
        assert_eq!(split(5, 5, 4), [(None, None)]);
        assert_eq!(split(1, 3, 8).len(), 3);
    }

    #[test]
    fn range_queries_keep_the_order() {
        let q = "SELECT a FROM t ORDER BY a";
        assert_eq!(
            range_query(q, "a", (Some(3), None)),
            "SELECT * FROM (SELECT a FROM t ORDER BY a) r WHERE (r.\"a\" >= 3 OR r.\"a\" IS NULL) ORDER BY r.\"a\""
        );
        assert!(range_query(q, "a", (Some(3), Some(9))).contains("BETWEEN 3 AND 9"));
    }
}
