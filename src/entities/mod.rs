//! The entity contract and the registry.
//!
//! An entity supplies small pure pieces: its extract query, row → item mapping
//! (with the rule findings that need the legacy values), its key prefix, its
//! JSON Schema, the references it holds to other entities and the attributes
//! that should be unique. The runner does everything else, and knows no entity
//! by name. To add an entity: one module here, one schema in `entities/`, one
//! line in [`registry`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::mapping;

pub mod buyers;
mod party;
pub mod producers;
pub mod sales;

/// Every entity `migrate` knows, in dependency order. Add new ones here.
pub fn registry() -> &'static [&'static dyn Entity] {
    &[&buyers::Buyers, &producers::Producers, &sales::Sales]
}

/// Looks an entity up by name.
pub fn find(name: &str) -> Option<&'static dyn Entity> {
    registry().iter().copied().find(|e| e.name() == name)
}

/// The names of all registered entities.
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|e| e.name()).collect()
}

/// A DynamoDB item as plain JSON: strings are `S`, numbers (kept exact) `N`,
/// objects `M`, booleans `BOOL`, arrays `L`.
pub type Item = Map<String, Value>;

/// Whether a finding rejects the record or only warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Reject,
    Warning,
}

/// One rule outcome on one record: a machine-readable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn reject(code: &str, message: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity: Severity::Reject,
            message: message.into(),
        }
    }
    pub fn warning(code: &str, message: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

/// A record of the transformed artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transformed {
    pub legacy_id: i64,
    pub item: Item,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// What a mapping function needs beyond the row.
#[derive(Debug, Clone)]
pub struct MapContext {
    pub namespace: Uuid,
    /// The run's start, the last fallback for `createdAt` (SPEC §5).
    pub run_started_at: DateTime<Utc>,
}

/// A reference from this entity's items to another entity's ids.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// The attribute of this entity's item holding the id.
    pub attribute: &'static str,
    /// The entity referred to.
    pub entity: &'static str,
    /// The reject code when the id is not among the valid migrated ones.
    pub code: &'static str,
}

/// An attribute whose value should be unique within the entity.
#[derive(Debug, Clone, Copy)]
pub struct UniqueAttribute {
    pub attribute: &'static str,
    pub code: &'static str,
    pub severity: Severity,
}

/// One business entity moving from PostgreSQL to DynamoDB.
pub trait Entity: Send + Sync + 'static {
    /// The name on the command line and in file names (`buyers`).
    fn name(&self) -> &'static str;
    /// Entities whose validated/loaded items this one refers to.
    fn dependencies(&self) -> &'static [&'static str] {
        &[]
    }
    /// The `PK` prefix of this entity's items (`BUYER#`).
    fn key_prefix(&self) -> &'static str;
    /// The attribute holding the entity's own id (`buyerId`).
    fn id_attribute(&self) -> &'static str;
    /// The JSON Schema items must satisfy (`entities/<name>.schema.json`).
    fn schema(&self) -> &'static str;
    /// A SELECT of the rows to migrate in `schema`, ordered by legacy id.
    fn extract_query(&self, schema: &str) -> String;
    /// Maps one extracted row. `Err` means the row cannot be mapped at all
    /// (it goes to the transform quarantine with the message).
    fn map(&self, row: &Row, ctx: &MapContext) -> Result<Transformed, String>;
    /// References to other entities, checked against their valid items.
    fn references(&self) -> &'static [Reference] {
        &[]
    }
    /// Attributes that should be unique among this entity's items.
    fn unique_attributes(&self) -> &'static [UniqueAttribute] {
        &[]
    }
}

/// An extracted row: the JSON object PostgreSQL's `row_to_json` wrote.
pub struct Row(pub Map<String, Value>);

impl Row {
    /// A column as text, `None` when NULL. Numbers come back as their exact text.
    pub fn text(&self, column: &str) -> Option<&str> {
        match self.0.get(column)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.as_str()),
            _ => None,
        }
    }

    /// A column that must be an integer.
    pub fn int(&self, column: &str) -> Result<i64, String> {
        self.opt_int(column)?
            .ok_or_else(|| format!("column {column} is NULL"))
    }

    /// A column that is an integer or NULL.
    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, String> {
        match self.0.get(column) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("column {column}: {n} is not an integer")),
            Some(other) => Err(format!("column {column}: {other} is not an integer")),
        }
    }

    /// A column that must be a number, as its exact text.
    pub fn number(&self, column: &str) -> Result<&str, String> {
        match self.0.get(column) {
            Some(Value::Number(n)) => Ok(n.as_str()),
            Some(Value::Null) | None => Err(format!("column {column} is NULL")),
            Some(other) => Err(format!("column {column}: {other} is not a number")),
        }
    }

    /// A timestamp column converted to the item format, `None` when NULL.
    pub fn timestamp(&self, column: &str) -> Result<Option<String>, String> {
        match self.text(column) {
            None => Ok(None),
            Some(raw) => mapping::parse_legacy_timestamp(raw)
                .map(|t| Some(mapping::format_utc(mapping::rome_to_utc(t))))
                .ok_or_else(|| format!("column {column}: {raw:?} is not a timestamp")),
        }
    }
}

/// `createdAt` and `updatedAt` with SPEC §5's fallbacks.
pub fn audit_times(row: &Row, ctx: &MapContext) -> Result<(String, String), String> {
    let created = row.timestamp("created_at")?;
    let updated = row.timestamp("updated_at")?;
    let created = created
        .or_else(|| updated.clone())
        .unwrap_or_else(|| mapping::format_utc(ctx.run_started_at));
    let updated = updated.unwrap_or_else(|| created.clone());
    Ok((created, updated))
}

/// Builds an item from `(attribute, value)` pairs, leaving out NULLs, blank
/// strings and empty maps (SPEC §5: never written as empty).
pub fn item<I: IntoIterator<Item = (&'static str, Option<Value>)>>(pairs: I) -> Item {
    let mut map = Map::new();
    for (key, value) in pairs {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::Object(m)) if m.is_empty() => {}
            Some(v) => {
                map.insert(key.to_string(), v);
            }
        }
    }
    map
}

/// A JSON string value.
pub fn s(v: impl Into<String>) -> Option<Value> {
    Some(Value::String(v.into()))
}

/// A JSON number from exact decimal text (kept as written, never a float).
pub fn n(text: &str) -> Option<Value> {
    serde_json::from_str::<serde_json::Number>(text)
        .ok()
        .map(Value::Number)
}

/// Counts by reason code, sorted, for reports.
pub type ReasonCounts = BTreeMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_in_dependency_order() {
        let names = names();
        for (i, e) in registry().iter().enumerate() {
            for dep in e.dependencies() {
                let pos = names
                    .iter()
                    .position(|n| n == dep)
                    .expect("dependency registered");
                assert!(pos < i, "{} depends on {dep}, registered later", e.name());
            }
        }
    }

    #[test]
    fn every_schema_compiles() {
        for e in registry() {
            let schema: Value = serde_json::from_str(e.schema()).unwrap();
            jsonschema::validator_for(&schema).unwrap();
        }
    }

    #[test]
    fn item_leaves_out_blank_and_null() {
        let it = item([("a", s("x")), ("b", s("  ")), ("c", None), ("d", n("1.50"))]);
        assert_eq!(serde_json::to_string(&it).unwrap(), r#"{"a":"x","d":1.50}"#);
    }
}
