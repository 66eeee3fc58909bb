//! Comparing one item with its table copy: values by value (numbers exact,
//! maps member by member), and the findings a verify collects (counts and
//! the first examples of each kind of difference).

use serde_json::{Value, json};

use crate::entities::{self, Item};
use crate::error::{Error, Result};
use crate::fingerprint::{KeySet, key_hash};
use crate::json::{Obj, Val};
use crate::mapping::canonical_number_cow;

use super::*;

/// Whether two attribute values are equal: numbers by value, maps member by
/// member, lists element by element.
pub fn same_value(expected: &Value, found: &Value) -> bool {
    match (expected, found) {
        (Value::Number(a), Value::Number(b)) => {
            canonical_number_cow(a.as_str()) == canonical_number_cow(b.as_str())
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (a, b) => a == b,
    }
}

/// The attributes that differ: (attribute, expected, found), absent as null.
pub fn differences(expected: &Item, found: &Item) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    for (k, v) in expected {
        match found.get(k) {
            Some(w) if same_value(v, w) => {}
            other => out.push((k.clone(), v.clone(), other.cloned().unwrap_or(Value::Null))),
        }
    }
    for (k, w) in found {
        if !expected.contains_key(k) {
            out.push((k.clone(), Value::Null, w.clone()));
        }
    }
    out
}

/// A scanned item's wire JSON, parsed in place.
pub(super) fn scanned<'a>(table: &str, wire: &'a str) -> Result<Obj<'a>> {
    Obj::parse(wire)
        .map_err(|e| Error::target(format!("scan of {table}: an item is not JSON: {e}")))
}

/// A string attribute of a scanned item (`{"S": "…"}`).
pub(super) fn wire_str<'a>(item: &'a Obj<'_>, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        Val::Obj(o) => o.str("S"),
        _ => None,
    }
}

#[derive(Default)]
pub(super) struct Findings {
    pub(super) expected: u64,
    pub(super) matched: u64,
    pub(super) missing: u64,
    pub(super) different: u64,
    pub(super) orphans: u64,
    pub(super) counted: u64,
    pub(super) extra: u64,
    /// Items under the entity's prefix that are not the migration's.
    pub(super) foreign: u64,
    pub(super) foreign_examples: Vec<Value>,
    pub(super) missing_examples: Vec<Value>,
    pub(super) different_examples: Vec<Value>,
    pub(super) orphan_examples: Vec<Value>,
    pub(super) extra_examples: Vec<Value>,
}

impl Findings {
    pub(super) fn missing(&mut self, key: (&str, &str), expected: &Item) {
        self.missing += 1;
        if self.missing_examples.len() < EXAMPLES {
            self.missing_examples
                .push(json!({"PK": key.0, "SK": key.1, "legacyId": expected.get("legacyId")}));
        }
    }

    pub(super) fn different_example(&mut self, key: (&str, &str), expected: &Item, actual: &Item) {
        if self.different_examples.len() < EXAMPLES {
            let diffs = differences(expected, actual);
            // An encrypted data directory keeps record values out of its
            // plain reports: the attribute names only.
            let values = crate::crypt::current().is_none();
            self.different_examples.push(json!({
                "PK": key.0, "SK": key.1,
                "attributes": diffs.iter().map(|(a, e, v)| if values {
                    json!({"attribute": a, "expected": e, "found": v})
                } else {
                    json!({"attribute": a})
                }).collect::<Vec<_>>(),
            }));
        }
    }

    /// Checks the references of an item the table holds; `attribute` reads
    /// one of its string attributes.
    pub(super) fn references<'i>(
        &mut self,
        refs: &[(entities::Reference, KeySet)],
        key: (&str, &str),
        attribute: impl Fn(&str) -> Option<&'i str>,
    ) {
        for (r, ids) in refs {
            let value = attribute(r.attribute);
            if !value.is_some_and(|id| ids.contains(&key_hash(id, ""))) {
                self.orphans += 1;
                if self.orphan_examples.len() < EXAMPLES {
                    self.orphan_examples.push(json!({"PK": key.0, "SK": key.1,
                        "attribute": r.attribute, "value": value, "table": r.entity.name}));
                }
            }
        }
    }

    /// An item with the entity's prefix that the artifact does not hold.
    /// A table item the artifact lacks: extra if it is the migration's
    /// (`backup::owned`), whatever run wrote it; foreign otherwise, reported
    /// apart and not a failure.
    pub(super) fn not_expected(&mut self, owned: bool, key: (&str, &str)) {
        if owned {
            self.extra += 1;
            if self.extra_examples.len() < EXAMPLES {
                self.extra_examples.push(json!({"PK": key.0, "SK": key.1}));
            }
        } else {
            self.foreign += 1;
            if self.foreign_examples.len() < EXAMPLES {
                self.foreign_examples
                    .push(json!({"PK": key.0, "SK": key.1}));
            }
        }
    }
}
