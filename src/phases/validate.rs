//! Validate: applies the validation rules (docs/mapping.md "Validation rules") to the transformed items in two streaming
//! passes, both on all cores. The first collects key fingerprints and the
//! values of attributes that should be unique; the second decides each record
//! on all cores: the findings the mapping made, duplicate keys, duplicates of
//! unique attributes, references to the *valid* items of other entities,
//! DynamoDB's 400 KB limit and its limits on values ([`crate::limits`]),
//! and the entity's JSON Schema as a backstop. Valid items go to
//! `data/validated/`, rejects to `data/reports/rejected/`, warnings to
//! `data/reports/warnings/`. Both passes must read every line
//! of the input, and every record must come out valid or rejected, or the
//! phase keeps nothing (docs/safety.md, "No silent truncation").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{KeySet, conserved, key_hash};
use crate::artifact::{ArtifactReader, ArtifactWriter};
use crate::checkpoint::{Phase, Step};
use crate::ctx::{Ctx, artifact_path};
use crate::dynamo::{MAX_ITEM_BYTES, item_size};
use crate::entities::{self, Entity, Finding, Reference, Severity, UniqueAttribute};
use crate::error::{Error, Result};
use crate::json::{Borrowed, Obj, Val};
use crate::parallel;
use crate::report;

/// The ids of `entity`'s valid items, read from its validated artifact.
pub fn valid_ids(data_dir: &std::path::Path, entity: &dyn Entity) -> Result<KeySet> {
    let path = artifact_path(data_dir, Phase::Validate, entity.name());
    let mut reader = ArtifactReader::open(&path)?;
    let mut ids = KeySet::with_capacity(reader.manifest().records as usize);
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        let item = Obj::parse(&buf)
            .map_err(|e| Error::artifact(&path, format!("line {}: {e}", reader.line_no())))?;
        if let Some(id) = item.str(entity.id_attribute()) {
            ids.insert(key_hash(id, ""));
        }
    }
    Ok(ids)
}

/// A record of the transformed artifact as validate reads it: the item stays
/// the text transform wrote until it is parsed in place.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    legacy_id: i64,
    #[serde(borrow)]
    item: &'a RawValue,
    #[serde(default)]
    findings: Vec<Finding>,
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

/// What pass 1 takes from one record: its key fingerprint and the values of
/// the attributes that should be unique.
fn keys_of(
    line: &str,
    uniques: &[UniqueAttribute],
) -> serde_json::Result<(u128, Vec<Option<String>>)> {
    let rec: Record = serde_json::from_str(line)?;
    let item = Obj::parse(rec.item.get())?;
    let key = key_hash(
        item.str("PK").unwrap_or_default(),
        item.str("SK").unwrap_or_default(),
    );
    let values = uniques
        .iter()
        .map(|u| item.str(u.attribute).map(str::to_owned))
        .collect();
    Ok((key, values))
}

