//! Validate: applies SPEC §6 to the transformed items in two streaming
//! passes. The first collects key fingerprints and the values of attributes
//! that should be unique; the second decides each record: the findings the
//! mapping made, duplicate keys, duplicates of unique attributes, references
//! to the *valid* items of other entities, DynamoDB's 400 KB limit, and the
//! entity's JSON Schema as a backstop. Valid items go to `data/validated/`,
//! rejects to `data/reports/rejected/`, warnings to `data/reports/warnings/`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::{KeySet, key_hash};
use crate::artifact::{ArtifactReader, ArtifactWriter};
use crate::checkpoint::{Phase, Step};
use crate::dynamo::{MAX_ITEM_BYTES, item_size, key_of};
use crate::entities::{self, Entity, Finding, Severity, Transformed};
use crate::error::{Error, Result};
use crate::report;
use crate::runner::{Ctx, artifact_path};

/// The ids of `entity`'s valid items, read from its validated artifact.
pub fn valid_ids(data_dir: &std::path::Path, entity: &dyn Entity) -> Result<KeySet> {
    let path = artifact_path(data_dir, Phase::Validate, entity.name());
    let mut reader = ArtifactReader::open(&path)?;
    let mut ids = KeySet::with_capacity(reader.manifest().records as usize);
    let mut buf = String::new();
    while let Some(item) = reader.next_record::<entities::Item>(&mut buf)? {
        if let Some(id) = item.get(entity.id_attribute()).and_then(Value::as_str) {
            ids.insert(key_hash(id, ""));
        }
    }
    Ok(ids)
}

/// Validates one entity.
pub async fn run(ctx: &Ctx, entity: &dyn Entity, step: &mut Step) -> Result<Vec<String>> {
    let input = ctx.artifact(Phase::Transform, entity.name());
    let schema: Value = serde_json::from_str(entity.schema()).map_err(|e| {
        Error::artifact(
            format!("entities/{}.schema.json", entity.name()),
            e.to_string(),
        )
    })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        Error::artifact(
            format!("entities/{}.schema.json", entity.name()),
            e.to_string(),
        )
    })?;

    // Pass 1: key fingerprints and unique-attribute values.
    let mut reader = ArtifactReader::open(&input)?;
    step.input_sha256 = Some(reader.manifest().sha256.clone());
    let total = reader.manifest().records;
    let mut keys: HashMap<u128, u8> = HashMap::with_capacity(total as usize);
    let uniques = entity.unique_attributes();
    let mut unique_seen: Vec<HashMap<String, u32>> = vec![HashMap::new(); uniques.len()];
    let mut buf = String::new();
    while let Some(t) = reader.next_record::<Transformed>(&mut buf)? {
        let (pk, sk) = key_of(&t.item);
        let c = keys.entry(key_hash(&pk, &sk)).or_insert(0);
        *c = c.saturating_add(1);
        for (u, seen) in uniques.iter().zip(unique_seen.iter_mut()) {
            if let Some(v) = t.item.get(u.attribute).and_then(Value::as_str) {
                *seen.entry(v.to_string()).or_insert(0) += 1;
            }
        }
    }
    for seen in &mut unique_seen {
        seen.retain(|_, c| *c > 1);
    }

    // The valid ids of the entities this one refers to.
    let mut reference_sets = Vec::new();
    for r in entity.references() {
        let target = entities::find(r.entity).ok_or_else(|| {
            Error::Dependency(format!(
                "{} refers to unknown entity {}",
                entity.name(),
                r.entity
            ))
        })?;
        reference_sets.push((r, valid_ids(&ctx.data_dir, target)?));
    }

    // Pass 2: decide.
    let mut reader = ArtifactReader::open(&input)?;
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
    while let Some(t) = reader.next_record::<Transformed>(&mut buf)? {
        if ctx.cancelled() {
            valid.discard();
            rejected.discard();
            warned.discard();
            return Err(Error::Interrupted(
                "validate stopped; nothing was kept".into(),
            ));
        }
        let Transformed {
            legacy_id,
            item,
            mut findings,
        } = t;
        let (pk, sk) = key_of(&item);
        if keys.get(&key_hash(&pk, &sk)).copied().unwrap_or(0) > 1 {
            findings.push(Finding::reject(
                "duplicate_key",
                format!("another item has the key PK={pk}, SK={sk}"),
            ));
        }
        for (u, dups) in uniques.iter().zip(&unique_seen) {
            if let Some(v) = item.get(u.attribute).and_then(Value::as_str)
                && dups.contains_key(v)
            {
                let msg = format!(
                    "{} {v} is shared with {} other item(s)",
                    u.attribute,
                    dups[v] - 1
                );
                findings.push(match u.severity {
                    Severity::Reject => Finding::reject(u.code, msg),
                    Severity::Warning => Finding::warning(u.code, msg),
                });
            }
        }
        for (r, ids) in &reference_sets {
            match item.get(r.attribute).and_then(Value::as_str) {
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
        let size = item_size(&item);
        if size > MAX_ITEM_BYTES {
            findings.push(Finding::reject(
                "item_too_large",
                format!("item is {size} bytes; DynamoDB allows {MAX_ITEM_BYTES}"),
            ));
        }
        let is_reject = |f: &Finding| f.severity == Severity::Reject;
        if !findings.iter().any(is_reject) {
            let instance = Value::Object(item);
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            let Value::Object(back) = instance else {
                unreachable!()
            };
            if !errors.is_empty() {
                findings.push(Finding::reject("schema", errors.join("; ")));
            }
            return_item(
                back,
                legacy_id,
                findings,
                &mut valid,
                &mut rejected,
                &mut warned,
                &mut reject_counts,
                &mut warning_counts,
            )?;
        } else {
            return_item(
                item,
                legacy_id,
                findings,
                &mut valid,
                &mut rejected,
                &mut warned,
                &mut reject_counts,
                &mut warning_counts,
            )?;
        }
        n += 1;
        if n.is_multiple_of(1024) {
            bar.inc(1024);
        }
    }
    bar.inc(n % 1024);
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

#[allow(clippy::too_many_arguments)]
fn return_item(
    item: entities::Item,
    legacy_id: i64,
    findings: Vec<Finding>,
    valid: &mut ArtifactWriter,
    rejected: &mut ArtifactWriter,
    warned: &mut ArtifactWriter,
    reject_counts: &mut BTreeMap<String, u64>,
    warning_counts: &mut BTreeMap<String, u64>,
) -> Result<()> {
    let (rejects, warnings): (Vec<&Finding>, Vec<&Finding>) = findings
        .iter()
        .partition(|f| f.severity == Severity::Reject);
    let (pk, sk) = key_of(&item);
    for f in &warnings {
        *warning_counts.entry(f.code.clone()).or_insert(0) += 1;
    }
    if rejects.is_empty() {
        valid.write(&item)?;
        if !warnings.is_empty() {
            warned.write(&json!({"legacyId": legacy_id, "PK": pk, "warnings": warnings}))?;
        }
    } else {
        for f in &rejects {
            *reject_counts.entry(f.code.clone()).or_insert(0) += 1;
        }
        let reasons: Vec<&str> = rejects.iter().map(|f| f.code.as_str()).collect();
        rejected.write(&json!({
            "legacyId": legacy_id,
            "PK": pk,
            "SK": sk,
            "reasons": reasons,
            "findings": rejects,
            "warnings": warnings,
            "item": item,
        }))?;
    }
    Ok(())
}
