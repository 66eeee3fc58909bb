//! One module per phase. Each reads its input artifact (verified against its
//! manifest), streams records through, and returns what it found as an
//! [`Outcome`]; the runner owns the step around it (started, recorded,
//! saved; docs/design.md). Transform, validate, load and verify run per
//! entity through [`run`], with one signature; extract runs for all the
//! entities of a command at once (one snapshot).

pub mod conserve;
pub mod estimate;
pub mod extract;
pub mod load;
pub mod plan;
pub mod reconcile;
pub mod transform;
pub mod validate;
pub mod verify;

#[cfg(test)]
mod target_tests;

use std::collections::BTreeMap;

pub use conserve::conserved;

use crate::checkpoint::{Checkpoint, Phase, Step};
use crate::ctx::Ctx;
use crate::entities::Entity;
use crate::error::{Error, Result};

/// One phase of one entity as the runner hands it over: the run, its
/// checkpoint, the entity, and the step the runner started (a resumed
/// load's holds where it stopped; a load keeps its position there while it
/// runs, saved in the checkpoint, so a crash loses nothing confirmed).
pub struct Unit<'a> {
    pub ctx: &'a Ctx,
    pub cp: &'a mut Checkpoint,
    pub entity: &'static Entity,
    pub step: &'a mut Step,
}

/// What a phase found for one entity; the runner records it in the step.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub records_in: u64,
    pub records_out: u64,
    /// Records quarantined or rejected; items that failed; differences.
    pub rejected: u64,
    pub warnings: u64,
    pub input_sha256: Option<String>,
    pub output_sha256: Option<String>,
    /// Counts by reason code.
    pub reasons: BTreeMap<String, u64>,
    /// What the operator must look at, one line each (exit 1).
    pub problems: Vec<String>,
}

impl Outcome {
    /// Writes the counts and hashes into `step`; returns the problems.
    pub fn record(self, step: &mut Step) -> Vec<String> {
        step.records_in = self.records_in;
        step.records_out = self.records_out;
        step.rejected = self.rejected;
        step.warnings = self.warnings;
        if self.input_sha256.is_some() {
            step.input_sha256 = self.input_sha256;
        }
        if self.output_sha256.is_some() {
            step.output_sha256 = self.output_sha256;
        }
        step.reasons = self.reasons;
        self.problems
    }
}

/// Runs `phase` of one entity.
pub async fn run(phase: Phase, unit: Unit<'_>) -> Result<Outcome> {
    match phase {
        Phase::Transform => transform::run(unit).await,
        Phase::Validate => validate::run(unit).await,
        Phase::Load => load::run(unit).await,
        Phase::Verify => verify::run(unit).await,
        Phase::Extract => Err(Error::Usage(
            "extract runs for all the entities of a command at once, not one by one".into(),
        )),
    }
}
