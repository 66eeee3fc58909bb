//! The checkpoint, `data/checkpoint.json`: per entity and phase, its state,
//! counts, the checksum of the input it read and the output it wrote, and for
//! load how far the validated artifact is confirmed written; per entity, the
//! pinned rollback baseline with the ledgers of the loads since, and the last
//! rollback (docs/rollback.md). Saved atomically after every phase and every
//! few seconds during a load; `--resume` and `migrate status` read it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::artifact::{read_json, write_json_atomic};
use crate::dynamo::CallCounts;
use crate::error::{Error, Result};

/// The five phases, in the order they run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Extract,
    Transform,
    Validate,
    Load,
    Verify,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Extract,
        Phase::Transform,
        Phase::Validate,
        Phase::Load,
        Phase::Verify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Extract => "extract",
            Phase::Transform => "transform",
            Phase::Validate => "validate",
            Phase::Load => "load",
            Phase::Verify => "verify",
        }
    }

    /// The artifact directory this phase writes under the data dir.
    pub fn artifact_dir(self) -> Option<&'static str> {
        match self {
            Phase::Extract => Some("extracted"),
            Phase::Transform => Some("transformed"),
            Phase::Validate => Some("validated"),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
    Interrupted,
}

/// What is known of a backup taken before a load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    pub table: String,
    pub path: PathBuf,
    pub items: u64,
    pub sha256: String,
    pub backup_arn: Option<String>,
    pub taken_at: DateTime<Utc>,
}

/// What a load in sync mode found and applies (docs/cutover.md): the
/// difference between the validated artifact and the table, written as the
/// changes artifact before the first write, and the before-images of
/// exactly the items it overwrites or deletes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncInfo {
    /// `data/changes/<entity>.jsonl`.
    pub changes: PathBuf,
    pub changes_sha256: String,
    pub counts: SyncCounts,
    /// The items as they were before this sync, for `rollback --last`.
    pub before: BackupInfo,
}

/// A sync's five counts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncCounts {
    /// In the artifact, not in the table: put.
    pub new: u64,
    /// In both, different: put.
    pub changed: u64,
    /// In both, the same: no write.
    pub unchanged: u64,
    /// The migration's, no longer among the valid migrated records: deleted.
    pub deleted: u64,
    /// In the table under the entity's prefix but not the migration's: never touched.
    pub foreign: u64,
}

impl SyncCounts {
    /// Writes the sync sends.
    pub fn writes(&self) -> u64 {
        self.new + self.changed + self.deleted
    }
}

/// One load's ledger: what it wrote, appended ahead of the writes
/// (backup::ledger). `sha256` and `lines` are recorded when the load that
/// writes it stops (or, after a `kill -9`, when the next load starts), and
/// checked before a rollback uses it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerInfo {
    pub run_id: String,
    pub path: PathBuf,
    pub lines: Option<u64>,
    pub sha256: Option<String>,
}

/// The state an entity's table is rolled back to: the backup taken before
/// the migration first wrote to it, and the ledgers of every load since.
/// Only `migrate baseline reset` replaces it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// `None`: the first load ran with `backupBeforeLoad` false.
    pub backup: Option<BackupInfo>,
    pub pinned_at: DateTime<Utc>,
    /// The run that pinned it (a load, or `baseline reset`).
    pub run_id: String,
    #[serde(default)]
    pub ledgers: Vec<LedgerInfo>,
    /// The last load in sync mode since this baseline, which
    /// `rollback --last` undoes: its run and before-images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<LastSync>,
    /// The table did not exist before the migration: an S3 import created
    /// it, so rolling back is dropping it (docs/import.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_import: Option<crate::import::state::Created>,
}

/// The last sync of an entity: `rollback --last` puts back its
/// before-images and deletes what it created, using its run's ledger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LastSync {
    pub run_id: String,
    pub before: BackupInfo,
}

/// The last rollback of an entity; removed when a load writes again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackState {
    pub state: State,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Keys of the ledgers checked so far, of `total`.
    pub checked: u64,
    pub total: u64,
    pub deleted: u64,
    pub restored: u64,
    /// Keys already as the baseline has them.
    #[serde(default)]
    pub unchanged: u64,
    /// Items changed since the load, left alone (or reverted with `--force`).
    pub drift: u64,
    pub forced: bool,
    pub failed: u64,
    pub error: Option<String>,
}

impl RollbackState {
    /// A rollback that starts now: nothing checked of `total` yet.
    pub fn running(run_id: &str, total: u64, forced: bool) -> RollbackState {
        RollbackState {
            state: State::Running,
            run_id: run_id.to_string(),
            started_at: Utc::now(),
            finished_at: None,
            checked: 0,
            total,
            deleted: 0,
            restored: 0,
            unchanged: 0,
            drift: 0,
            forced,
            failed: 0,
            error: None,
        }
    }
}

