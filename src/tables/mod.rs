//! `migrate tables create`: the target tables built from the entities' own
//! definitions ([`crate::entities::TableDef`]), see docs/tables.md.
//!
//! A table's definition is the key schema of the entities configured to it
//! and the union of their indexes (single-table design: several entities may
//! share one table). Every existing table is checked before anything is
//! created: one with another key schema, or with a declared index missing or
//! different, stops the command (exit 2) with nothing created or changed. A
//! table that matches is left as it is; a missing one is created (on-demand
//! unless `target.billingMode` says `PROVISIONED`) and waited for until it
//! and its indexes are ACTIVE. The scratch table of the dry run's estimate
//! goes through the same [`create`] and [`delete`].

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType, TableDescription};

use crate::config::{Billing, Config};
use crate::entities::table::{Attr, Index, Key};
use crate::entities::{self, Entity};
use crate::error::{Error, Result};

mod command;
mod ops;

pub use command::{Action, CreateOptions, Outcome, create_command};
pub use ops::{Definition, create, delete, describe, wait_active};

/// One table to create: its name, the entities configured to it, and the
/// union of their definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub name: String,
    pub entities: Vec<&'static str>,
    pub key: Key,
    pub indexes: Vec<Index>,
}

impl TableSpec {
    /// The same definition under another name (the estimate's scratch table).
    pub fn renamed(&self, name: String) -> TableSpec {
        TableSpec {
            name,
            ..self.clone()
        }
    }

    /// Every key attribute of the table and its indexes, once each.
    fn attributes(&self) -> Vec<Attr> {
        let mut out: Vec<Attr> = Vec::new();
        for a in self
            .key
            .attrs()
            .chain(self.indexes.iter().flat_map(|i| i.key.attrs()))
        {
            if !out.iter().any(|o| o.name == a.name) {
                out.push(a);
            }
        }
        out
    }
}

/// The tables of `entities`: one per distinct configured table name, in
/// registry order. Every registered entity configured to the same table
/// contributes its indexes, whether it was named or not, so the table is
/// right for all of them. Conflicting declarations are a configuration error.
pub fn specs(config: &Config, entities: &[&'static Entity]) -> Result<Vec<TableSpec>> {
    let fail = |message: String| Error::Config {
        path: config.path.clone(),
        message,
    };
    let mut names: Vec<&str> = Vec::new();
    for e in entities {
        let name = config.target.table_for(e.name, &config.path)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut out = Vec::new();
    for name in names {
        let sharing: Vec<&'static Entity> = entities::registry()
            .iter()
            .copied()
            .filter(|e| config.target.tables.get(e.name).map(String::as_str) == Some(name))
            .collect();
        let first = sharing[0];
        let mut spec = TableSpec {
            name: name.to_string(),
            entities: sharing.iter().map(|e| e.name).collect(),
            key: first.table.key,
            indexes: Vec::new(),
        };
        for e in &sharing {
            let def = e.table;
            if def.key != spec.key {
                return Err(fail(format!(
                    "table {name} is shared by {} (key {}) and {} (key {}): entities sharing a table must declare the same key schema",
                    first.name, spec.key, e.name, def.key
                )));
            }
            for index in def.indexes {
                match spec.indexes.iter().find(|i| i.name == index.name) {
                    None => spec.indexes.push(*index),
                    Some(i) if i == index => {}
                    Some(i) => {
                        return Err(fail(format!(
                            "table {name}: index {} is declared twice, differently ({} projecting {}, and {} projecting {}) by the entities sharing it ({})",
                            index.name,
                            i.key,
                            i.projection.as_str(),
                            index.key,
                            index.projection.as_str(),
                            spec.entities.join(", ")
                        )));
                    }
                }
            }
        }
        let attrs = spec.attributes();
        for a in spec
            .key
            .attrs()
            .chain(spec.indexes.iter().flat_map(|i| i.key.attrs()))
        {
            if let Some(other) = attrs.iter().find(|o| o.name == a.name && o.kind != a.kind) {
                return Err(fail(format!(
                    "table {name}: attribute {} is a key of type {} in one place and {} in another",
                    a.name,
                    a.kind.as_str(),
                    other.kind.as_str()
                )));
            }
        }
        out.push(spec);
    }
    Ok(out)
}

/// A key schema as DynamoDB describes it, in the form of [`Key`]'s
/// `Display` (`PK (S, HASH) + SK (S, RANGE)`), for comparison and messages.
fn described_key(elements: &[KeySchemaElement], types: &BTreeMap<&str, &str>) -> String {
    let mut hash = Vec::new();
    let mut range = Vec::new();
    for k in elements {
        let name = k.attribute_name();
        let t = types.get(name).copied().unwrap_or("?");
        match k.key_type() {
            KeyType::Hash => hash.push(format!("{name} ({t}, HASH)")),
            _ => range.push(format!("{name} ({t}, RANGE)")),
        }
    }
    hash.extend(range);
    hash.join(" + ")
}

/// Compares a table as described with its spec. `Ok` holds notes on what
/// differs harmlessly (an index no entity declares, another billing mode);
/// `Err` the differences that make the table wrong for the entities.
pub fn compare(
    spec: &TableSpec,
    desc: &TableDescription,
    billing: Billing,
) -> std::result::Result<Vec<String>, Vec<String>> {
    let types: BTreeMap<&str, &str> = desc
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name(), a.attribute_type().as_str()))
        .collect();
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let have = described_key(desc.key_schema(), &types);
    if have != spec.key.to_string() {
        problems.push(format!("key schema {have}, expected {}", spec.key));
    }
    let gsis = desc.global_secondary_indexes();
    for index in &spec.indexes {
        let Some(g) = gsis.iter().find(|g| g.index_name() == Some(index.name)) else {
            problems.push(format!("index {} is missing", index.name));
            continue;
        };
        let have = described_key(g.key_schema(), &types);
        if have != index.key.to_string() {
            problems.push(format!(
                "index {} has key {have}, expected {}",
                index.name, index.key
            ));
        }
        let projection = g
            .projection()
            .and_then(|p| p.projection_type())
            .map_or("?", |p| p.as_str());
        if projection != index.projection.as_str() {
            problems.push(format!(
                "index {} projects {projection}, expected {}",
                index.name,
                index.projection.as_str()
            ));
        }
    }
    for g in gsis {
        let name = g.index_name().unwrap_or("?");
        if !spec.indexes.iter().any(|i| i.name == name) {
            notes.push(format!(
                "index {name} is not declared by any entity (each item it holds costs writes there too)"
            ));
        }
    }
    let mode = desc
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .map_or("PROVISIONED", |m| m.as_str());
    let want = match billing {
        Billing::PayPerRequest => "PAY_PER_REQUEST",
        Billing::Provisioned { .. } => "PROVISIONED",
    };
    if mode != want {
        notes.push(format!(
            "billed {mode}, the configuration says {want} (only new tables follow the configuration)"
        ));
    }
    if problems.is_empty() {
        Ok(notes)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests;
