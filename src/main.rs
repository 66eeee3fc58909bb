//! The `migrate` binary: parses the command line, loads the configuration,
//! sets up logging and Ctrl-C, calls the library, prints the summary, and
//! maps the outcome to the exit status (0 success, 1 failure or differences,
//! 2 bad usage or configuration, 3 stopped at `--time-limit`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use migrate::checkpoint::Phase;
use migrate::cli::{BaselineAction, Cli, Command, TablesCommand};
use migrate::config::Config;
use migrate::runner::{self, Request};
use migrate::{Error, progress::Progress};

/// mimalloc: transform and validate allocate on one thread and free on
/// another millions of times; glibc's malloc spent a fifth of their CPU on
/// that (arena locks), mimalloc a fraction (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(cli));
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let mut message = e.to_string();
            if matches!(e, Error::Target { .. }) && e.class().retryable() {
                // docs/design.md, "Failures": the target may answer later.
                message.push_str(
                    " (still failing after every retry, so it may pass later: run the command again; \
                     a run goes on from its checkpoint with `migrate --resume`)",
                );
            }
            report_error(&message);
            ExitCode::from(e.exit_code() as u8)
        }
    };
    // Flush the JSON log only now, so the final error reaches it too.
    drop(LOG_GUARD.lock().map(|mut g| g.take()));
    code
}

