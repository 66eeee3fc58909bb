//! `migrate status`: where the last run stands, per entity and phase, as a
//! table for people or (`--json`) as a JSON document for scripts, whose
//! format docs/report.md describes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkpoint::{Checkpoint, Phase, Plan, State};
use crate::dynamo::CallCounts;
use crate::error::Result;

/// `migrate status --json`: the checkpoint's state, in a stable shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusJson {
    /// The format's version.
    pub version: u32,
    /// `null` fields (and no entities) when the data directory has no run yet.
    pub run_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished: Option<bool>,
    /// Whether `migrate --resume` would continue the run.
    pub resumable: bool,
    pub plan: Option<Plan>,
    /// entity → phase → its step.
    pub entities: BTreeMap<String, BTreeMap<Phase, StepJson>>,
}

/// One phase of one entity.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepJson {
    pub state: State,
    pub run_id: String,
    /// Whether the step belongs to the last run (not an earlier one).
    pub this_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub seconds: Option<f64>,
    pub records_in: u64,
    pub records_out: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub reasons: BTreeMap<String, u64>,
    /// Load: items settled from the artifact's start, written, failed.
    pub confirmed: Option<u64>,
    pub written: Option<u64>,
    pub failed: Option<u64>,
    pub counts: Option<CallCounts>,
    pub snapshot: Option<String>,
    pub error: Option<String>,
}

/// The `--json` document for the checkpoint in `data_dir`.
pub fn json(data_dir: &Path) -> Result<String> {
    let cp = Checkpoint::load(data_dir)?;
    let mut out = StatusJson {
        version: 1,
        run_id: None,
        started_at: None,
        finished: None,
        resumable: false,
        plan: None,
        entities: BTreeMap::new(),
    };
    if let Some(cp) = cp {
        for (entity, steps) in &cp.entities {
            let e = out.entities.entry(entity.clone()).or_default();
            for (phase, s) in steps {
                e.insert(
                    *phase,
                    StepJson {
                        state: s.state,
                        run_id: s.run_id.clone(),
                        this_run: s.run_id == cp.run_id,
                        started_at: s.started_at,
                        finished_at: s.finished_at,
                        seconds: s.finished_at.map(|_| s.elapsed_secs()),
                        records_in: s.records_in,
                        records_out: s.records_out,
                        rejected: s.rejected,
                        warnings: s.warnings,
                        reasons: s.reasons.clone(),
                        confirmed: s.confirmed,
                        written: s.written,
                        failed: s.failed,
                        counts: s.counts,
                        snapshot: s.snapshot.clone(),
                        error: s.error.clone(),
                    },
                );
            }
        }
        out.run_id = Some(cp.run_id.clone());
        out.started_at = Some(cp.started_at);
        out.finished = Some(cp.finished);
        out.resumable = !cp.finished;
        out.plan = Some(cp.plan);
    }
    Ok(serde_json::to_string_pretty(&out).expect("status serializes"))
}

/// The status text for the checkpoint in `data_dir`.
pub fn render(data_dir: &Path) -> Result<String> {
    let Some(cp) = Checkpoint::load(data_dir)? else {
        return Ok(format!(
            "no run yet: {} has no checkpoint\n",
            data_dir.display()
        ));
    };
    let mut out = String::new();
    let phases: Vec<&str> = cp.plan.phases.iter().map(|p| p.as_str()).collect();
    let _ = writeln!(
        out,
        "last run {} started {} ({}), phases {}, entities {}",
        cp.run_id,
        cp.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        if cp.finished {
            "finished"
        } else {
            "not finished: `migrate --resume` continues it"
        },
        phases.join(","),
        cp.plan.entities.join(",")
    );
    let _ = writeln!(
        out,
        "{:<10} {:<9} {:<12} {:>9} {:>9} {:>9} {:>9}  run",
        "entity", "phase", "state", "in", "out", "rejected", "warnings"
    );
    for (entity, steps) in &cp.entities {
        for phase in Phase::ALL {
            let Some(s) = steps.get(&phase) else { continue };
            let state = match (s.state, phase, s.confirmed) {
                (State::Running | State::Interrupted | State::Failed, Phase::Load, Some(c)) => {
                    format!("{:?} {c}/{}", s.state, s.records_in).to_lowercase()
                }
                (st, _, _) => format!("{st:?}").to_lowercase(),
            };
            let _ = writeln!(
                out,
                "{:<10} {:<9} {:<12} {:>9} {:>9} {:>9} {:>9}  {}{}",
                entity,
                phase.as_str(),
                state,
                s.records_in,
                s.records_out,
                s.rejected,
                s.warnings,
                s.run_id,
                s.error
                    .as_ref()
                    .map(|e| format!("\n    error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    for (entity, r) in &cp.rollbacks {
        let _ = writeln!(out, "{}", rollback_line(entity, r));
    }
    Ok(out)
}

/// `buyers     rollback  rolled back …` (docs/rollback.md).
fn rollback_line(entity: &str, r: &crate::checkpoint::RollbackState) -> String {
    let progress = format!("{}/{}", r.checked, r.total);
    let state = match r.state {
        State::Done => "rolled back".to_string(),
        State::Interrupted => format!("rollback interrupted {progress}"),
        State::Failed => format!("rollback failed {progress}"),
        // A rollback killed before it could record how it ended.
        State::Running => format!("rollback stopped {progress}"),
    };
    let mut line = format!(
        "{entity:<10} {:<9} {state:<12} deleted {} restored {} unchanged {} drift {}{}  {}",
        "rollback",
        r.deleted,
        r.restored,
        r.unchanged,
        r.drift,
        if r.forced { " (forced)" } else { "" },
        r.run_id
    );
    if r.state != State::Done {
        line.push_str(&format!(
            "\n    run `migrate rollback --entity {entity}` again to finish it"
        ));
    }
    if let Some(e) = &r.error {
        line.push_str(&format!("\n    error: {e}"));
    }
    line
}
