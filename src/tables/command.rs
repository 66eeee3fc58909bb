//! The `migrate tables create` command: check every table, then create the
//! missing ones and wait for them; what it did, one line per table.

use std::fmt;
use std::time::Duration;

use super::{TableSpec, compare, create, delete, describe, specs, wait_active};
use crate::config::Config;
use crate::dynamo::{self, RetryPolicy};
use crate::entities::Entity;
use crate::error::{Error, Result};

/// What `tables create` did with one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Recreated,
    LeftAsItIs,
}

/// One table's outcome, printed as one line (plus its notes).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub spec: TableSpec,
    pub action: Action,
    pub notes: Vec<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        let indexes = if s.indexes.is_empty() {
            "no index".to_string()
        } else {
            s.indexes
                .iter()
                .map(|i| format!("{} on {}", i.name, i.key))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let what = match self.action {
            Action::Created => "created, ACTIVE",
            Action::Recreated => "deleted and created again, ACTIVE",
            Action::LeftAsItIs => "exists with the declared keys and indexes: left as it is",
        };
        write!(
            f,
            "table {} ({}): {what} — {}; {indexes}",
            s.name,
            s.entities.join(", "),
            s.key
        )?;
        for n in &self.notes {
            write!(f, "\n  note: {n}")?;
        }
        Ok(())
    }
}

/// Options of `migrate tables create`.
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// Delete existing tables first (a local endpoint only).
    pub recreate: bool,
    /// How long to wait for a table to become ACTIVE (or to be deleted).
    pub timeout: Duration,
}

/// `migrate tables create`: every table of `entities`, checked, then the
/// missing ones created and waited for.
pub async fn create_command(
    config: &Config,
    entities: &[&'static Entity],
    options: CreateOptions,
) -> Result<Vec<Outcome>> {
    let specs = specs(config, entities)?;
    let local = config
        .target
        .endpoint
        .as_deref()
        .is_some_and(dynamo::is_loopback);
    if options.recreate && !local {
        return Err(Error::Usage(
            "--recreate deletes the tables and everything in them: it is allowed only against a local endpoint (target.endpoint on localhost or 127.x)".into(),
        ));
    }
    let client = dynamo::client(&config.target, &config.migration).await;
    let policy = RetryPolicy::from_config(&config.migration);
    let billing = config.target.billing;

    // Every table checked before anything is created or changed.
    let mut existing = Vec::new();
    let mut wrong = Vec::new();
    for spec in &specs {
        let desc = describe(&client, &spec.name, &policy).await?;
        if let (Some(d), false) = (&desc, options.recreate)
            && let Err(problems) = compare(spec, d, billing)
        {
            wrong.push(mismatch_message(config, spec, &problems));
        }
        existing.push(desc.is_some());
    }
    if !wrong.is_empty() {
        return Err(Error::TableMismatch(format!(
            "{}; nothing was created or changed",
            wrong.join("; ")
        )));
    }

    let mut outcomes = Vec::new();
    for (spec, exists) in specs.into_iter().zip(existing) {
        let mut action = Action::Created;
        if exists && options.recreate {
            tracing::info!("deleting table {} (--recreate)", spec.name);
            delete(
                &crate::dynamo::Sdk(client.clone()),
                &spec.name,
                options.timeout,
                &policy,
            )
            .await?;
            action = Action::Recreated;
        } else if exists {
            action = Action::LeftAsItIs;
        }
        if action != Action::LeftAsItIs && !create(&client, &spec, billing, &policy).await? {
            // Created meanwhile by someone else: checked like an existing one.
            action = Action::LeftAsItIs;
        }
        let desc = wait_active(&client, &spec.name, options.timeout, &policy).await?;
        let notes = compare(&spec, &desc, billing)
            .map_err(|problems| Error::TableMismatch(mismatch_message(config, &spec, &problems)))?;
        outcomes.push(Outcome {
            spec,
            action,
            notes,
        });
    }
    Ok(outcomes)
}

/// The refusal for a table that exists in another shape.
fn mismatch_message(config: &Config, spec: &TableSpec, problems: &[String]) -> String {
    let keys: Vec<String> = spec
        .entities
        .iter()
        .map(|e| format!("target.{e}Table"))
        .collect();
    format!(
        "table {} ({}) exists but does not match the entities' definition: {}. Drop or rename it, or name another table in {} of {}",
        spec.name,
        spec.entities.join(", "),
        problems.join(", "),
        keys.join(" / "),
        config.path.display()
    )
}