/// One line for a failure: through the logger (console and JSON log) once
/// it is set up, plainly on stderr before that.
fn report_error(message: &str) {
    if LOG_GUARD.lock().map(|g| g.is_some()).unwrap_or(false) {
        tracing::error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// Keeps the log file's writer alive until `main` has logged the outcome.
static LOG_GUARD: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// `migrate tables create`: a setup command, so it logs to the console only
/// and leaves the data directory alone.
async fn tables_create(cli: &Cli, recreate: bool, timeout: u64) -> Result<ExitCode, Error> {
    let config = Config::load(&cli.common.config)?;
    let guard = migrate::logging::init(None, cli.common.verbose, cli.common.quiet, None)?;
    *LOG_GUARD.lock().expect("log guard") = guard;
    let entities = runner::resolve_entities(&cli.entities)?;
    let options = migrate::tables::CreateOptions {
        recreate,
        timeout: std::time::Duration::from_secs(timeout),
    };
    for outcome in migrate::tables::create_command(&config, &entities, options).await? {
        println!("{outcome}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let common = &cli.common;
    let data_dir_flag = common.data_dir.clone();
    if let Some(Command::Status { json }) = cli.command {
        // Read-only: takes no lock, so it works while another command runs.
        let dir = data_dir_flag
            .or_else(|| configured_data_dir(&common.config))
            .unwrap_or_else(|| PathBuf::from("data"));
        if json {
            println!("{}", migrate::status::json(&dir)?);
        } else {
            print!("{}", migrate::status::render(&dir)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Command::Report) = cli.command {
        // The configuration is shown when there is one; the page needs only
        // the data dir. Takes no lock: it reads, and replaces one file atomically.
        let config = if common.config.exists() {
            Some(Config::load(&common.config)?)
        } else {
            None
        };
        let dir = data_dir_flag
            .or_else(|| config.as_ref().and_then(|c| c.migration.data_dir.clone()))
            .unwrap_or_else(|| PathBuf::from("data"));
        if dir.join(migrate::crypt::dir::KEY_FILE).exists() {
            let key = config
                .as_ref()
                .and_then(|c| c.migration.artifact_key.as_ref());
            migrate::crypt::dir::open_data_dir(&dir, key.map(|k| k.expose()))?;
        }
        let path = migrate::report::html::write(&dir, config.as_ref(), None)?;
        println!("report: {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Command::Tables {
        action: TablesCommand::Create { recreate, timeout },
    }) = cli.command
    {
        return tables_create(&cli, recreate, timeout).await;
    }
    let rollback = match cli.command {
        Some(Command::Rollback { yes, force, last }) => {
            Some(migrate::backup::Options { yes, force, last })
        }
        _ => None,
    };
    let baseline_reset = match cli.command {
        Some(Command::Baseline {
            action: BaselineAction::Reset { yes },
        }) => Some(yes),
        _ => None,
    };
    let purge = match cli.command {
        Some(Command::Purge { yes, even_backups }) => {
            Some(migrate::purge::PurgeRequest { yes, even_backups })
        }
        _ => None,
    };
    let phases = if cli.full {
        Phase::ALL.to_vec()
    } else if let Some(p) = cli.phase {
        vec![p]
    } else if cli.resume || rollback.is_some() || baseline_reset.is_some() || purge.is_some() {
        Vec::new()
    } else if cli.dry_run {
        Phase::ALL.to_vec()
    } else {
        return Err(Error::Usage(
            "say what to run: --full, --phase <extract|transform|validate|load|verify>, --resume, or a subcommand (status, rollback, baseline reset); see --help".into(),
        ));
    };

    // Nothing is created or written before the configuration is known good.
    let mut config = Config::load(&common.config)?;
    if let Some(cap) = common.max_write_rate {
        config.migration.max_write_units_per_second = Some(cap);
    }
    if let Some(mode) = &common.load_mode {
        config.migration.load_mode = if mode == "sync" {
            migrate::config::LoadMode::Sync
        } else {
            migrate::config::LoadMode::Put
        };
    }
    if let Some(via) = &common.via {
        config.target.load_via = if via == "s3-import" {
            migrate::config::LoadVia::S3Import
        } else {
            migrate::config::LoadVia::BatchWrite
        };
    }
    let data_dir = data_dir_flag
        .or_else(|| config.migration.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("data"));
    // Absolute, so every path recorded in the checkpoint and the reports
    // means the same whatever directory a later command runs from.
    let data_dir = std::path::absolute(&data_dir).map_err(|e| Error::io(&data_dir, e))?;
    // Every other command writes: one at a time per data directory, before
    // anything (the log included) is written there (docs/safety.md).
    let lock = migrate::lock::writer(&data_dir)?;
    let progress = Progress::new(common.quiet);
    let guard = migrate::logging::init(
        Some(&data_dir),
        common.verbose,
        common.quiet,
        progress.multi().cloned(),
    )?;
    *LOG_GUARD.lock().expect("log guard") = guard;
    for path in &lock.tidied().removed {
        tracing::info!("removed {}, left by an interrupted command", path.display());
    }
    for path in &lock.tidied().tightened {
        tracing::info!("made {} private (0700)", path.display());
    }

    if let Some(request) = purge {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let report = migrate::purge::purge(&data_dir, request, &command)?;
        println!(
            "purged {} file(s), {} bytes, under {} (list: {})",
            report.deleted.len(),
            report.bytes,
            data_dir.display(),
            data_dir.join("reports/purge.json").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // An encrypted data directory: the key is checked before anything is
    // read or written (docs/encryption.md).
    migrate::crypt::dir::open_data_dir(
        &data_dir,
        config.migration.artifact_key.as_ref().map(|k| k.expose()),
    )?;

    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!(
                "Ctrl-C: finishing the requests in flight and saving the checkpoint (Ctrl-C again to abort)"
            );
            flag.store(true, Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    // --time-limit: the same graceful stop as Ctrl-C, a little before the
    // limit, so the requests in flight finish and the checkpoint is saved.
    let deadline = Arc::new(AtomicBool::new(false));
    if let Some(limit) = common.time_limit {
        let (flag, hit) = (cancel.clone(), deadline.clone());
        tokio::spawn(async move {
            tokio::time::sleep(stop_before(limit)).await;
            tracing::warn!(
                "time limit {}: finishing the requests in flight and saving the checkpoint",
                humantime::format_duration(limit)
            );
            hit.store(true, Ordering::SeqCst);
            flag.store(true, Ordering::SeqCst);
        });
    }
    let at_limit = |e: Error, next: String| match e {
        Error::Interrupted(_) if deadline.load(Ordering::SeqCst) => Error::TimeLimit(next),
        e => e,
    };

    if let Some(options) = rollback {
        let entity = one_entity(&cli.entities, "rollback")?;
        let reports = data_dir.join("reports").join("rollback_report.json");
        let report =
            migrate::backup::rollback_command(config, data_dir, progress, cancel, entity, options)
                .await
                .map_err(|e| {
                    at_limit(
                        e,
                        format!("migrate rollback --entity {} again", entity.name),
                    )
                })?;
        println!(
            "rolled back {} in {}: {} keys checked, {} items deleted, {} restored, {} already as before, \
             {} changed since the load{} (report: {})",
            report.entity,
            report.table,
            report.checked,
            report.deleted,
            report.restored,
            report.unchanged,
            report.drift,
            if report.forced {
                " and reverted (--force)"
            } else {
                " and left alone"
            },
            reports.display()
        );
        if report.drift > 0 && !report.forced {
            report_error(&format!(
                "{} item(s) of {} changed since the load were not rolled back (listed in {}); \
                 `migrate rollback --entity {} --force` reverts them too",
                report.drift, report.entity, report.drift_file, report.entity
            ));
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(yes) = baseline_reset {
        let entity = one_entity(&cli.entities, "baseline reset")?;
        let baseline =
            migrate::backup::reset_command(config, data_dir, progress, cancel, entity, yes).await?;
        let backup = baseline.backup.expect("a reset takes a backup");
        println!(
            "new baseline of {}: table {} as of {} ({} items, backup {})",
            entity.name,
            backup.table,
            baseline.pinned_at.format("%Y-%m-%d %H:%M:%S UTC"),
            backup.items,
            backup.path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let request = Request {
        phases,
        entities: cli.entities.clone(),
        resume: cli.resume,
        dry_run: cli.dry_run,
    };
    let started = std::time::Instant::now();
    let shown = config.clone();
    let metrics = migrate::metrics::start(&config, &data_dir).await;
    let outcome = runner::run(config, data_dir.clone(), request, progress, cancel)
        .await
        .map_err(|e| at_limit(e, "migrate --resume".into()));
    if let Some(metrics) = metrics {
        metrics.finish().await;
    }
    let cp = migrate::checkpoint::Checkpoint::load(&data_dir)
        .ok()
        .flatten();
    if let Some(cp) = &cp {
        println!("{}", migrate::report::summary(cp));
    }
    // The HTML report, whatever the outcome (success, failure or interruption).
    let failure = outcome.as_ref().err().map(|e| e.to_string());
    let page = match &cp {
        Some(_) => {
            migrate::report::html::write(&data_dir, Some(&shown), failure.as_deref()).map(Some)
        }
        None => Ok(None),
    };
    let outcome = match (outcome, page) {
        (Err(e), Err(page_error)) => {
            report_error(&format!(
                "the HTML report could not be written: {page_error}"
            ));
            return Err(e);
        }
        (Err(e), Ok(Some(path))) => {
            println!("report: {}", path.display());
            return Err(e);
        }
        (Err(e), Ok(None)) => return Err(e),
        (Ok(_), Err(page_error)) => return Err(page_error),
        (Ok(outcome), Ok(path)) => {
            if let Some(path) = path {
                println!("report: {}", path.display());
            }
            outcome
        }
    };
    println!(
        "took {:.1}s; reports in {}",
        started.elapsed().as_secs_f64(),
        data_dir.join("reports").display()
    );
    if outcome.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &outcome.problems {
            report_error(p);
        }
        Ok(ExitCode::from(1))
    }
}

/// When a run with `--time-limit limit` starts stopping: a tenth of the
/// limit before it (at least one second, at most one minute), time for the
/// requests in flight and the checkpoint.
fn stop_before(limit: std::time::Duration) -> std::time::Duration {
    let grace = (limit / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    limit.saturating_sub(grace)
}

/// `migration.dataDir` of the configuration file, read leniently (status
/// needs no credentials): `None` when the file is missing or does not say.
fn configured_data_dir(config: &std::path::Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .pointer("/migration/dataDir")?
        .as_str()
        .map(PathBuf::from)
}

/// The one `--entity` a subcommand takes.
fn one_entity(
    entities: &[String],
    what: &str,
) -> Result<&'static migrate::entities::Entity, Error> {
    let [entity] = entities else {
        return Err(Error::Usage(format!("{what} takes exactly one --entity")));
    };
    Ok(migrate::entities::find(entity).expect("clap checked the name"))
}
