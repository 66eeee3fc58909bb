//! Logging: human-readable lines on the console (printed above any progress
//! bars), JSON lines in `data/reports/migration.log`.

use std::io::Write;
use std::path::Path;

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::error::Result;

/// Writes console log lines to stderr, suspending the bars while it does.
#[derive(Clone)]
pub struct Console(Option<MultiProgress>);

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Some(m) => m.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Console {
    type Writer = Console;
    fn make_writer(&'a self) -> Console {
        self.clone()
    }
}

/// Installs the subscriber; keep the guard alive until the end of `main`.
pub fn init(
    data_dir: Option<&Path>,
    verbose: bool,
    quiet: bool,
    multi: Option<MultiProgress>,
) -> Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    let level = if verbose {
        "debug"
    } else if quiet {
        "warn"
    } else {
        "info"
    };
    let console_filter = EnvFilter::try_from_env("MIGRATE_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},aws=warn,hyper=warn,tokio_postgres=warn,rustls=warn"
        ))
    });
    let console = tracing_subscriber::fmt::layer()
        .with_writer(Console(multi))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .with_filter(console_filter);
    let (file_layer, guard) = match data_dir {
        Some(dir) => {
            let reports = dir.join("reports");
            crate::artifact::create_private_dir(&reports)?;
            let path = reports.join("migration.log");
            // Created owner-only before the appender opens it for appending.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode_owner_only()
                .open(&path)
                .map_err(|e| crate::Error::io(&path, e))?;
            let appender = tracing_appender::rolling::never(&reports, "migration.log");
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(writer)
                .with_filter(EnvFilter::new(
                    "info,aws=warn,hyper=warn,tokio_postgres=warn,rustls=warn",
                ));
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(console)
        .with(file_layer)
        .init();
    Ok(guard)
}

trait OwnerOnly {
    fn mode_owner_only(&mut self) -> &mut Self;
}

impl OwnerOnly for std::fs::OpenOptions {
    fn mode_owner_only(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

use tracing_subscriber::Layer as _;
