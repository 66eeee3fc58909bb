//! The command line (README "Usage"), with clap. Entity names come from the
//! registry, so a new entity is accepted here without touching this file.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

use crate::checkpoint::Phase;

/// Moves the legacy S9 entities from PostgreSQL into DynamoDB in five phases:
/// extract, transform, validate, load, verify.
#[derive(Debug, Parser)]
#[command(name = "migrate", version, about, long_about = None)]
#[command(group(clap::ArgGroup::new("mode").args(["full", "phase", "resume"])))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run all phases (for all entities, or those named with --entity).
    #[arg(long)]
    pub full: bool,

    /// Run one phase.
    #[arg(long, value_enum)]
    pub phase: Option<Phase>,

    /// Narrow the run to this entity (repeatable).
    #[arg(long = "entity", value_parser = entity_parser(), global = true)]
    pub entities: Vec<String>,

    /// Continue the last run from its checkpoint.
    #[arg(long)]
    pub resume: bool,

    /// Plan only: run what does not write to DynamoDB and print the load plan.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub common: Common,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Configuration file.
    #[arg(long, default_value = "config.json", global = true)]
    pub config: PathBuf,

    /// Data directory for artifacts, reports and the checkpoint [default: data].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,

    /// More detail on the console.
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Only warnings and errors on the console; plain progress lines instead of bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Cap on the write units sent per second by loads and rollbacks
    /// (overrides migration.maxWriteUnitsPerSecond).
    #[arg(long, global = true, value_name = "UNITS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_write_rate: Option<u64>,

    /// How loads write: `put` every validated item, or `sync` only the
    /// difference with the table, deleting what the source no longer has
    /// (overrides migration.loadMode).
    #[arg(long, global = true, value_name = "MODE", value_parser = ["put", "sync"])]
    pub load_mode: Option<String>,

    /// How loads reach the tables: `batch-write` into existing tables, or
    /// `s3-import`: parts uploaded to S3 and DynamoDB Import from S3, which
    /// creates each table (overrides target.loadVia).
    #[arg(long, global = true, value_name = "PATH", value_parser = ["batch-write", "s3-import"])]
    pub via: Option<String>,

    /// Stop gracefully before this much time has passed (e.g. 14m, 90s,
    /// 1h30m): requests in flight finish, the checkpoint is saved, exit 3.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub time_limit: Option<std::time::Duration>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Where the last run stands, per entity and phase.
    Status {
        /// Print the checkpoint's state as JSON, for scripts (docs/report.md).
        #[arg(long)]
        json: bool,
    },
    /// Write data/reports/report.html again from the data directory.
    Report,
    /// Put the entity's items back as they were before the migration first
    /// wrote to its table (its baseline; docs/rollback.md).
    Rollback {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Also revert items changed since the load (drift), which are
        /// otherwise left alone and listed in the rollback report.
        #[arg(long)]
        force: bool,
        /// Undo only the last load, which must be a sync: the items it
        /// overwrote or deleted come back as they were before it, and what
        /// it created is deleted (docs/cutover.md).
        #[arg(long)]
        last: bool,
    },
    /// The rollback baseline of an entity.
    Baseline {
        #[command(subcommand)]
        action: BaselineAction,
    },
    /// Delete everything under the data directory that holds personal data
    /// (artifacts, backups, record-level reports); keep the summaries.
    Purge {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Delete the backups too, although a rollback may still need them
        /// (only with --yes).
        #[arg(long, requires = "yes")]
        even_backups: bool,
    },
    /// The target tables, from the entities' definitions (docs/tables.md).
    Tables {
        #[command(subcommand)]
        action: TablesCommand,
    },
}

/// `migrate baseline …`.
#[derive(Debug, Subcommand)]
pub enum BaselineAction {
    /// Accept the entity's table as it is now as its new baseline (takes a
    /// fresh backup; later rollbacks go back to this state).
    Reset {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `migrate tables …`.
#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create the configured tables (all entities', or those named with
    /// --entity) with their keys and indexes, and wait until they are ACTIVE.
    /// A table that exists with the declared keys and indexes is left as it
    /// is; one with other keys or indexes stops the command (exit 2).
    Create {
        /// Delete each table first and create it empty (local endpoint only).
        #[arg(long)]
        recreate: bool,
        /// Seconds to wait for a table and its indexes to become ACTIVE.
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        timeout: u64,
    },
}

fn entity_parser() -> PossibleValuesParser {
    PossibleValuesParser::new(crate::entities::names())
}
