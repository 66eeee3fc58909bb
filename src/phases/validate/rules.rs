//! The rules validate decides one record by (docs/mapping.md "Validation
//! rules"): the findings the mapping made, duplicate keys and shared unique
//! values (once known), references, DynamoDB's limits and the JSON Schema.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::dynamo::{MAX_ITEM_BYTES, item_size};
use crate::entities::{Entity, Finding, Reference, Severity, UniqueAttribute};
use crate::error::{Error, Result};
use crate::fingerprint::{KeySet, key_hash};
use crate::json::{Borrowed, Obj, Val};

/// A record of the transformed artifact as validate reads it, from one pass
/// over its line: the item parsed in place, and its text as transform wrote
/// it (a valid item goes on byte for byte).
pub(super) struct Record<'a> {
    pub(super) legacy_id: i64,
    pub(super) item: Obj<'a>,
    pub(super) text: &'a str,
    pub(super) findings: Vec<Finding>,
}

impl<'a> Record<'a> {
    pub(super) fn parse(line: &'a str) -> serde_json::Result<Record<'a>> {
        use serde::de::Error as _;
        let (mut record, text) = Obj::parse_keeping(line, "item")?;
        let legacy_id = match record.get("legacyId") {
            Some(Val::Num(n)) => n.parse().map_err(|_| {
                serde_json::Error::custom(format!("legacyId {n} is not an integer"))
            })?,
            _ => return Err(serde_json::Error::missing_field("legacyId")),
        };
        let (Some(Val::Obj(item)), Some(text)) = (record.take("item"), text) else {
            return Err(serde_json::Error::custom(
                "`item` is missing or not an object",
            ));
        };
        let findings = match record.get("findings") {
            None => Vec::new(),
            Some(Val::Arr(list)) if list.is_empty() => Vec::new(),
            Some(v) => serde_json::from_value(v.to_value())?,
        };
        Ok(Record {
            legacy_id,
            item,
            text,
            findings,
        })
    }
}

/// A rejected record as `reports/rejected/<entity>.jsonl` holds it.
#[derive(Serialize)]
#[allow(non_snake_case)]
struct RejectedRecord<'a> {
    legacyId: i64,
    PK: &'a str,
    SK: &'a str,
    reasons: &'a [String],
    findings: &'a [Finding],
    warnings: &'a [Finding],
    item: &'a RawValue,
}

/// What the deciding pass shares with its workers.
pub(super) struct Rules {
    /// Fingerprints of keys held by more than one record (known only after
    /// a first pass; empty in it).
    pub(super) duplicate_keys: KeySet,
    pub(super) uniques: &'static [UniqueAttribute],
    /// Per unique attribute, the values held by more than one record and
    /// how many hold them (empty in a first pass, like `duplicate_keys`).
    pub(super) unique_dups: Vec<HashMap<String, u32>>,
    pub(super) references: Arc<Vec<(Reference, KeySet)>>,
    pub(super) validator: jsonschema::Validator<Borrowed>,
}

/// One decided record, serialized, with what only the whole artifact can
/// judge: the upper half of its key fingerprint and its unique values.
pub(super) struct Decided {
    pub(super) valid: Option<Vec<u8>>,
    pub(super) rejected: Option<Vec<u8>>,
    pub(super) warned: Option<Vec<u8>>,
    pub(super) reject_codes: Vec<String>,
    pub(super) warning_codes: Vec<String>,
    pub(super) key: u64,
    pub(super) unique_values: Vec<Option<String>>,
}

impl Rules {
    pub(super) fn new(
        entity: &'static Entity,
        references: Arc<Vec<(Reference, KeySet)>>,
        duplicate_keys: KeySet,
        unique_dups: Vec<HashMap<String, u32>>,
    ) -> Result<Self> {
        let schema_name = format!("entities/{}.schema.json", entity.name);
        let schema: Value = serde_json::from_str(entity.schema)
            .map_err(|e| Error::artifact(&schema_name, e.to_string()))?;
        let validator = jsonschema::options_for::<Borrowed>()
            .build(&schema)
            .map_err(|e| Error::artifact(&schema_name, e.to_string()))?;
        Ok(Rules {
            duplicate_keys,
            uniques: entity.unique_attributes,
            unique_dups,
            references,
            validator,
        })
    }