/// The full fingerprints of keys held by more than one record, among the
/// records whose fingerprint starts with one of `candidates`.
fn confirm_duplicates(reader: &ArtifactReader, candidates: &HashSet<u64>) -> Result<KeySet> {
    let mut reader = reader.reopen()?;
    let mut counts: HashMap<u128, u32> = HashMap::new();
    let mut line = String::new();
    while reader.next_line(&mut line)? {
        let (key, _) = keys_of(&line, &[])
            .map_err(|e| Error::artifact(reader.path(), format!("a record is not valid: {e}")))?;
        if candidates.contains(&((key >> 64) as u64)) {
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    Ok(counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect())
}

/// What pass 2 shares with its workers.
struct Rules {
    /// Fingerprints of keys held by more than one record.
    duplicate_keys: KeySet,
    uniques: &'static [UniqueAttribute],
    unique_dups: Vec<HashMap<String, u32>>,
    references: Vec<(Reference, KeySet)>,
    validator: jsonschema::Validator<Borrowed>,
}

/// One decided record, serialized.
struct Decided {
    valid: Option<Vec<u8>>,
    rejected: Option<Vec<u8>>,
    warned: Option<Vec<u8>>,
    reject_codes: Vec<String>,
    warning_codes: Vec<String>,
}

impl Rules {
    fn decide(&self, line: &str) -> serde_json::Result<Decided> {
        let Record {
            legacy_id,
            item: raw,
            mut findings,
        } = serde_json::from_str(line)?;
        let value = Val::Obj(Obj::parse(raw.get())?);
        let Val::Obj(item) = &value else {
            unreachable!("parsed as an object")
        };
        let (pk, sk) = (
            item.str("PK").unwrap_or_default(),
            item.str("SK").unwrap_or_default(),
        );
        if self.duplicate_keys.contains(&key_hash(pk, sk)) {
            findings.push(Finding::reject(
                "duplicate_key",
                format!("another item has the key PK={pk}, SK={sk}"),
            ));
        }
        for (u, dups) in self.uniques.iter().zip(&self.unique_dups) {
            if let Some(v) = item.str(u.attribute)
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
        for (r, ids) in &self.references {
            match item.str(r.attribute) {
                Some(id) if ids.contains(&key_hash(id, "")) => {}
                Some(id) => findings.push(Finding::reject(
                    r.code,
                    format!(
                        "{} {id} is not among the valid migrated {}",
                        r.attribute, r.entity
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
        };
        if rejects.is_empty() {
            // The item goes on byte for byte as transform wrote it.
            d.valid = Some(raw.get().as_bytes().to_vec());
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
                item: raw,
            })?);
        }
        Ok(d)
    }
}

/// Validates one entity.
pub async fn run(ctx: &Ctx, entity: &'static dyn Entity, step: &mut Step) -> Result<Vec<String>> {
    let input = ctx.artifact(Phase::Transform, entity.name());
    let schema_name = format!("entities/{}.schema.json", entity.name());
    let schema: Value = serde_json::from_str(entity.schema())
        .map_err(|e| Error::artifact(&schema_name, e.to_string()))?;
    let validator = jsonschema::options_for::<Borrowed>()
        .build(&schema)
        .map_err(|e| Error::artifact(&schema_name, e.to_string()))?;

    // Pass 1, on all cores: key fingerprints and unique-attribute values.
    let reader = ArtifactReader::open(&input)?;
    step.input_sha256 = Some(reader.manifest().sha256.clone());
    let total = reader.manifest().records;
    let second = reader.reopen()?;
    // The upper 64 bits of every key fingerprint, sorted afterwards: 8 bytes
    // a record, no hash table. Equal neighbours are only candidates: a
    // confirming pass below counts their full 128-bit fingerprints.
    let mut keys: Vec<u64> = Vec::with_capacity(total as usize);
    let uniques = entity.unique_attributes();
    let mut unique_seen: Vec<HashMap<String, u32>> = vec![HashMap::new(); uniques.len()];
    let path = input.clone();
    parallel::map_lines(
        reader,
        parallel::workers(),
        move |line: &str| {
            keys_of(line, uniques)
                .map_err(|e| Error::artifact(&path, format!("a record is not valid: {e}")))
        },
        |_, chunk| {
            if ctx.cancelled() {
                return Err(Error::Interrupted(
                    "validate stopped; nothing was kept".into(),
                ));
            }
            for (key, values) in chunk {
                keys.push((key >> 64) as u64);
                for (v, seen) in values.into_iter().zip(unique_seen.iter_mut()) {
                    if let Some(v) = v {
                        *seen.entry(v).or_insert(0) += 1;
                    }
                }
            }
            Ok(())
        },
    )
    .map_err(|e| parallel::in_step(e, "validate", entity.name()))?;
    let first_pass = keys.len() as u64;
    conserved(
        "validate",
        entity.name(),
        &input,
        total,
        first_pass,
        &[("keys", first_pass)],
    )?;
    for seen in &mut unique_seen {
        seen.retain(|_, c| *c > 1);
    }
    keys.sort_unstable();
    let candidates: HashSet<u64> = keys
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(keys);
    crate::ctx::release_memory();
    let duplicate_keys = if candidates.is_empty() {
        KeySet::new()
    } else {
        confirm_duplicates(&second, &candidates)?
    };

    // The valid ids of the entities this one refers to.
    let mut references = Vec::new();
    for r in entity.references() {
        let target = entities::find(r.entity).ok_or_else(|| {
            Error::Dependency(format!(
                "{} refers to unknown entity {}",
                entity.name(),
                r.entity
            ))
        })?;
        references.push((*r, valid_ids(&ctx.data_dir, target)?));
    }
    let rules = Arc::new(Rules {
        duplicate_keys,
        uniques,
        unique_dups: unique_seen,
        references,
        validator,
    });

    // Pass 2: decide, in parallel, written in order.
    let reader = second;
    let bar = ctx.progress.bar(entity.name(), "validate", Some(total));
    let out = ctx.artifact(Phase::Validate, entity.name());
    let mut valid = ArtifactWriter::create(&out, &ctx.run_id, "validate", entity.name())?;
    let rejected_path = ctx.report(&format!("rejected/{}.jsonl", entity.name()));
    let warnings_path = ctx.report(&format!("warnings/{}.jsonl", entity.name()));
    let mut rejected =
        ArtifactWriter::create(&rejected_path, &ctx.run_id, "validate", entity.name())?;
    let mut warned =
        ArtifactWriter::create(&warnings_path, &ctx.run_id, "validate", entity.name())?;
    let mut reject_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut warning_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0u64;
    let path = input.clone();
    let worker_rules = rules.clone();
    let decide = move |line: &str| -> Result<Decided> {
        worker_rules
            .decide(line)
            .map_err(|e| Error::artifact(&path, format!("a record is not valid: {e}")))
    };
    let result = parallel::map_lines(reader, parallel::workers(), decide, |_, decided| {
        if ctx.cancelled() {
            return Err(Error::Interrupted(
                "validate stopped; nothing was kept".into(),
            ));
        }
        let before = n;
        for d in decided {
            if let Some(b) = &d.valid {
                valid.write_raw_line(b)?;
            }
            if let Some(b) = &d.rejected {
                rejected.write_raw_line(b)?;
            }
            if let Some(b) = &d.warned {
                warned.write_raw_line(b)?;
            }
            for c in d.reject_codes {
                *reject_counts.entry(c).or_insert(0) += 1;
            }
            for c in d.warning_codes {
                *warning_counts.entry(c).or_insert(0) += 1;
            }
            n += 1;
        }
        bar.inc(n - before);
        Ok(())
    });
    let result = result
        .map_err(|e| parallel::in_step(e, "validate", entity.name()))
        .and_then(|()| {
            conserved(
                "validate",
                entity.name(),
                &input,
                total,
                n,
                &[("valid", valid.records()), ("rejected", rejected.records())],
            )
        });
    if let Err(e) = result {
        valid.discard();
        rejected.discard();
        warned.discard();
        return Err(e);
    }
    bar.finish();
    let m = valid.finish()?;
    let rejected_count = rejected.records();
    let warned_count = warned.records();
    rejected.finish()?;
    warned.finish()?;
    step.records_in = n;
    step.records_out = m.records;
    step.rejected = rejected_count;
    step.warnings = warned_count;
    step.output_sha256 = Some(m.sha256.clone());
    step.reasons = reject_counts.clone();
    for (k, v) in &warning_counts {
        step.reasons.insert(format!("{k} (warning)"), *v);
    }
    report::update(
        &ctx.report("validation_report.json"),
        &ctx.run_id,
        entity.name(),
        json!({
            "input": n,
            "valid": m.records,
            "rejected": rejected_count,
            "recordsWithWarnings": warned_count,
            "rejectsByReason": reject_counts,
            "warningsByReason": warning_counts,
            "files": {
                "validated": out,
                "rejected": rejected_path,
                "warnings": warnings_path,
            },
            "validatedSha256": m.sha256,
        }),
    )?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::ArtifactWriter;

    #[test]
    fn only_true_duplicates_are_confirmed() {
        let dir = std::env::temp_dir().join(format!("migrate-dup-{}", uuid::Uuid::new_v4()));
        crate::artifact::create_private_dir(&dir).unwrap();
        let p = dir.join("t.jsonl");
        let mut w = ArtifactWriter::create(&p, "r", "transform", "x").unwrap();
        for (id, pk) in [(1, "A#1"), (2, "A#2"), (3, "A#1"), (4, "A#3")] {
            w.write(
                &serde_json::json!({"legacyId": id, "item": {"PK": pk, "SK": "M"}, "findings": []}),
            )
            .unwrap();
        }
        w.finish().unwrap();
        let reader = ArtifactReader::open(&p).unwrap();
        let upper = |pk: &str| (key_hash(pk, "M") >> 64) as u64;
        // A#2 stands for a key whose upper half collided with another's.
        let candidates = HashSet::from([upper("A#1"), upper("A#2")]);
        let dups = confirm_duplicates(&reader, &candidates).unwrap();
        assert_eq!(dups, KeySet::from([key_hash("A#1", "M")]));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
