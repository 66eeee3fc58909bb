//! `migrate status`: where the last run stands, per entity and phase.

use std::fmt::Write as _;
use std::path::Path;

use crate::checkpoint::{Checkpoint, Phase, State};
use crate::error::Result;

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
