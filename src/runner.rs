//! The phase runner: decides what runs in which order, checks dependencies
//! between entities and phases, opens the one source snapshot and the one
//! DynamoDB client, records every step in the checkpoint, and replays the
//! last command on `--resume`. It knows no entity by name: everything entity
//! specific comes through the [`Entity`] trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::Utc;

use crate::checkpoint::{Checkpoint, Phase, Plan, State, Step};
use crate::config::Config;
use crate::entities::{self, Entity};
use crate::error::{Error, Result};
use crate::phases;
use crate::progress::Progress;

use crate::ctx::{Ctx, artifact_path, release_memory};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub phases: Vec<Phase>,
    /// Empty means every registered entity.
    pub entities: Vec<String>,
    pub resume: bool,
    pub dry_run: bool,
}

/// The outcome of a command.
pub struct Outcome {
    pub checkpoint: Checkpoint,
    /// Non-fatal problems that still make the exit status 1 (failed items,
    /// verification differences).
    pub problems: Vec<String>,
}

/// Resolves entity names to registered entities, in dependency order.
pub fn resolve_entities(names: &[String]) -> Result<Vec<&'static Entity>> {
    let all = entities::registry();
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    for n in names {
        if entities::find(n).is_none() {
            return Err(Error::Usage(format!(
                "unknown entity {n:?}; valid entities: {}",
                entities::names().join(", ")
            )));
        }
    }
    Ok(all
        .iter()
        .copied()
        .filter(|e| names.iter().any(|n| n == e.name))
        .collect())
}

