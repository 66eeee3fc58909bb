//! Backups before a load, and rollback to them.
//!
//! Before the first write to a table in a run, its whole content is exported
//! with a parallel Scan to `data/backups/<table>-<run>.jsonl` (with a
//! manifest), and where the endpoint supports it an on-demand `CreateBackup`
//! is requested and its ARN recorded. `migrate rollback --entity E` deletes
//! the items the load added, restores the ones it overwrote from the export,
//! and leaves every other item alone.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use chrono::Utc;
use serde_json::json;
use tokio::sync::mpsc;

use crate::artifact::{ArtifactReader, ArtifactWriter};
use crate::checkpoint::{BackupInfo, Checkpoint, Phase};
use crate::dynamo::{self, RetryPolicy, Write, WriteStats, item_from_av, key_of};
use crate::entities::{Entity, Item};
use crate::error::{Error, Result};
use crate::phases::{KeySet, key_hash};
use crate::pipeline::{self, Batch, Batcher, Control, Ended};
use crate::runner::{Ctx, artifact_path};

/// Exports `table` and requests an on-demand backup where supported.
pub async fn take(
    ctx: &Ctx,
    client: &Client,
    table: &str,
    policy: &RetryPolicy,
) -> Result<BackupInfo> {
    let path = ctx
        .data_dir
        .join("backups")
        .join(format!("{table}-{}.jsonl", ctx.run_id));
    let mut writer = ArtifactWriter::create(&path, &ctx.run_id, "backup", table)?;
    let bar = ctx.progress.bar(table, "backup", None);
    let mut pages = dynamo::scan(
        client,
        table,
        ctx.config.migration.scan_segments,
        None,
        false,
        policy,
    );
    while let Some(page) = pages.recv().await {
        let page = page?;
        let items = page
            .av_items()
            .map_err(|e| Error::Target(format!("scan of {table}: {e}")))?;
        for item in &items {
            writer.write(&item_from_av(item))?;
        }
        bar.inc(page.len() as u64);
    }
    bar.finish();
    let manifest = writer.finish()?;
    let backup_arn = match client
        .create_backup()
        .table_name(table)
        .backup_name(format!("{table}-migrate-{}", ctx.run_id))
        .send()
        .await
    {
        Ok(out) => out.backup_details().map(|d| d.backup_arn().to_string()),
        Err(e) => {
            tracing::warn!(
                "on-demand CreateBackup of {table} not available here ({}); the export in {} is the backup",
                dynamo::describe(&e),
                path.display()
            );
            None
        }
    };
    tracing::info!(items = manifest.records, arn = ?backup_arn, "backed up {table} to {}", path.display());
    Ok(BackupInfo {
        table: table.to_string(),
        path,
        items: manifest.records,
        sha256: manifest.sha256,
        backup_arn,
        taken_at: Utc::now(),
    })
}

/// What a rollback did.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    pub entity: String,
    pub table: String,
    pub backup: String,
    pub deleted: u64,
    pub restored: u64,
    pub failed: u64,
}

