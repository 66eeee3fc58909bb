//! The S3 import load path (`--via s3-import`, docs/import.md): per entity,
//! the validated items are written as GZIP'd DynamoDB JSON parts
//! ([`parts`]), uploaded to `s3://<bucket>/<prefix>/<run>/<entity>/` and
//! checked against what S3 reports ([`s3`]), then one `ImportTable` creates
//! the table from them ([`request`]) and is followed to its end. Every step
//! is in the checkpoint: `--resume` uploads only the parts S3 does not hold
//! yet, and re-attaches to an import already started instead of starting
//! another. The import creates the table, so rolling it back is dropping
//! the table ([`Created`]).

pub mod estimate;
pub mod parts;
pub mod request;
pub mod s3;
pub mod state;

pub use state::{Created, ImportState, UploadedPart};

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;

use crate::artifact::ArtifactReader;
use crate::checkpoint::{Baseline, Checkpoint, Phase, Step};
use crate::config::{LoadMode, PitrMode};
use crate::ctx::Ctx;
use crate::dynamo::RetryPolicy;
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::tables::{self, TableSpec};

/// How often the checkpoint is saved while an import runs.
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// The longest pause between two `DescribeImport` calls.
const POLL_AT_MOST: Duration = Duration::from_secs(10);

/// The table `entity` is imported into: it must be its own (an import
/// creates a table from one prefix of objects).
pub fn spec(ctx: &Ctx, entity: &Entity) -> Result<TableSpec> {
    let registered: Vec<&'static Entity> = crate::entities::registry()
        .iter()
        .copied()
        .filter(|e| e.name == entity.name)
        .collect();
    let spec = tables::specs(&ctx.config, &registered)?.remove(0);
    if spec.entities.len() > 1 {
        return Err(Error::Preflight(format!(
            "table {} is shared by {}: an S3 import creates a table from one entity's items; \
             load them with --via batch-write",
            spec.name,
            spec.entities.join(", ")
        )));
    }
    Ok(spec)
}

/// The pre-flight of a command that loads `entities` through S3 import:
/// before anything is extracted or uploaded, the mode, the bucket, and the
/// tables (each must not exist yet, unless this run's import of it was
/// already requested and is being resumed).
pub async fn preflight(ctx: &Ctx, cp: &Checkpoint, entities: &[&'static Entity]) -> Result<()> {
    if ctx.config.migration.load_mode == LoadMode::Sync {
        return Err(Error::Usage(
            "a sync load compares with an existing table, and an S3 import creates a new one: \
             use --load-mode put with --via s3-import, or --via batch-write for a sync"
                .into(),
        ));
    }
    let bucket = bucket(ctx)?;
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let target = ctx.target().await;
    for e in entities {
        let spec = spec(ctx, e)?;
        let requested = this_runs_import(cp, e.name).is_some_and(|s| s.requested);
        if !requested
            && crate::dynamo::describe_table(&*target, &spec.name, &policy)
                .await?
                .is_some()
        {
            return Err(exists(&spec.name, e.name));
        }
    }
    s3::check_bucket(&s3::client(&ctx.config).await, bucket, &policy).await?;
    tracing::info!(
        "S3 import pre-flight: bucket {bucket} reachable, tables to create: {}",
        entities.len()
    );
    Ok(())
}

fn exists(table: &str, entity: &str) -> Error {
    Error::Preflight(format!(
        "table {table} of {entity} exists: an S3 import creates its table, so nothing was uploaded; \
         load into it with --via batch-write, or delete the table first"
    ))
}

fn bucket(ctx: &Ctx) -> Result<&str> {
    ctx.config
        .target
        .import
        .bucket
        .as_deref()
        .ok_or_else(|| Error::Config {
            path: ctx.config.path.clone(),
            message: "/target/importBucket: required by the S3 import path (--via s3-import)"
                .into(),
        })
}

/// The import state of `entity`'s load in the checkpoint's current run.
fn this_runs_import<'a>(cp: &'a Checkpoint, entity: &str) -> Option<&'a ImportState> {
    cp.step(entity, Phase::Load)
        .filter(|s| s.run_id == cp.run_id)
        .and_then(|s| s.import.as_ref())
}

