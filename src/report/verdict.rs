//! The one-line answer at the top of the HTML report, from the checkpoint:
//! migrated and verified, differences found, failed, interrupted (with the
//! command that resumes), or only some phases run.

use crate::checkpoint::{Checkpoint, Phase, State, Step};
use crate::progress::thousands;

/// What the last run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entity loaded and verified without a difference.
    Verified { items: u64 },
    /// Verified or loaded, with differences or items that could not be written.
    Differences { details: Vec<String> },
    /// A step failed.
    Failed { step: String, error: String },
    /// Stopped before the end; `--resume` continues it.
    Interrupted { step: String },
    /// Finished what was asked, which was not the whole migration.
    Partial { ran: Vec<Phase>, dry_run: bool },
}

impl Verdict {
    /// A CSS class for the banner.
    pub fn class(&self) -> &'static str {
        match self {
            Verdict::Verified { .. } => "ok",
            Verdict::Differences { .. } => "warn",
            Verdict::Failed { .. } => "bad",
            Verdict::Interrupted { .. } => "bad",
            Verdict::Partial { .. } => "info",
        }
    }

    /// The headline.
    pub fn title(&self) -> String {
        match self {
            Verdict::Verified { items } => {
                format!("Migrated and verified: {} items", thousands(*items))
            }
            Verdict::Differences { .. } => "Differences found".into(),
            Verdict::Failed { step, .. } => format!("Failed: {step}"),
            Verdict::Interrupted { step } => format!("Interrupted: {step}"),
            Verdict::Partial { dry_run: true, .. } => {
                "Dry run: nothing was written to DynamoDB".into()
            }
            Verdict::Partial { ran, .. } => format!(
                "Finished {}; not verified",
                ran.iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// What to read or do next.
    pub fn detail(&self) -> Vec<String> {
        match self {
            Verdict::Verified { .. } => {
                vec!["Every validated item is in its table, attribute for attribute.".into()]
            }
            Verdict::Differences { details } => details.clone(),
            Verdict::Failed { error, .. } => vec![
                error.clone(),
                "Fix the cause, then continue with `migrate --resume` (same --config and --data-dir).".into(),
            ],
            Verdict::Interrupted { .. } => vec![
                "The checkpoint is saved: run `migrate --resume` (same --config and --data-dir) to finish.".into(),
            ],
            Verdict::Partial { .. } => vec![],
        }
    }
}

fn label(entity: &str, phase: Phase, s: &Step) -> String {
    match (phase, s.confirmed) {
        (Phase::Load, Some(c)) if s.state != State::Done => format!(
            "{entity} {phase} at item {} of {}",
            thousands(c),
            thousands(s.records_in)
        ),
        _ => format!("{entity} {phase}"),
    }
}

/// The verdict of the checkpoint's run; `failure` is the error the run
/// ended with, when it is known (at the end of a run).
pub fn decide(cp: &Checkpoint, failure: Option<&str>) -> Verdict {
    let mut this_run = Vec::new();
    for entity in &cp.plan.entities {
        for phase in &cp.plan.phases {
            if let Some(s) = cp.step(entity, *phase).filter(|s| s.run_id == cp.run_id) {
                this_run.push((entity.as_str(), *phase, s));
            }
        }
    }
    let interrupted = |e: &str| e.starts_with("interrupted");
    for (entity, phase, s) in &this_run {
        let error = s.error.clone().unwrap_or_default();
        match s.state {
            State::Interrupted => {
                return Verdict::Interrupted {
                    step: label(entity, *phase, s),
                };
            }
            State::Failed if interrupted(&error) => {
                return Verdict::Interrupted {
                    step: label(entity, *phase, s),
                };
            }
            State::Failed => {
                return Verdict::Failed {
                    step: label(entity, *phase, s),
                    error,
                };
            }
            _ => {}
        }
    }
    if let Some(error) = failure {
        return if interrupted(error) {
            Verdict::Interrupted {
                step: "the run".into(),
            }
        } else {
            Verdict::Failed {
                step: "the run".into(),
                error: error.to_string(),
            }
        };
    }
    if !cp.finished {
        let step = this_run
            .iter()
            .find(|(_, _, s)| s.state == State::Running)
            .map(|(e, p, s)| format!("the process stopped during {}", label(e, *p, s)))
            .unwrap_or_else(|| "the process stopped before the run finished".into());
        return Verdict::Interrupted { step };
    }
    let mut details = Vec::new();
    for (entity, phase, s) in &this_run {
        match phase {
            Phase::Load if s.failed.unwrap_or(0) > 0 => details.push(format!(
                "{entity}: {} item(s) could not be written (reports/failed/{entity}.jsonl)",
                thousands(s.failed.unwrap_or(0))
            )),
            Phase::Verify if s.rejected > 0 => details.push(format!(
                "{entity}: {}",
                s.reasons
                    .iter()
                    .map(|(k, v)| format!("{} {}", thousands(*v), k.replace('_', " ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => {}
        }
    }
    if !details.is_empty() {
        return Verdict::Differences { details };
    }
    let ran: Vec<Phase> = Phase::ALL
        .into_iter()
        .filter(|p| this_run.iter().any(|(_, q, _)| q == p))
        .collect();
    let verified_all = cp.plan.entities.iter().all(|e| {
        this_run
            .iter()
            .any(|(x, p, s)| *x == e.as_str() && *p == Phase::Verify && s.state == State::Done)
    });
    if verified_all && !cp.plan.entities.is_empty() {
        let items = this_run
            .iter()
            .filter(|(_, p, _)| *p == Phase::Verify)
            .map(|(_, _, s)| s.records_out)
            .sum();
        return Verdict::Verified { items };
    }
    let dry_run = cp.plan.phases.contains(&Phase::Load) && !ran.contains(&Phase::Load);
    Verdict::Partial { ran, dry_run }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Plan;

    fn cp(phases: Vec<Phase>) -> Checkpoint {
        let dir = std::env::temp_dir().join("migrate-verdict-unused");
        Checkpoint::new_run(
            &dir,
            Plan {
                phases,
                entities: vec!["buyers".into()],
            },
            None,
        )
    }

    fn put(cp: &mut Checkpoint, phase: Phase, f: impl FnOnce(&mut Step)) {
        let mut s = Step::start(&cp.run_id);
        s.state = State::Done;
        f(&mut s);
        cp.entities
            .entry("buyers".into())
            .or_default()
            .insert(phase, s);
    }

    #[test]
    fn verdicts() {
        let mut c = cp(Phase::ALL.to_vec());
        c.finished = true;
        for p in Phase::ALL {
            put(&mut c, p, |s| s.records_out = 10);
        }
        assert_eq!(decide(&c, None), Verdict::Verified { items: 10 });

        put(&mut c, Phase::Verify, |s| {
            s.rejected = 2;
            s.reasons.insert("missing".into(), 2);
        });
        assert!(matches!(decide(&c, None), Verdict::Differences { .. }));

        put(&mut c, Phase::Load, |s| {
            s.state = State::Interrupted;
            s.confirmed = Some(5);
            s.records_in = 10;
        });
        c.finished = false;
        let v = decide(&c, None);
        assert_eq!(
            v,
            Verdict::Interrupted {
                step: "buyers load at item 5 of 10".into()
            }
        );
        assert!(v.detail()[0].contains("migrate --resume"));

        let mut d = cp(Phase::ALL.to_vec());
        d.finished = true;
        for p in [Phase::Extract, Phase::Transform, Phase::Validate] {
            put(&mut d, p, |_| {});
        }
        assert!(matches!(
            decide(&d, None),
            Verdict::Partial { dry_run: true, .. }
        ));
        assert!(matches!(
            decide(&d, Some("DynamoDB: no such table")),
            Verdict::Failed { .. }
        ));
    }
}
