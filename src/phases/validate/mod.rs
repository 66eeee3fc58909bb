//! Validate: applies the validation rules (docs/mapping.md "Validation
//! rules") to the transformed items in one streaming pass on all cores (a
//! second only when duplicates turn up; see [`run`]). Each record is
//! decided ([`rules`]) by the findings the mapping made, duplicate keys, duplicates of
//! unique attributes, references to the *valid* items of other entities,
//! DynamoDB's 400 KB limit and its limits on values ([`crate::limits`]),
//! and the entity's JSON Schema as a backstop. Valid items go to
//! `data/validated/`, rejects to `data/reports/rejected/`, warnings to
//! `data/reports/warnings/`. Every pass must read every line
//! of the input, and every record must come out valid or rejected, or the
//! phase keeps nothing (docs/safety.md, "No silent truncation").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::{Outcome, Unit, conserved};
use crate::artifact::{ArtifactReader, ArtifactWriter};
use crate::checkpoint::Phase;
use crate::ctx::{Ctx, artifact_path};
use crate::entities::{Entity, Reference};
use crate::error::{Error, Result};
use crate::fingerprint::{KeySet, key_hash};
use crate::json::Obj;
use crate::parallel;
use crate::report::{self, sections};

mod rules;

use rules::{Decided, Record, Rules};

/// The ids of `entity`'s valid items, read from its validated artifact.
pub fn valid_ids(data_dir: &std::path::Path, entity: &Entity) -> Result<KeySet> {
    let path = artifact_path(data_dir, Phase::Validate, entity.name);
    let mut reader = ArtifactReader::open_streamed(&path)?;
    let mut ids = KeySet::with_capacity(reader.manifest().records as usize);
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        let item = Obj::parse(&buf)
            .map_err(|e| Error::artifact(&path, format!("line {}: {e}", reader.line_no())))?;
        if let Some(id) = item.str(entity.id_attribute) {
            ids.insert(key_hash(id, ""));
        }
    }
    Ok(ids)
}

/// One record's key fingerprint.
fn key_of(line: &str) -> serde_json::Result<u128> {
    let rec = Record::parse(line)?;
    Ok(key_hash(
        rec.item.str("PK").unwrap_or_default(),
        rec.item.str("SK").unwrap_or_default(),
    ))
}