/// One phase of one entity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub state: State,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub records_in: u64,
    #[serde(default)]
    pub records_out: u64,
    #[serde(default)]
    pub rejected: u64,
    #[serde(default)]
    pub warnings: u64,
    /// Load: the table's point-in-time recovery window when the load ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<crate::pitr::PitrWindow>,
    /// SHA-256 of the artifact this step read.
    pub input_sha256: Option<String>,
    /// SHA-256 of the artifact this step wrote.
    pub output_sha256: Option<String>,
    /// Reject and warning counts by reason code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, u64>,
    /// Load: items of the validated artifact settled (written or recorded as
    /// failed), counted from its start, with nothing unsettled before them.
    pub confirmed: Option<u64>,
    /// Load: items written so far (within `confirmed`).
    pub written: Option<u64>,
    /// Load: items recorded in the failed file (within `confirmed`).
    pub failed: Option<u64>,
    /// Load: retry counters so far.
    pub counts: Option<CallCounts>,
    /// Load: the backup taken before the first write.
    pub backup: Option<BackupInfo>,
    /// Load in sync mode: the changes it applies (`confirmed` then counts
    /// entries of the changes artifact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncInfo>,
    /// Load through S3 import: its parts, and the import once requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<crate::import::state::ImportState>,
    /// Extract: the PostgreSQL snapshot it read.
    pub snapshot: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Step {
    pub fn start(run_id: &str) -> Step {
        Step {
            state: State::Running,
            run_id: run_id.into(),
            started_at: Utc::now(),
            finished_at: None,
            records_in: 0,
            records_out: 0,
            rejected: 0,
            warnings: 0,
            pitr: None,
            input_sha256: None,
            output_sha256: None,
            reasons: BTreeMap::new(),
            confirmed: None,
            written: None,
            failed: None,
            counts: None,
            backup: None,
            sync: None,
            import: None,
            snapshot: None,
            error: None,
        }
    }

    pub fn elapsed_secs(&self) -> f64 {
        let end = self.finished_at.unwrap_or_else(Utc::now);
        (end - self.started_at).num_milliseconds() as f64 / 1000.0
    }
}

/// The command a run was started with, replayed by `--resume`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub phases: Vec<Phase>,
    pub entities: Vec<String>,
}

/// The whole checkpoint file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub version: u32,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// The start of the first run in this data directory: the fallback for
    /// `createdAt` of rows without timestamps, so an unchanged row gives the
    /// same item in every run (README "Mapping and rules").
    #[serde(default)]
    pub migration_started_at: Option<DateTime<Utc>>,
    pub plan: Plan,
    pub finished: bool,
    /// entity → phase → step; kept across runs so later commands see what
    /// earlier ones did.
    pub entities: BTreeMap<String, BTreeMap<Phase, Step>>,
    /// entity → its pinned rollback baseline; kept across runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baselines: BTreeMap<String, Baseline>,
    /// entity → its last rollback; kept across runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollbacks: BTreeMap<String, RollbackState>,
    #[serde(skip)]
    path: PathBuf,
}

impl Checkpoint {
    pub const FILE: &'static str = "checkpoint.json";

    /// A fresh run over what earlier runs left.
    pub fn new_run(data_dir: &Path, plan: Plan, previous: Option<Checkpoint>) -> Checkpoint {
        let started_at = Utc::now();
        let migration_started_at = previous
            .as_ref()
            .map(Checkpoint::first_start)
            .unwrap_or(started_at);
        let (entities, baselines, rollbacks) = previous
            .map(|p| (p.entities, p.baselines, p.rollbacks))
            .unwrap_or_default();
        Checkpoint {
            version: 1,
            run_id: new_run_id(),
            started_at,
            migration_started_at: Some(migration_started_at),
            plan,
            finished: false,
            entities,
            baselines,
            rollbacks,
            path: data_dir.join(Self::FILE),
        }
    }

    /// When the first run of this data directory started. A checkpoint
    /// written before that was recorded gives its earliest step's start.
    pub fn first_start(&self) -> DateTime<Utc> {
        self.migration_started_at.unwrap_or_else(|| {
            self.entities
                .values()
                .flat_map(|steps| steps.values().map(|s| s.started_at))
                .chain([self.started_at])
                .min()
                .expect("the chain holds the run's own start")
        })
    }

    /// A checkpoint for a data directory that has none yet (`baseline
    /// reset` before any run): no run, nothing planned.
    pub fn empty(data_dir: &Path) -> Checkpoint {
        let mut cp = Checkpoint::new_run(
            data_dir,
            Plan {
                phases: Vec::new(),
                entities: Vec::new(),
            },
            None,
        );
        cp.finished = true;
        cp
    }

    /// Whether the last thing done to `entity`'s table was a rollback
    /// (finished or not): `--resume` does not load it again.
    pub fn rolled_back(&self, entity: &str) -> bool {
        self.rollbacks.contains_key(entity)
    }

    /// Reads the checkpoint of `data_dir`, if any.
    pub fn load(data_dir: &Path) -> Result<Option<Checkpoint>> {
        let path = data_dir.join(Self::FILE);
        if !path.exists() {
            return Ok(None);
        }
        let mut cp: Checkpoint = read_json(&path)
            .map_err(|e| Error::Checkpoint(format!("{} is unreadable: {e}", path.display())))?;
        if cp.version != 1 {
            return Err(Error::Checkpoint(format!(
                "{}: unknown version {}",
                path.display(),
                cp.version
            )));
        }
        cp.path = path;
        Ok(Some(cp))
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self) -> Result<()> {
        write_json_atomic(&self.path, self)
    }

    pub fn step(&self, entity: &str, phase: Phase) -> Option<&Step> {
        self.entities.get(entity)?.get(&phase)
    }

    pub fn step_mut(&mut self, entity: &str, phase: Phase) -> Option<&mut Step> {
        self.entities.get_mut(entity)?.get_mut(&phase)
    }

    /// Records `step` and saves.
    pub fn put(&mut self, entity: &str, phase: Phase, step: Step) -> Result<()> {
        self.entities
            .entry(entity.to_string())
            .or_default()
            .insert(phase, step);
        self.save()
    }

    /// Whether `phase` of `entity` finished.
    pub fn is_done(&self, entity: &str, phase: Phase) -> bool {
        self.step(entity, phase)
            .is_some_and(|s| s.state == State::Done)
    }
}

fn new_run_id() -> String {
    let now = Utc::now();
    format!(
        "{}-{}",
        now.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

#[cfg(test)]
mod tests;
