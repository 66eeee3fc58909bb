//! Reports under `data/reports/`: the JSON reports each phase updates per
//! entity (atomically), and the one-screen summary printed after every run.
//! The HTML page built from them is in [`html`] (its charts in [`svg`], the
//! reports read back in [`files`]); the load's time series in [`series`];
//! what each phase writes, as types, in [`sections`].

pub mod config_view;
pub mod files;
pub mod html;
mod load_view;
pub mod sections;
pub mod series;
pub mod svg;
pub mod verdict;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::artifact::{read_json, write_json_atomic};
use crate::checkpoint::{Checkpoint, Phase, State};
use crate::error::Result;

/// Sets `entity`'s section of the report at `path`, keeping the others.
pub fn update(path: &Path, run_id: &str, entity: &str, section: impl Serialize) -> Result<()> {
    // The sections are structs and maps keyed by strings: they serialize.
    let section = serde_json::to_value(section).expect("a report section serializes");
    let mut report: Map<String, Value> = if path.exists() {
        read_json(path)?
    } else {
        Map::new()
    };
    report.insert("runId".into(), Value::String(run_id.into()));
    report.insert(
        "updatedAt".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    let entities = report
        .entry("entities")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = entities {
        let mut section = section;
        if let Value::Object(fields) = &mut section {
            fields.insert("runId".into(), Value::String(run_id.into()));
        }
        m.insert(entity.into(), section);
    }
    write_json_atomic(path, &report)
}

/// Sets one field of `entity`'s section of the report at `path`, keeping
/// the rest (the section must exist: the phase wrote it first).
pub fn set_field(path: &Path, entity: &str, key: &str, value: Value) -> Result<()> {
    let mut report: Map<String, Value> = read_json(path)?;
    let section = report
        .get_mut("entities")
        .and_then(|e| e.get_mut(entity))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            crate::Error::artifact(path, format!("has no section for {entity} to add {key} to"))
        })?;
    section.insert(key.into(), value);
    write_json_atomic(path, &report)
}

/// The summary table of the steps this run touched.
pub fn summary(cp: &Checkpoint) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nmigrate run {} — summary", cp.run_id);
    let _ = writeln!(
        out,
        "{:<10} {:<9} {:<11} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "entity", "phase", "state", "in", "out", "rejected", "warnings", "time"
    );
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entity in &cp.plan.entities {
        for phase in Phase::ALL {
            let Some(step) = cp.step(entity, phase) else {
                continue;
            };
            if step.run_id != cp.run_id {
                continue;
            }
            let state = match step.state {
                State::Done => "done",
                State::Running => "running",
                State::Failed => "FAILED",
                State::Interrupted => "interrupted",
            };
            let _ = writeln!(
                out,
                "{:<10} {:<9} {:<11} {:>9} {:>9} {:>9} {:>9} {:>8.1}s",
                entity,
                phase.as_str(),
                state,
                step.records_in,
                step.records_out,
                step.rejected,
                step.warnings,
                step.elapsed_secs()
            );
            if !step.reasons.is_empty() {
                let list = step
                    .reasons
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                reasons
                    .entry(format!("{entity} {}", phase.as_str()))
                    .or_default()
                    .push(list);
            }
            if let Some(sync) = &step.sync {
                let c = sync.counts;
                reasons
                    .entry(format!("{entity} {}", phase.as_str()))
                    .or_default()
                    .push(format!(
                        "sync: new {}, changed {}, unchanged {}, deleted {}, foreign {} ({})",
                        c.new,
                        c.changed,
                        c.unchanged,
                        c.deleted,
                        c.foreign,
                        sync.changes.display()
                    ));
            }
            if let Some(err) = &step.error {
                reasons
                    .entry(format!("{entity} {}", phase.as_str()))
                    .or_default()
                    .push(format!("error: {err}"));
            }
        }
    }
    if !reasons.is_empty() {
        let _ = writeln!(out, "\nby reason:");
        for (k, v) in reasons {
            let _ = writeln!(out, "  {k}: {}", v.join("; "));
        }
    }
    out
}