    pub(super) fn decide(&self, line: &str) -> serde_json::Result<Decided> {
        let Record {
            legacy_id,
            item,
            text,
            mut findings,
        } = Record::parse(line)?;
        let value = Val::Obj(item);
        let Val::Obj(item) = &value else {
            unreachable!("parsed as an object")
        };
        let (pk, sk) = (
            item.str("PK").unwrap_or_default(),
            item.str("SK").unwrap_or_default(),
        );
        let key = key_hash(pk, sk);
        if self.duplicate_keys.contains(&key) {
            findings.push(Finding::reject(
                "duplicate_key",
                format!("another item has the key PK={pk}, SK={sk}"),
            ));
        }
        let mut unique_values = Vec::with_capacity(self.uniques.len());
        for (u, dups) in self.uniques.iter().zip(&self.unique_dups) {
            let v = item.str(u.attribute);
            unique_values.push(v.map(str::to_owned));
            if let Some(v) = v
                && let Some(count) = dups.get(v)
            {
                let msg = format!(
                    "{} {v} is shared with {} other item(s)",
                    u.attribute,
                    count - 1
                );
                findings.push(match u.severity {
                    Severity::Reject => Finding::reject(u.code, msg),
                    Severity::Warning => Finding::warning(u.code, msg),
                });
            }
        }
        for (r, ids) in self.references.iter() {
            match item.str(r.attribute) {
                Some(id) if ids.contains(&key_hash(id, "")) => {}
                Some(id) => findings.push(Finding::reject(
                    r.code,
                    format!(
                        "{} {id} is not among the valid migrated {}",
                        r.attribute, r.entity.name
                    ),
                )),
                None => findings.push(Finding::reject(
                    r.code,
                    format!("no {} (NULL in the source)", r.attribute),
                )),
            }
        }
        let refused = crate::limits::check(item);
        if !refused.is_empty() {
            findings.push(Finding::reject("dynamodb_limit", refused.join("; ")));
        }
        let size = item_size(item);
        if size > MAX_ITEM_BYTES {
            findings.push(Finding::reject(
                "item_too_large",
                format!("item is {size} bytes; DynamoDB allows {MAX_ITEM_BYTES}"),
            ));
        }
        if !findings.iter().any(|f| f.severity == Severity::Reject)
            && !self.validator.is_valid(&value)
        {
            let errors: Vec<String> = self
                .validator
                .iter_errors(&value)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            findings.push(Finding::reject("schema", errors.join("; ")));
        }
        let (rejects, warnings): (Vec<Finding>, Vec<Finding>) = findings
            .into_iter()
            .partition(|f| f.severity == Severity::Reject);
        let reject_codes: Vec<String> = rejects.iter().map(|f| f.code.clone()).collect();
        let warning_codes: Vec<String> = warnings.iter().map(|f| f.code.clone()).collect();
        let mut d = Decided {
            valid: None,
            rejected: None,
            warned: None,
            reject_codes,
            warning_codes,
            key: (key >> 64) as u64,
            unique_values,
        };
        if rejects.is_empty() {
            // The item goes on byte for byte as transform wrote it.
            d.valid = Some(text.as_bytes().to_vec());
            if !warnings.is_empty() {
                d.warned = Some(serde_json::to_vec(
                    &json!({"legacyId": legacy_id, "PK": pk, "warnings": warnings}),
                )?);
            }
        } else {
            d.rejected = Some(serde_json::to_vec(&RejectedRecord {
                legacyId: legacy_id,
                PK: pk,
                SK: sk,
                reasons: &d.reject_codes,
                findings: &rejects,
                warnings: &warnings,
                item: serde_json::from_str(text)?,
            })?);
        }
        Ok(d)
    }
}
