//! The key-by-key work of a rollback (docs/rollback.md): every key the
//! ledgers name is read in batches, compared with what the migration wrote
//! and what the baseline had, then deleted, restored from the backup's
//! bytes, or left alone as drift (reverted with `--force`); the drifted keys
//! are streamed to their file. The command around it is `rollback.rs`.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::json;

use super::{ledger, wire_key, wire_line};
use crate::artifact::ArtifactReader;
use crate::checkpoint::{Baseline, Checkpoint, RollbackState};
use crate::ctx::Ctx;
use crate::dynamo::{
    self, AvItem, CallStats, MAX_BATCH_GET_KEYS, MAX_BATCH_WRITE_ITEMS, RetryPolicy, Write,
};
use crate::entities::Item;
use crate::entities::table::Index;
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::fingerprint::{KeySet, key_hash};
use crate::pipeline::{self, Batcher, Control, Ended};

const SAVE_EVERY: Duration = Duration::from_secs(2);
/// Drifted items named in the report itself; all are in the drift file.
const DRIFT_EXAMPLES: usize = 1000;

/// The drifted keys, streamed to their file; the first few kept for the report.
pub(super) struct Drift {
    out: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    examples: Vec<serde_json::Value>,
}

impl Drift {
    pub(super) fn create(path: &std::path::Path) -> Result<Drift> {
        let file = crate::artifact::create_private_file(path)?;
        Ok(Drift {
            out: std::io::BufWriter::new(file),
            path: path.to_path_buf(),
            examples: Vec::new(),
        })
    }

