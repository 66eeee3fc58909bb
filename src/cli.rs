//! The command line of SPEC §2, with clap. Entity names come from the
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
    /// Put a table back as it was before the last load of the entity.
    Rollback {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

fn entity_parser() -> PossibleValuesParser {
    PossibleValuesParser::new(crate::entities::names())
}