/// Loads one entity through S3 import.
pub async fn load(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    entity: &Entity,
    step: &mut Step,
) -> Result<Vec<String>> {
    let name = entity.name;
    let input = ctx.artifact(Phase::Validate, name);
    let artifact = ArtifactReader::open(&input)?;
    let manifest = artifact.manifest().clone();
    if step.import.is_some() {
        artifact.check_unchanged(step.input_sha256.as_deref(), "import")?;
    }
    step.input_sha256 = Some(manifest.sha256.clone());
    let total = manifest.records;
    step.records_in = total;
    let spec = spec(ctx, entity)?;
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let client = ctx.dynamo().await.clone();
    let mut state = match step.import.clone() {
        Some(state) => state,
        None => {
            let prefix = [ctx.config.target.import.prefix.as_str(), &ctx.run_id, name]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/")
                + "/";
            ImportState {
                bucket: bucket(ctx)?.to_string(),
                prefix,
                part_bytes: ctx.config.target.import.part_bytes,
                client_token: request::client_token(&ctx.run_id, name),
                parts: Vec::new(),
                items_uploaded: 0,
                uploaded: false,
                requested: false,
                arn: None,
                status: None,
                processed_items: 0,
                processed_bytes: 0,
                imported_items: 0,
                errors: 0,
                log_group: None,
            }
        }
    };
    save(cp, name, step, &state)?;

    if !state.uploaded {
        let s3 = s3::client(&ctx.config).await;
        upload(ctx, cp, name, step, &mut state, artifact, &s3, &policy).await?;
    }
    if state.arn.is_none() {
        if !state.requested
            && crate::dynamo::describe_table(&*ctx.target().await, &spec.name, &policy)
                .await?
                .is_some()
        {
            return Err(exists(&spec.name, name));
        }
        state.requested = true;
        pin_baseline(ctx, cp, name, &spec.name, None);
        save(cp, name, step, &state)?;
        let arn = request::start(
            &client,
            &spec,
            ctx.config.target.billing,
            &state.bucket,
            &state.prefix,
            &state.client_token,
            &policy,
        )
        .await?;
        tracing::info!("{name}: import {arn} started into new table {}", spec.name);
        pin_baseline(ctx, cp, name, &spec.name, Some(arn.clone()));
        state.arn = Some(arn);
        save(cp, name, step, &state)?;
    } else {
        tracing::info!(
            "{name}: following import {} again",
            state.arn.as_deref().unwrap_or("?")
        );
    }
    let done = follow(ctx, cp, name, step, &mut state, &client, &policy, total).await?;

    step.written = Some(done.imported_items);
    step.failed = Some(done.errors);
    step.records_out = done.imported_items;
    let ok = done.completed() && done.errors == 0 && done.imported_items == total;
    if ok {
        step.confirmed = Some(total);
        tables::wait_active(&client, &spec.name, Duration::from_secs(600), &policy).await?;
        // The import made the table: `require` and `enable` both turn
        // point-in-time recovery on now (docs/import.md).
        let mode = match ctx.config.migration.point_in_time_recovery {
            PitrMode::Warn => PitrMode::Warn,
            _ => PitrMode::Enable,
        };
        let windows = crate::pitr::preflight(
            &client,
            std::slice::from_ref(&spec.name),
            mode,
            false,
            &policy,
        )
        .await?;
        step.pitr = windows.get(&spec.name).cloned();
    }
    save(cp, name, step, &state)?;
    report(ctx, name, &spec.name, step, &state)?;
    if ok {
        return Ok(Vec::new());
    }
    Err(Error::Incomplete(format!(
        "import {} of {name} into table {}: {}, {} of {total} items imported, {} processed, {} error(s){}; \
         the import's log is in CloudWatch log group {}",
        state.arn.as_deref().unwrap_or("?"),
        spec.name,
        done.status,
        done.imported_items,
        done.processed_items,
        done.errors,
        done.failure.map(|f| format!(" ({f})")).unwrap_or_default(),
        done.log_group
            .as_deref()
            .unwrap_or("(not named by DescribeImport)")
    )))
}

