//! Index pre-flight: before a load or a verify, each entity's table must
//! hold every index the entity declares ([`crate::entities::TableDef`]), with
//! the declared key schema and projection, and `ACTIVE`. Only the entity's
//! own indexes are checked: a table shared by several entities may hold the
//! union of their indexes, and indexes nobody declares are fine
//! (docs/checks.md). A difference stops the command with exit 2, naming the
//! table, the index and the difference, before anything is written.

use aws_sdk_dynamodb::types::{IndexStatus, TableDescription};

use crate::config::Config;
use crate::dynamo::{self, RetryPolicy, Target};
use crate::entities::Entity;
use crate::error::{Error, Result};
use crate::tables::{self, TableSpec};

/// The differences between `desc` and the indexes `entity` declares.
pub fn differences(
    config: &Config,
    entity: &Entity,
    table: &str,
    desc: &TableDescription,
) -> Vec<String> {
    let def = entity.table;
    let spec = TableSpec {
        name: table.to_string(),
        entities: vec![entity.name],
        key: def.key,
        indexes: def.indexes.to_vec(),
    };
    let mut out = tables::compare(&spec, desc, config.target.billing)
        .err()
        .unwrap_or_default();
    for index in def.indexes {
        let status = desc
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(index.name))
            .and_then(|g| g.index_status());
        if let Some(s) = status.filter(|s| **s != IndexStatus::Active) {
            out.push(format!(
                "index {} is {}, not ACTIVE",
                index.name,
                s.as_str()
            ));
        }
    }
    out
}

/// Checks the declared indexes of every entity of the command; returns one
/// line per entity for the log (and the dry run).
pub async fn check(
    target: &dyn Target,
    config: &Config,
    entities: &[&'static Entity],
    policy: &RetryPolicy,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut lines = Vec::new();
    for e in entities {
        let indexes = e.table.indexes;
        if indexes.is_empty() {
            continue;
        }
        let table = config.target.table_for(e.name, &config.path)?;
        let Some(desc) = dynamo::describe_table(target, table, policy).await? else {
            // A missing table is the table check's to report (exit 1, naming
            // it), as it was before indexes were checked.
            continue;
        };
        let found = differences(config, e, table, &desc);
        if found.is_empty() {
            let names: Vec<String> = indexes
                .iter()
                .map(|i| format!("{} on {}", i.name, i.key))
                .collect();
            lines.push(format!(
                "table {table} ({}): indexes {} present and ACTIVE",
                e.name,
                names.join(", ")
            ));
        } else {
            problems.push(format!("table {table} ({}): {}", e.name, found.join("; ")));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Preflight(format!(
            "index check failed, nothing was written: {}. Create the indexes with `migrate tables create` \
             (or fix the table) first (docs/checks.md)",
            problems.join(" | ")
        )));
    }
    for l in &lines {
        tracing::info!("index check: {l}");
    }
    Ok(lines)
}