    fn add(&mut self, pk: &str, sk: &str, change: &str, forced: bool) -> Result<()> {
        let line = json!({"PK": pk, "SK": sk, "change": change, "reverted": forced});
        writeln!(self.out, "{line}").map_err(|e| Error::io(&self.path, e))?;
        if self.examples.len() < DRIFT_EXAMPLES {
            self.examples.push(line);
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<Vec<serde_json::Value>> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(self.examples)
    }
}

/// One key to check: its fingerprints as the loads wrote it.
struct Key {
    pk: String,
    sk: String,
    hash: u128,
    written: Vec<u128>,
}

/// What became of a group of keys.
#[derive(Default)]
struct Group {
    checked: u64,
    deleted: u64,
    unchanged: u64,
    failed: u64,
    /// (PK, SK, what changed) of drifted keys.
    drift: Vec<(String, String, &'static str)>,
    /// Keys to restore from the backup.
    restore: Vec<u128>,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn revert(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    name: &str,
    baseline: &Baseline,
    table: &str,
    force: bool,
    state: &mut RollbackState,
    drift: &mut Drift,
) -> Result<()> {
    let backup = baseline.backup.as_ref().expect("checked by the caller");
    // The entity's indexes, for the write units of the rate cap (crate::rate).
    let indexes = crate::entities::find(name).map_or(&[][..], |e| e.table.indexes);
    // What the loads wrote, per key (an item loaded twice has two states).
    let mut written: HashMap<u128, Vec<u128>> = HashMap::new();
    for l in &baseline.ledgers {
        ledger::read(&l.path, |e| {
            let fps = written.entry(key_hash(&e.pk, &e.sk)).or_default();
            if !fps.contains(&e.state()) {
                fps.push(e.state());
            }
            Ok(())
        })?;
    }
    state.total = written.len() as u64;
    // The baseline's fingerprint of those keys.
    let mut base: HashMap<u128, u128> = HashMap::new();
    let mut reader = ArtifactReader::open(&backup.path)?;
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        let item = wire_line(&backup.path, reader.line_no(), &buf)?;
        let (pk, sk) = wire_key(&item);
        let hash = key_hash(pk.unwrap_or_default(), sk.unwrap_or_default());
        if written.contains_key(&hash) {
            base.insert(hash, fingerprint::of_wire(&item));
        }
    }
    tracing::info!(
        "rollback of {name}: {} keys written by {} load(s), {} of them in the baseline",
        state.total,
        baseline.ledgers.len(),
        base.len()
    );

    let shared = ctx.target().await;
    let target = &*shared;
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let stats = CallStats::default();
    let concurrency = ctx.config.migration.concurrency.max(1);
    let bar = ctx.progress.bar(name, "rollback", Some(state.total));
    let mut restore = KeySet::new();
    let mut in_flight = FuturesUnordered::new();
    let mut last_save = Instant::now();
    let mut group: Vec<Key> = Vec::with_capacity(MAX_BATCH_GET_KEYS);
    let mut settle = |g: Group,
                      state: &mut RollbackState,
                      cp: &mut Checkpoint,
                      drift: &mut Drift,
                      restore: &mut KeySet|
     -> Result<()> {
        state.checked += g.checked;
        state.deleted += g.deleted;
        state.failed += g.failed;
        state.unchanged += g.unchanged;
        state.drift += g.drift.len() as u64;
        for (pk, sk, change) in &g.drift {
            drift.add(pk, sk, change, force)?;
        }
        restore.extend(g.restore);
        bar.inc(g.checked);
        if last_save.elapsed() >= SAVE_EVERY {
            last_save = Instant::now();
            cp.rollbacks.insert(name.to_string(), state.clone());
            cp.save()?;
        }
        Ok(())
    };

    // Each ledger key once, a group of 100 per BatchGetItem, `concurrency` groups at a time.
    'ledgers: for l in &baseline.ledgers {
        let mut entries = ledger::Reader::open(&l.path)?;
        while let Some(e) = entries.next_entry()? {
            let hash = key_hash(&e.pk, &e.sk);
            let Some(fps) = written.remove(&hash) else {
                continue; // seen in this or an earlier ledger
            };
            group.push(Key {
                pk: e.pk,
                sk: e.sk,
                hash,
                written: fps,
            });
            if group.len() < MAX_BATCH_GET_KEYS {
                continue;
            }
            while in_flight.len() >= concurrency {
                let done: Result<Group> = in_flight.next().await.expect("not empty");
                settle(done?, state, cp, drift, &mut restore)?;
            }
            if ctx.cancelled() {
                group.clear();
                break 'ledgers;
            }
            let g = std::mem::replace(&mut group, Vec::with_capacity(MAX_BATCH_GET_KEYS));
            in_flight.push(check_group(
                target, table, &policy, &stats, &base, force, g, indexes,
            ));
        }
    }
    if !group.is_empty() && !ctx.cancelled() {
        in_flight.push(check_group(
            target,
            table,
            &policy,
            &stats,
            &base,
            force,
            std::mem::take(&mut group),
            indexes,
        ));
    }
    let mut first_error = None;
    while let Some(done) = in_flight.next().await {
        match done {
            Ok(g) => settle(g, state, cp, drift, &mut restore)?,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    drop(in_flight);
    if let Some(e) = first_error {
        bar.finish();
        return Err(e);
    }

    // Restores: the backup's own bytes for the keys decided above.
    if !restore.is_empty() && !ctx.cancelled() {
        let (restored, failed) =
            restore_items(ctx, target, table, &policy, backup, restore, indexes).await?;
        state.restored += restored;
        state.failed += failed;
    }
    bar.finish();
    if ctx.cancelled() {
        return Err(Error::Interrupted(format!(
            "rollback of {name} stopped after {} of {} keys; run `migrate rollback --entity {name}` again to finish it",
            state.checked, state.total
        )));
    }
    Ok(())
}

/// Reads the current items of a group and deletes or marks for restore
/// those that still hold what the migration wrote.
#[allow(clippy::too_many_arguments)]
async fn check_group(
    target: &dyn dynamo::Target,
    table: &str,
    policy: &RetryPolicy,
    stats: &CallStats,
    base: &HashMap<u128, u128>,
    force: bool,
    keys: Vec<Key>,
    indexes: &'static [Index],
) -> Result<Group> {
    let request: Vec<AvItem> = keys
        .iter()
        .map(|k| {
            AvItem::from([
                ("PK".to_string(), AttributeValue::S(k.pk.clone())),
                ("SK".to_string(), AttributeValue::S(k.sk.clone())),
            ])
        })
        .collect();
    let found = dynamo::batch_get(target, table, request, policy).await?;
    let current: HashMap<u128, u128> = found
        .iter()
        .map(|item| {
            let s = |n: &str| match item.get(n) {
                Some(AttributeValue::S(s)) => s.as_str(),
                _ => "",
            };
            (key_hash(s("PK"), s("SK")), fingerprint::of_av(item))
        })
        .collect();
    let mut g = Group {
        checked: keys.len() as u64,
        ..Group::default()
    };
    let mut deletes = Vec::new();
    for k in keys {
        let now = current.get(&k.hash);
        let before = base.get(&k.hash);
        if now == before {
            g.unchanged += 1; // already as the baseline has it
            continue;
        }
        // What a load left: an item it wrote, or the absence a sync's delete left.
        let ours = k.written.contains(now.unwrap_or(&ledger::ABSENT));
        if !ours {
            let change = if now.is_some() {
                "changed since the load"
            } else {
                "deleted since the load"
            };
            g.drift.push((k.pk.clone(), k.sk.clone(), change));
            if !force {
                continue;
            }
        }
        if before.is_some() {
            g.restore.push(k.hash);
        } else {
            let key: Item = [
                ("PK".to_string(), serde_json::Value::String(k.pk)),
                ("SK".to_string(), serde_json::Value::String(k.sk)),
            ]
            .into_iter()
            .collect();
            deletes.push((0u64, Write::delete_in(&key, indexes)));
        }
    }
    for (i, chunk) in deletes.chunks(MAX_BATCH_WRITE_ITEMS).enumerate() {
        let batch: Vec<(u64, Write)> = chunk
            .iter()
            .enumerate()
            .map(|(j, (_, w))| ((i * MAX_BATCH_WRITE_ITEMS + j) as u64, w.clone()))
            .collect();
        let outcome = dynamo::write_batch(target, table, batch, policy, stats)
            .await
            .map_err(|e| Error::target(e.into_message()))?;
        g.deleted += outcome.written;
        g.failed += outcome.failed.len() as u64;
    }
    Ok(g)
}

/// Puts back, from the backup's bytes, the items whose key is in `keys`.
async fn restore_items(
    ctx: &Ctx,
    target: &dyn dynamo::Target,
    table: &str,
    policy: &RetryPolicy,
    backup: &crate::checkpoint::BackupInfo,
    keys: KeySet,
    indexes: &'static [Index],
) -> Result<(u64, u64)> {
    let batch_size = ctx.config.migration.batch_size;
    let (tx, rx) = pipeline::channel(16);
    let path = backup.path.clone();
    let reader = std::thread::spawn(move || -> Result<()> {
        let mut reader = ArtifactReader::open(&path)?;
        let mut buf = String::new();
        let mut batcher = Batcher::new(tx, batch_size);
        let mut index = 0;
        while reader.next_line(&mut buf)? {
            let item = wire_line(&path, reader.line_no(), &buf)?;
            let (pk, sk) = wire_key(&item);
            if !keys.contains(&key_hash(pk.unwrap_or_default(), sk.unwrap_or_default())) {
                continue;
            }
            let write = Write::put_wire_in(&buf, indexes)
                .map_err(|e| Error::artifact(&path, format!("line {}: {e}", reader.line_no())))?;
            if !batcher.push(index, write) {
                return Ok(());
            }
            index += 1;
        }
        batcher.finish()
    });
    let (mut ok, mut failed) = (0, 0);
    let cancelled = || ctx.cancelled();
    let ended = pipeline::run(
        target,
        table,
        policy,
        ctx.config.migration.concurrency,
        Duration::ZERO,
        Arc::new(CallStats::default()),
        rx,
        &cancelled,
        |done| {
            ok += done.outcome.written;
            failed += done.outcome.failed.len() as u64;
            Control::Continue
        },
    )
    .await;
    let read = reader
        .join()
        .map_err(|_| Error::Incomplete("the backup reader panicked".into()))?;
    match ended {
        Ended::Terminal(t) => Err(Error::target(t.message)),
        _ => {
            read?;
            Ok((ok, failed))
        }
    }
}