fn save(cp: &mut Checkpoint, name: &str, step: &mut Step, state: &ImportState) -> Result<()> {
    step.import = Some(state.clone());
    cp.put(name, Phase::Load, step.clone())
}

/// Pins the entity's baseline as "no table": the import creates it. A
/// baseline of an earlier table (loaded, then deleted outside `migrate`)
/// no longer describes anything, and is replaced with a warning.
fn pin_baseline(ctx: &Ctx, cp: &mut Checkpoint, name: &str, table: &str, arn: Option<String>) {
    cp.rollbacks.remove(name);
    if let Some(b) = cp.baselines.get(name)
        && b.created_by_import.is_none()
    {
        tracing::warn!(
            "{name}: the baseline pinned at {} by run {} was of a table that no longer exists; the import \
             creates table {table}, which becomes the baseline (rolling back drops it){}",
            b.pinned_at.format("%Y-%m-%d %H:%M:%S UTC"),
            b.run_id,
            b.backup
                .as_ref()
                .map(|x| format!("; the old backup stays in {}", x.path.display()))
                .unwrap_or_default()
        );
    }
    cp.baselines.insert(
        name.to_string(),
        Baseline {
            backup: None,
            pinned_at: Utc::now(),
            run_id: ctx.run_id.clone(),
            ledgers: Vec::new(),
            last_sync: None,
            created_by_import: Some(Created {
                table: table.to_string(),
                run_id: ctx.run_id.clone(),
                import_arn: arn,
                requested_at: Utc::now(),
            }),
        },
    );
}