/// Runs a command: a new run, or the resumption of the last one.
pub async fn run(
    config: Config,
    data_dir: PathBuf,
    request: Request,
    progress: Progress,
    cancel: Arc<AtomicBool>,
) -> Result<Outcome> {
    crate::artifact::create_private_dir(&data_dir)?;
    let previous = Checkpoint::load(&data_dir)?;
    let mut cp = if request.resume {
        let cp = previous.ok_or_else(|| {
            Error::Checkpoint(format!(
                "nothing to resume: {} has no checkpoint",
                data_dir.display()
            ))
        })?;
        if cp.finished {
            return Err(Error::Checkpoint(format!(
                "nothing to resume: run {} finished; start a new one",
                cp.run_id
            )));
        }
        tracing::info!(run_id = %cp.run_id, "resuming run: phases {:?}, entities {:?}", cp.plan.phases, cp.plan.entities);
        check_unchanged(&data_dir, &cp)?;
        cp
    } else {
        let entities = resolve_entities(&request.entities)?;
        let mut phases = request.phases.clone();
        // validateAfterLoad decides whether a multi-phase run ends with verify;
        // `--phase verify` alone always verifies.
        if phases.len() > 1 && !config.migration.validate_after_load {
            phases.retain(|p| *p != Phase::Verify);
        }
        let plan = Plan {
            phases,
            entities: entities.iter().map(|e| e.name.to_string()).collect(),
        };
        Checkpoint::new_run(&data_dir, plan, previous)
    };
    cp.save()?;
    let entity_list = resolve_entities(&cp.plan.entities)?;
    let dry_run = request.dry_run || config.migration.dry_run;
    let mut ctx = Ctx::standalone(config, data_dir, progress, cancel, cp.run_id.clone());
    ctx.first_run_started_at = cp.first_start();
    ctx.dry_run = dry_run;
    ctx.resume = request.resume;
    let span = tracing::info_span!("run", run_id = %ctx.run_id);
    let _guard = span.enter();
    let mut problems = Vec::new();
    let phases = cp.plan.phases.clone();

    // The source's columns before anything is extracted (docs/checks.md).
    if phases.contains(&Phase::Extract) {
        crate::preflight::drift::check(&ctx.config.source, &entity_list).await?;
    }

    // Entities loaded through S3 import (a resumed import stays one): their
    // tables must not exist yet, so they have their own pre-flight
    // (docs/import.md).
    let importing: Vec<&'static Entity> = if phases.contains(&Phase::Load) {
        entity_list
            .iter()
            .copied()
            .filter(|e| {
                ctx.config.target.load_via == crate::config::LoadVia::S3Import
                    || cp
                        .step(e.name, Phase::Load)
                        .is_some_and(|s| s.run_id == cp.run_id && s.import.is_some())
            })
            .collect()
    } else {
        Vec::new()
    };
    if !importing.is_empty() {
        crate::import::preflight(&ctx, &cp, &importing).await?;
    }
    let existing: Vec<&'static Entity> = entity_list
        .iter()
        .copied()
        .filter(|e| !importing.iter().any(|i| i.name == e.name))
        .collect();

    // Fail before any work when a table the command will need is missing.
    let needs_target = dry_run
        || phases
            .iter()
            .any(|p| matches!(p, Phase::Load | Phase::Verify));
    if needs_target && !existing.is_empty() {
        let entity_list = &existing;
        let policy = crate::dynamo::RetryPolicy::from_config(&ctx.config.migration);
        let target = ctx.target().await;
        for e in entity_list {
            let table = ctx.table(e)?.to_string();
            crate::dynamo::check_table(&*target, &table, &policy).await?;
        }
        tracing::info!("target tables checked: {}", entity_list.len());
        crate::preflight::indexes::check(&*target, &ctx.config, entity_list, &policy).await?;
        if dry_run || phases.contains(&Phase::Load) {
            let tables = entity_list
                .iter()
                .map(|e| ctx.table(e).map(str::to_string))
                .collect::<Result<Vec<_>>>()?;
            crate::pitr::preflight(
                ctx.dynamo().await,
                &tables,
                ctx.config.migration.point_in_time_recovery,
                dry_run,
                &policy,
            )
            .await?;
        }
    }

    for phase in phases {
        if dry_run && matches!(phase, Phase::Load | Phase::Verify) {
            continue;
        }
        let todo: Vec<&'static Entity> = entity_list
            .iter()
            .copied()
            .filter(|e| {
                !(ctx.resume
                    && cp.is_done(e.name, phase)
                    && cp
                        .step(e.name, phase)
                        .is_some_and(|s| s.run_id == cp.run_id))
            })
            // A rolled-back entity is not loaded again by `--resume` (docs/rollback.md).
            .filter(|e| {
                let skip = ctx.resume
                    && matches!(phase, Phase::Load | Phase::Verify)
                    && cp.rolled_back(e.name);
                if skip {
                    tracing::warn!(
                        "{} was rolled back since this run started: not resuming its {phase}; \
                         `migrate --phase load --entity {}` loads it again",
                        e.name,
                        e.name
                    );
                }
                !skip
            })
            .collect();
        if todo.is_empty() {
            continue;
        }
        for e in &todo {
            check_dependencies(&cp, &cp.plan.clone(), e, phase)?;
        }
        let result = match phase {
            // One snapshot: a resumed extract reads every entity again.
            Phase::Extract => phases::extract::run(&ctx, &mut cp, &entity_list).await,
            _ => {
                let mut r = Ok(());
                for e in &todo {
                    // Ctrl-C or --time-limit between steps: the next one waits for --resume.
                    if ctx.cancelled() {
                        r = Err(Error::Interrupted(format!(
                            "before the {phase} of {}",
                            e.name
                        )));
                        break;
                    }
                    r = run_step(&ctx, &mut cp, e, phase, &mut problems).await;
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
        };
        result?;
    }
    if dry_run {
        phases::plan::print(&ctx, &entity_list).await?;
    }
    cp.finished = true;
    cp.save()?;
    Ok(Outcome {
        checkpoint: cp,
        problems,
    })
}

async fn run_step(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    entity: &'static Entity,
    phase: Phase,
    problems: &mut Vec<String>,
) -> Result<()> {
    let span = tracing::info_span!("phase", entity = entity.name, phase = phase.as_str());
    let _guard = span.enter();
    let previous = cp.step(entity.name, phase).cloned();
    let mut step = Step::start(&ctx.run_id);
    if phase == Phase::Load
        && ctx.resume
        && previous.as_ref().is_some_and(|p| p.run_id == ctx.run_id)
    {
        // Continue this run's load where it was confirmed.
        step = previous.clone().expect("checked");
        step.state = State::Running;
        step.error = None;
        // Time is measured from the resumption: the process was not running in between.
        step.started_at = Utc::now();
        step.finished_at = None;
    }
    cp.put(entity.name, phase, step.clone())?;
    let unit = phases::Unit {
        ctx,
        cp,
        entity,
        step: &mut step,
    };
    let result = phases::run(phase, unit).await;
    step.finished_at = Some(Utc::now());
    release_memory();
    match result {
        Ok(outcome) => {
            problems.extend(outcome.record(&mut step));
            step.state = State::Done;
            cp.put(entity.name, phase, step)?;
            Ok(())
        }
        Err(e) => {
            step.state = if matches!(e, Error::Interrupted(_)) {
                State::Interrupted
            } else {
                State::Failed
            };
            step.error = Some(e.to_string());
            cp.put(entity.name, phase, step)?;
            Err(e)
        }
    }
}

/// Refuses to resume when an artifact a finished step of this run wrote has
/// changed since (edited, truncated, or rewritten by another command).
fn check_unchanged(data_dir: &Path, cp: &Checkpoint) -> Result<()> {
    for (entity, steps) in &cp.entities {
        for (phase, step) in steps {
            let (Some(sha), true) = (
                &step.output_sha256,
                step.run_id == cp.run_id && step.state == State::Done,
            ) else {
                continue;
            };
            if phase.artifact_dir().is_none() {
                continue;
            }
            let path = artifact_path(data_dir, *phase, entity);
            let now = crate::artifact::ArtifactReader::verify(&path)
                .map_err(|e| Error::Checkpoint(format!("cannot resume run {}: {e}", cp.run_id)))?;
            if &now.sha256 != sha {
                return Err(Error::Checkpoint(format!(
                    "cannot resume run {}: {} changed since {entity} {phase} wrote it (SHA-256 {} then, {} now); \
                     start a new run",
                    cp.run_id,
                    path.display(),
                    sha,
                    now.sha256
                )));
            }
        }
    }
    Ok(())
}

/// Refuses to run `phase` of `entity` before what it needs.
fn check_dependencies(cp: &Checkpoint, plan: &Plan, entity: &Entity, phase: Phase) -> Result<()> {
    let needs = |dep: &str, dep_phase: Phase| -> Result<()> {
        let planned_now =
            plan.phases.contains(&dep_phase) && plan.entities.iter().any(|e| e == dep);
        if planned_now || cp.is_done(dep, dep_phase) {
            Ok(())
        } else {
            Err(Error::Dependency(format!(
                "{} {phase} needs {dep} {dep_phase} first: run `migrate --phase {dep_phase} --entity {dep}`",
                entity.name
            )))
        }
    };
    if let Some(prev) = match phase {
        Phase::Transform => Some(Phase::Extract),
        Phase::Validate => Some(Phase::Transform),
        Phase::Load => Some(Phase::Validate),
        Phase::Extract | Phase::Verify => None,
    } {
        needs(entity.name, prev)?;
    }
    if matches!(phase, Phase::Validate | Phase::Load) {
        for dep in entity.dependencies() {
            needs(dep, phase)?;
        }
    }
    Ok(())
}
