//! The entities and the registry, and what their mappings share.
//!
//! An entity is a value ([`Entity`], in `definition.rs`): its name, keys,
//! source rows, JSON Schema, table ([`TableDef`]), references, unique
//! attributes and money checks, plus one row → item mapping function. The
//! runner does everything else, and knows no entity by name. To add an
//! entity: one module here, one schema in `entities/`, one line in
//! [`registry`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::json::{Obj, Val};
use crate::mapping;

pub mod buyers;
pub mod checks;
mod definition;
mod party;
pub mod producers;
pub mod sales;
pub mod table;

pub use definition::{Entity, Mapping, Reference, Source, UniqueAttribute};
pub use table::TableDef;

/// The `createdBy` of every item the migration writes: with the entity's key
/// prefix, it marks an item as the migration's where no ledger lists it
/// (tables loaded before the ledger existed; docs/cutover.md).
pub const CREATED_BY: &str = "migration@system";

/// Every entity `migrate` knows, in dependency order. Add new ones here.
pub fn registry() -> &'static [&'static Entity] {
    static REGISTRY: &[&Entity] = &[&buyers::BUYERS, &producers::PRODUCERS, &sales::SALES];
    REGISTRY
}

/// Looks an entity up by name.
pub fn find(name: &str) -> Option<&'static Entity> {
    registry().iter().copied().find(|e| e.name == name)
}

/// The names of all registered entities.
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|e| e.name).collect()
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
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transformed {
    pub legacy_id: i64,
    pub item: NewItem,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// An item as a mapping builds it: attributes in the order the entity lists
/// them, serialized as a JSON object (the same plain JSON as [`Item`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewItem(pub Vec<(&'static str, Value)>);

impl NewItem {
    /// The attribute's value.
    pub fn get(&self, attribute: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == attribute).map(|(_, v)| v)
    }
    /// Whether the item has the attribute.
    pub fn contains_key(&self, attribute: &str) -> bool {
        self.get(attribute).is_some()
    }
}

impl std::ops::Index<&str> for NewItem {
    type Output = Value;
    /// The attribute's value, `null` when absent (as `serde_json::Value` indexes).
    fn index(&self, attribute: &str) -> &Value {
        self.get(attribute).unwrap_or(&Value::Null)
    }
}

impl Serialize for NewItem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// What a mapping function needs beyond the row.
#[derive(Debug, Clone)]
pub struct MapContext {
    pub namespace: Uuid,
    /// The start of the data directory's first run, the last fallback for
    /// `createdAt` (README "Mapping and rules"): the same in every run.
    pub first_run_started_at: DateTime<Utc>,
}

/// An extracted row: the JSON object PostgreSQL's `row_to_json` wrote,
/// parsed in place (values borrow from the artifact's line).
pub struct Row<'a>(pub Obj<'a>);

impl<'a> Row<'a> {
    /// Parses one line of an extract artifact.
    pub fn parse(line: &'a str) -> Result<Self, serde_json::Error> {
        Obj::parse(line).map(Row)
    }

    /// A column as text, `None` when NULL. Numbers come back as their exact text.
    pub fn text(&self, column: &str) -> Option<&str> {
        match self.0.get(column)? {
            Val::Str(s) => Some(s),
            Val::Num(n) => Some(n),
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
            None | Some(Val::Null) => Ok(None),
            Some(Val::Num(n)) => n
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("column {column}: {n} is not an integer")),
            Some(other) => Err(format!(
                "column {column}: {} is not an integer",
                other.to_value()
            )),
        }
    }

    /// A column that must be a number, as its exact text.
    pub fn number(&self, column: &str) -> Result<&str, String> {
        match self.0.get(column) {
            Some(Val::Num(n)) => Ok(n),
            Some(Val::Null) | None => Err(format!("column {column} is NULL")),
            Some(other) => Err(format!(
                "column {column}: {} is not a number",
                other.to_value()
            )),
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

    /// The row as a `serde_json::Value` (for reports).
    pub fn to_value(&self) -> Value {
        self.0.to_value()
    }
}

/// A row from a JSON value, for the entities' unit tests (the text is leaked
/// so the row can borrow it for the rest of the test).
#[cfg(test)]
pub fn test_row(v: &Value) -> Row<'static> {
    Row::parse(Box::leak(v.to_string().into_boxed_str())).expect("a JSON object")
}

/// `createdAt` and `updatedAt` with the README's fallbacks.
pub fn audit_times(row: &Row<'_>, ctx: &MapContext) -> Result<(String, String), String> {
    let created = row.timestamp("created_at")?;
    let updated = row.timestamp("updated_at")?;
    let created = created
        .or_else(|| updated.clone())
        .unwrap_or_else(|| mapping::format_utc(ctx.first_run_started_at));
    let updated = updated.unwrap_or_else(|| created.clone());
    Ok((created, updated))
}

/// Builds an item from `(attribute, value)` pairs, leaving out NULLs, blank
/// strings and empty maps (the README: never written as empty).
pub fn item<I: IntoIterator<Item = (&'static str, Option<Value>)>>(pairs: I) -> NewItem {
    let pairs = pairs.into_iter();
    let mut attributes = Vec::with_capacity(pairs.size_hint().0);
    for (key, value) in pairs {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::Object(m)) if m.is_empty() => {}
            Some(v) => attributes.push((key, v)),
        }
    }
    NewItem(attributes)
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
                    .position(|n| *n == dep)
                    .expect("dependency registered");
                assert!(pos < i, "{} depends on {dep}, registered later", e.name);
            }
        }
    }

    #[test]
    fn every_schema_compiles() {
        for e in registry() {
            let schema: Value = serde_json::from_str(e.schema).unwrap();
            jsonschema::validator_for(&schema).unwrap();
        }
    }

    #[test]
    fn every_table_is_keyed_by_pk_and_sk() {
        // The load, rollback and verify address items by PK and SK.
        for e in registry() {
            assert_eq!(e.table.key, table::PK_SK, "{}", e.name);
            for index in e.table.indexes {
                assert!(!index.name.is_empty(), "{}", e.name);
            }
        }
    }

    #[test]
    fn every_selected_column_is_declared_for_the_drift_check() {
        // docs/checks.md: the drift pre-flight compares what the extract
        // query reads; a column selected but not declared would go unchecked.
        for e in registry() {
            let q = e.extract_query("public");
            let list = &q["SELECT ".len()..q.find(" FROM ").unwrap()];
            for column in list.split(',').map(str::trim) {
                assert!(
                    e.source.columns.iter().any(|c| c.name == column),
                    "{}: {column} is selected but not in source_columns()",
                    e.name
                );
            }
        }
    }

    #[test]
    fn item_leaves_out_blank_and_null() {
        let it = item([("a", s("x")), ("b", s("  ")), ("c", None), ("d", n("1.50"))]);
        assert_eq!(serde_json::to_string(&it).unwrap(), r#"{"a":"x","d":1.50}"#);
        let it = item([("z", s("1")), ("a", s("2"))]);
        assert_eq!(
            serde_json::to_string(&it).unwrap(),
            r#"{"z":"1","a":"2"}"#,
            "in the entity's order"
        );
    }
}