/// Writes and uploads the parts S3 does not hold yet: one thread writes the
/// next part while this task uploads the last, so at most three part files
/// are on disk; each is deleted once S3 reports the same size and checksum.
#[allow(clippy::too_many_arguments)]
async fn upload(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    name: &str,
    step: &mut Step,
    state: &mut ImportState,
    artifact: ArtifactReader,
    s3: &aws_sdk_s3::Client,
    policy: &RetryPolicy,
) -> Result<()> {
    let total = artifact.manifest().records;
    let dir = ctx.data_dir.join("import").join(name);
    if dir.exists() {
        // Parts a killed upload left: written again from the checkpoint.
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    crate::artifact::create_private_dir(&dir)?;
    let start = state.items_uploaded;
    let first = state.parts.len() as u32 + 1;
    let part_bytes = state.part_bytes;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<parts::PartFile>(1);
    let writer_dir = dir.clone();
    let writer = std::thread::spawn(move || {
        parts::write_parts(artifact, start, first, part_bytes, &writer_dir, |p| {
            tx.blocking_send(p).is_ok()
        })
    });
    let bar = ctx.progress.bar(name, "upload", Some(total));
    bar.set_position(start);
    let mut outcome = Ok(());
    while let Some(part) = rx.recv().await {
        if ctx.cancelled() {
            let _ = std::fs::remove_file(&part.path);
            outcome = Err(Error::Interrupted(format!(
                "upload of {name} stopped after {} part(s); the checkpoint is saved: run `migrate --resume` \
                 to go on",
                state.parts.len()
            )));
            break;
        }
        let key = format!("{}{}", state.prefix, parts::object_name(part.number));
        let sent = s3::upload(
            s3,
            &state.bucket,
            &key,
            &part.path,
            part.bytes,
            &part.sha256,
            policy,
        )
        .await;
        let _ = std::fs::remove_file(&part.path);
        let stored = match sent {
            Ok(s) => s,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        state.parts.push(UploadedPart {
            key,
            items: part.items,
            raw_bytes: part.raw_bytes,
            bytes: stored.bytes,
            checksum: stored.checksum,
        });
        state.items_uploaded = part.first + part.items;
        bar.set_position(state.items_uploaded);
        save(cp, name, step, state)?;
    }
    drop(rx);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(Error::Incomplete("the part writer panicked".into())));
    bar.finish();
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    written?;
    if state.items_uploaded != total {
        return Err(Error::Incomplete(format!(
            "upload of {name}: {} of {total} items are in S3",
            state.items_uploaded
        )));
    }
    // The import reads every object under the prefix: it must hold exactly
    // the parts, as S3 reported each one.
    let listed = s3::list(s3, &state.bucket, &state.prefix, policy).await?;
    let expected: Vec<(String, u64)> = state
        .parts
        .iter()
        .map(|p| (p.key.clone(), p.bytes))
        .collect();
    if listed != expected {
        let strays: Vec<&str> = listed
            .iter()
            .filter(|o| !expected.contains(o))
            .map(|(k, _)| k.as_str())
            .take(5)
            .collect();
        return Err(Error::Incomplete(format!(
            "s3://{}/{} holds {} object(s) where {} part(s) were uploaded (unexpected: {}): the import \
             would read them all; nothing was imported",
            state.bucket,
            state.prefix,
            listed.len(),
            expected.len(),
            strays.join(", ")
        )));
    }
    state.uploaded = true;
    save(cp, name, step, state)?;
    Ok(())
}

/// Follows the import with `DescribeImport` until it ends; Ctrl-C or the
/// time limit stop following it (the import goes on in DynamoDB, and
/// `--resume` follows it again).
#[allow(clippy::too_many_arguments)]
async fn follow(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    name: &str,
    step: &mut Step,
    state: &mut ImportState,
    client: &aws_sdk_dynamodb::Client,
    policy: &RetryPolicy,
    total: u64,
) -> Result<request::Progress> {
    let arn = state.arn.clone().expect("requested");
    let bar = ctx.progress.bar(name, "import", Some(total));
    let mut pause = Duration::from_millis(250);
    let mut last_save = Instant::now();
    loop {
        let p = request::describe(client, &arn, policy).await?;
        state.status = Some(p.status.clone());
        state.processed_items = p.processed_items;
        state.processed_bytes = p.processed_bytes;
        state.imported_items = p.imported_items;
        state.errors = p.errors;
        state.log_group = p.log_group.clone();
        bar.set_position(p.processed_items);
        bar.set_errors(
            p.errors,
            format!(
                "{} · {} MB processed",
                p.status,
                p.processed_bytes / 1_000_000
            ),
        );
        if !p.running() {
            bar.finish();
            return Ok(p);
        }
        if last_save.elapsed() >= SAVE_EVERY {
            last_save = Instant::now();
            save(cp, name, step, state)?;
        }
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if ctx.cancelled() {
                bar.finish();
                save(cp, name, step, state)?;
                return Err(Error::Interrupted(format!(
                    "stopped following import {arn} of {name}, which goes on in DynamoDB; \
                     run `migrate --resume` to follow it again"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pause = (pause * 2).min(POLL_AT_MOST);
    }
}

fn report(ctx: &Ctx, name: &str, table: &str, step: &Step, state: &ImportState) -> Result<()> {
    crate::report::update(
        &ctx.report("load_report.json"),
        &ctx.run_id,
        name,
        json!({
            "table": table,
            "mode": "put",
            "via": "s3-import",
            "items": step.records_in,
            "confirmed": step.confirmed,
            "written": step.written,
            "failed": step.failed,
            "seconds": step.elapsed_secs(),
            "pointInTimeRecovery": step.pitr,
            "import": {
                "arn": state.arn,
                "status": state.status,
                "bucket": state.bucket,
                "prefix": state.prefix,
                "objects": state.parts.len(),
                "bytes": state.parts.iter().map(|p| p.bytes).sum::<u64>(),
                "uncompressedBytes": state.parts.iter().map(|p| p.raw_bytes).sum::<u64>(),
                "processedItems": state.processed_items,
                "processedBytes": state.processed_bytes,
                "importedItems": state.imported_items,
                "errors": state.errors,
                "logGroup": state.log_group,
            },
        }),
    )
}
