//! What every phase needs from the run it belongs to: the configuration,
//! the data directory, the progress display, the cancellation flag (Ctrl-C,
//! `--time-limit`), the run's identity and its one DynamoDB client (and the [`SharedTarget`]
//! over it), built on first use. The runner builds it; phases, backup and rollback only read it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use crate::checkpoint::Phase;
use crate::config::Config;
use crate::dynamo::{Sdk, SharedTarget};
use crate::entities::Entity;
use crate::error::Result;
use crate::progress::Progress;

/// Everything a phase needs.
pub struct Ctx {
    pub config: Config,
    pub data_dir: PathBuf,
    pub progress: Progress,
    pub cancel: Arc<AtomicBool>,
    pub run_id: String,
    /// The data directory's first run start (`Checkpoint::first_start`).
    pub first_run_started_at: DateTime<Utc>,
    pub dry_run: bool,
    /// `--resume`: a load continues from its confirmed position.
    pub resume: bool,
    dynamo: OnceCell<aws_sdk_dynamodb::Client>,
    target: OnceCell<SharedTarget>,
}

impl Ctx {
    /// A context for run `run_id`; the runner sets the rest from the
    /// checkpoint and the command line (rollback uses it as it is).
    pub fn standalone(
        config: Config,
        data_dir: PathBuf,
        progress: Progress,
        cancel: Arc<AtomicBool>,
        run_id: String,
    ) -> Ctx {
        Ctx {
            config,
            data_dir,
            progress,
            cancel,
            run_id,
            first_run_started_at: Utc::now(),
            dry_run: false,
            resume: false,
            dynamo: OnceCell::new(),
            target: OnceCell::new(),
        }
    }

    /// The run's DynamoDB client, built on first use.
    pub async fn dynamo(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamo
            .get_or_init(|| crate::dynamo::client(&self.config.target, &self.config.migration))
            .await
    }

    /// What load, sync, verify, rollback and the baseline read and write
    /// through: DynamoDB over [`Ctx::dynamo`], unless [`Ctx::use_target`]
    /// gave another (docs/design.md, "The Target seam").
    pub async fn target(&self) -> SharedTarget {
        self.target
            .get_or_init(|| async { Sdk::shared(self.dynamo().await.clone()) })
            .await
            .clone()
    }

    /// Runs this context's phases against `target` (the in-memory one of
    /// unit tests); no effect once [`Ctx::target`] was called.
    pub fn use_target(&self, target: SharedTarget) {
        let _ = self.target.set(target);
    }

    /// The table configured for `entity`.
    pub fn table(&self, entity: &Entity) -> Result<&str> {
        self.config.target.table_for(entity.name, &self.config.path)
    }

    /// `data/<dir>/<entity>.jsonl`.
    pub fn artifact(&self, phase: Phase, entity: &str) -> PathBuf {
        artifact_path(&self.data_dir, phase, entity)
    }

    /// `data/reports/<name>`.
    pub fn report(&self, name: &str) -> PathBuf {
        self.data_dir.join("reports").join(name)
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// The artifact a phase writes for an entity.
pub fn artifact_path(data_dir: &Path, phase: Phase, entity: &str) -> PathBuf {
    data_dir
        .join(phase.artifact_dir().unwrap_or("reports"))
        .join(format!("{entity}.jsonl"))
}

/// Hands memory that finished work freed back to the OS. mimalloc (the
/// binary's allocator) keeps freed pages for reuse; after a step or a pass
/// whose large buffers are gone, keeping them only raises the peak of the
/// next one (validate of the sales after the buyers' unique-value maps and
/// its own pass-1 key list). A forced collect is cheap at those points; a
/// short purge delay for every free instead cost ~10% of validate's time.
pub fn release_memory() {
    // SAFETY: mi_collect only walks mimalloc's own heaps; it is harmless when
    // mimalloc is not the global allocator (the library's unit tests).
    unsafe { libmimalloc_sys::mi_collect(true) };
}