/// The full fingerprints of keys held by more than one record, among the
/// records whose fingerprint starts with one of `candidates`.
fn confirm_duplicates(reader: &ArtifactReader, candidates: &HashSet<u64>) -> Result<KeySet> {
    let mut reader = reader.reopen()?;
    let mut counts: HashMap<u128, u32> = HashMap::new();
    let mut line = String::new();
    while reader.next_line(&mut line)? {
        let key = key_of(&line)
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

/// The outputs of one deciding pass, not yet committed, and what it saw of
/// the whole artifact.
struct Pass {
    valid: ArtifactWriter,
    rejected: ArtifactWriter,
    warned: ArtifactWriter,
    reject_counts: BTreeMap<String, u64>,
    warning_counts: BTreeMap<String, u64>,
    records: u64,
    /// The upper 64 bits of every key fingerprint: 8 bytes a record, no
    /// hash table. Equal neighbours once sorted are only candidates:
    /// [`confirm_duplicates`] counts their full 128-bit fingerprints.
    keys: Vec<u64>,
    unique_seen: Vec<HashMap<String, u32>>,
}

impl Pass {
    fn discard(self) {
        self.valid.discard();
        self.rejected.discard();
        self.warned.discard();
    }

    /// The key fingerprints (upper halves) seen more than once, and per
    /// unique attribute the values held by more than one record.
    fn shared(&mut self) -> (HashSet<u64>, Vec<HashMap<String, u32>>) {
        let mut keys = std::mem::take(&mut self.keys);
        keys.sort_unstable();
        let candidates = keys
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        let mut seen = std::mem::take(&mut self.unique_seen);
        for values in &mut seen {
            values.retain(|_, c| *c > 1);
        }
        (candidates, seen)
    }
}

/// Decides every record of `reader` on all cores, written in order to the
/// phase's outputs (uncommitted until the caller finishes them).
fn decide_all(
    ctx: &Ctx,
    entity: &'static Entity,
    reader: ArtifactReader,
    rules: Rules,
) -> Result<Pass> {
    let total = reader.manifest().records;
    let input = reader.path().to_path_buf();
    let bar = ctx.progress.bar(entity.name, "validate", Some(total));
    let out = ctx.artifact(Phase::Validate, entity.name);
    let uniques = rules.uniques.len();
    let mut pass = Pass {
        valid: ArtifactWriter::create(&out, &ctx.run_id, "validate", entity.name)?,
        rejected: ArtifactWriter::create(
            &ctx.report(&format!("rejected/{}.jsonl", entity.name)),
            &ctx.run_id,
            "validate",
            entity.name,
        )?,
        warned: ArtifactWriter::create(
            &ctx.report(&format!("warnings/{}.jsonl", entity.name)),
            &ctx.run_id,
            "validate",
            entity.name,
        )?,
        reject_counts: BTreeMap::new(),
        warning_counts: BTreeMap::new(),
        records: 0,
        keys: Vec::with_capacity(total as usize),
        unique_seen: vec![HashMap::new(); uniques],
    };
    let rules = Arc::new(rules);
    let path = input.clone();
    let decide = move |line: &str| -> Result<Decided> {
        rules
            .decide(line)
            .map_err(|e| Error::artifact(&path, format!("a record is not valid: {e}")))
    };
    let p = &mut pass;
    let result = parallel::map_lines(reader, parallel::workers(), decide, |_, decided| {
        if ctx.cancelled() {
            return Err(Error::Interrupted(
                "validate stopped; nothing was kept".into(),
            ));
        }
        let before = p.records;
        for d in decided {
            if let Some(b) = &d.valid {
                p.valid.write_raw_line(b)?;
            }
            if let Some(b) = &d.rejected {
                p.rejected.write_raw_line(b)?;
            }
            if let Some(b) = &d.warned {
                p.warned.write_raw_line(b)?;
            }
            for c in d.reject_codes {
                *p.reject_counts.entry(c).or_insert(0) += 1;
            }
            for c in d.warning_codes {
                *p.warning_counts.entry(c).or_insert(0) += 1;
            }
            p.keys.push(d.key);
            for (v, seen) in d.unique_values.into_iter().zip(p.unique_seen.iter_mut()) {
                if let Some(v) = v {
                    *seen.entry(v).or_insert(0) += 1;
                }
            }
            p.records += 1;
        }
        bar.inc(p.records - before);
        Ok(())
    });
    let result = result
        .map_err(|e| parallel::in_step(e, "validate", entity.name))
        .and_then(|()| {
            conserved(
                "validate",
                entity.name,
                &input,
                total,
                pass.records,
                &[
                    ("valid", pass.valid.records()),
                    ("rejected", pass.rejected.records()),
                ],
            )
        });
    if let Err(e) = result {
        pass.discard();
        return Err(e);
    }
    bar.finish();
    Ok(pass)
}

/// The valid ids of the entities `entity` refers to.
fn reference_ids(ctx: &Ctx, entity: &Entity) -> Result<Vec<(Reference, KeySet)>> {
    let mut references = Vec::new();
    for r in entity.references {
        references.push((*r, valid_ids(&ctx.data_dir, r.entity)?));
    }
    Ok(references)
}

/// Validates one entity. One pass decides every record by the rules known
/// before reading it (its own findings, references, limits, schema) and
/// meanwhile collects what only the whole artifact tells: keys and unique
/// values held by more than one record. When it finds none (the usual case)
/// its outputs are kept and the input was read once; otherwise they are
/// dropped and a second pass decides again with the duplicates known.
pub async fn run(unit: Unit<'_>) -> Result<Outcome> {
    let (ctx, entity) = (unit.ctx, unit.entity);
    let input = ctx.artifact(Phase::Transform, entity.name);
    // Checked while it is read: the outputs are kept only if it was whole.
    let reader = ArtifactReader::open_streamed(&input)?;
    let again = reader.reopen()?;
    let input_sha256 = Some(reader.manifest().sha256.clone());
    let references = Arc::new(reference_ids(ctx, entity)?);
    let uniques = entity.unique_attributes.len();
    let rules = Rules::new(
        entity,
        references.clone(),
        KeySet::new(),
        vec![HashMap::new(); uniques],
    )?;
    let mut pass = decide_all(ctx, entity, reader, rules)?;
    let (candidates, unique_dups) = pass.shared();
    crate::ctx::release_memory();
    if !candidates.is_empty() || unique_dups.iter().any(|d| !d.is_empty()) {
        pass.discard();
        let duplicate_keys = if candidates.is_empty() {
            KeySet::new()
        } else {
            confirm_duplicates(&again, &candidates)?
        };
        let rules = Rules::new(entity, references, duplicate_keys, unique_dups)?;
        pass = decide_all(ctx, entity, again, rules)?;
    }
    let Pass {
        valid,
        rejected,
        warned,
        reject_counts,
        warning_counts,
        records: n,
        ..
    } = pass;
    let m = valid.finish()?;
    let rejected_count = rejected.records();
    let warned_count = warned.records();
    rejected.finish()?;
    warned.finish()?;
    let mut reasons = reject_counts.clone();
    for (k, v) in &warning_counts {
        reasons.insert(format!("{k} (warning)"), *v);
    }
    let outcome = Outcome {
        records_in: n,
        records_out: m.records,
        rejected: rejected_count,
        warnings: warned_count,
        input_sha256,
        output_sha256: Some(m.sha256.clone()),
        reasons,
        problems: Vec::new(),
    };
    report::update(
        &ctx.report("validation_report.json"),
        &ctx.run_id,
        entity.name,
        sections::Validation {
            input: n,
            valid: m.records,
            rejected: rejected_count,
            records_with_warnings: warned_count,
            rejects_by_reason: &reject_counts,
            warnings_by_reason: &warning_counts,
            files: sections::ValidationFiles {
                validated: ctx.artifact(Phase::Validate, entity.name),
                rejected: ctx.report(&format!("rejected/{}.jsonl", entity.name)),
                warnings: ctx.report(&format!("warnings/{}.jsonl", entity.name)),
            },
            validated_sha256: &m.sha256,
        },
    )?;
    Ok(outcome)
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