/// `migrate rollback --entity E`.
pub async fn rollback_command(
    config: crate::config::Config,
    data_dir: std::path::PathBuf,
    progress: crate::progress::Progress,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    entity: &dyn Entity,
    yes: bool,
) -> Result<RollbackReport> {
    let run_id = format!("rollback-{}", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let ctx = Ctx::standalone(config, data_dir, progress, cancel, run_id);
    rollback(&ctx, entity, yes).await
}

/// Puts `entity`'s table back as it was before the last load.
pub async fn rollback(ctx: &Ctx, entity: &dyn Entity, yes: bool) -> Result<RollbackReport> {
    let cp = Checkpoint::load(&ctx.data_dir)?.ok_or_else(|| {
        Error::Checkpoint(format!(
            "{} has no checkpoint: nothing was loaded",
            ctx.data_dir.display()
        ))
    })?;
    let step = cp.step(entity.name(), Phase::Load).ok_or_else(|| {
        Error::Checkpoint(format!(
            "{} was never loaded from this data directory",
            entity.name()
        ))
    })?;
    let backup = step.backup.clone().ok_or_else(|| {
        Error::Checkpoint(format!(
            "the last load of {} took no backup (backupBeforeLoad was false): cannot roll back",
            entity.name()
        ))
    })?;
    let artifact = artifact_path(&ctx.data_dir, Phase::Validate, entity.name());
    let manifest = ArtifactReader::verify(&artifact)?;
    if step.input_sha256.as_deref() != Some(manifest.sha256.as_str()) {
        return Err(Error::Checkpoint(format!(
            "{} changed since the load (it was validated again?): the items the load wrote are no longer known; \
             refusing to roll back",
            artifact.display()
        )));
    }
    let backup_manifest = ArtifactReader::verify(&backup.path)?;
    let table = backup.table.clone();
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "rollback changes the table: confirm on a terminal, or pass --yes".into(),
            ));
        }
        eprint!(
            "Roll back table {table}: delete the items the load of {} added and restore the {} items it may \
             have overwritten from {}? Type 'yes' to go on: ",
            entity.name(),
            backup_manifest.records,
            backup.path.display()
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Error::io("stdin", e))?;
        if answer.trim() != "yes" {
            return Err(Error::Usage(
                "rollback not confirmed; nothing changed".into(),
            ));
        }
    }

    let loaded = key_set(&artifact)?;
    let before = key_set(&backup.path)?;
    let client = ctx.dynamo().await.clone();
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let batch_size = ctx.config.migration.batch_size;

    // Deletes: loaded items that were not there before.
    let (tx, rx) = pipeline::channel(16);
    let path = artifact.clone();
    let before_for_deletes = Arc::new(before);
    let b = before_for_deletes.clone();
    let reader = std::thread::spawn(move || {
        stream_writes(&path, batch_size, tx, |item| {
            let (pk, sk) = key_of(item);
            (!b.contains(&key_hash(&pk, &sk))).then(|| {
                let key: Item = item
                    .iter()
                    .filter(|(k, _)| *k == "PK" || *k == "SK")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Write::delete(&key)
            })
        })
    });
    let (deleted, failed_d) = drain(ctx, &client, &table, &policy, rx).await?;
    reader
        .join()
        .map_err(|_| Error::Incomplete("reader panicked".into()))??;

    // Restores: items of the backup whose key the load wrote.
    let (tx, rx) = pipeline::channel(16);
    let path = backup.path.clone();
    let loaded = Arc::new(loaded);
    let l = loaded.clone();
    let reader = std::thread::spawn(move || {
        stream_writes(&path, batch_size, tx, |item| {
            let (pk, sk) = key_of(item);
            l.contains(&key_hash(&pk, &sk)).then(|| Write::put(item))
        })
    });
    let (restored, failed_r) = drain(ctx, &client, &table, &policy, rx).await?;
    reader
        .join()
        .map_err(|_| Error::Incomplete("reader panicked".into()))??;

    let report = RollbackReport {
        entity: entity.name().into(),
        table,
        backup: backup.path.display().to_string(),
        deleted,
        restored,
        failed: failed_d + failed_r,
    };
    crate::report::update(
        &ctx.report("rollback_report.json"),
        &ctx.run_id,
        entity.name(),
        json!({"table": report.table, "backup": report.backup, "backupArn": backup.backup_arn,
               "deleted": deleted, "restored": restored, "failed": report.failed,
               "at": Utc::now().to_rfc3339()}),
    )?;
    if report.failed > 0 {
        return Err(Error::Incomplete(format!(
            "rollback of {}: {} writes failed after every retry; run it again",
            report.table, report.failed
        )));
    }
    Ok(report)
}

fn key_set(path: &std::path::Path) -> Result<KeySet> {
    let mut reader = ArtifactReader::open(path)?;
    let mut set = KeySet::with_capacity(reader.manifest().records as usize);
    let mut buf = String::new();
    while let Some(item) = reader.next_record::<Item>(&mut buf)? {
        let (pk, sk) = key_of(&item);
        set.insert(key_hash(&pk, &sk));
    }
    Ok(set)
}

fn stream_writes(
    path: &std::path::Path,
    batch_size: usize,
    tx: mpsc::Sender<Vec<Batch>>,
    pick: impl Fn(&Item) -> Option<Write>,
) -> Result<()> {
    let mut reader = ArtifactReader::open(path)?;
    let mut buf = String::new();
    let mut index = 0;
    let mut batcher = Batcher::new(tx, batch_size);
    while let Some(item) = reader.next_record::<Item>(&mut buf)? {
        if let Some(w) = pick(&item) {
            if !batcher.push(index, w) {
                return Ok(());
            }
            index += 1;
        }
    }
    batcher.finish();
    Ok(())
}

async fn drain(
    ctx: &Ctx,
    client: &Client,
    table: &str,
    policy: &RetryPolicy,
    rx: mpsc::Receiver<Vec<Batch>>,
) -> Result<(u64, u64)> {
    let (mut ok, mut failed) = (0, 0);
    let ended = pipeline::run(
        client,
        table,
        policy,
        ctx.config.migration.concurrency,
        Duration::ZERO,
        Arc::new(WriteStats::default()),
        rx,
        &|| false,
        |done| {
            ok += done.outcome.written;
            failed += done.outcome.failed.len() as u64;
            Control::Continue
        },
    )
    .await;
    match ended {
        Ended::Terminal(t) => Err(Error::Target(t.message)),
        _ => Ok((ok, failed)),
    }
}
