//! Verify: proof that the table holds what was validated. Every item of the
//! validated artifact is compared with the table's, all attributes, numbers
//! by value and maps member by member, in one of two ways:
//! - `scan` (default): the artifact's item fingerprints (8 bytes an item,
//!   sorted) against one consistent parallel Scan of the table; the few items
//!   that do not match are told apart (different, missing, extra) by key in a
//!   second pass over the artifact;
//! - `batchGet`: every artifact key read back with BatchGetItem (100 keys a
//!   request, several in flight), then a keys-only parallel Scan for the count
//!   and the extra items.
//!
//! Either way the Scan counts the entity's items; an item the artifact lacks
//! is extra if it is the migration's (a ledger lists it, or it carries the
//! migration's `createdBy`: `backup::owned`), whatever run wrote it, and
//! foreign otherwise (reported apart, not a failure); references to other
//! entities are checked against their tables. Differences go to
//! `data/reports/verification_report.json`.

use std::time::Instant;

use super::reconcile::{self, Tally};
use super::{Outcome, Unit};
use crate::artifact::ArtifactReader;
use crate::checkpoint::Phase;
use crate::config::VerifyMethod;
use crate::ctx::Ctx;
use crate::dynamo::{self, RetryPolicy};
use crate::entities::{self, Entity};
use crate::error::{Error, Result};
use crate::fingerprint::{self, KeySet, key_hash, short};
use crate::json::Obj;
use crate::report::{self, sections};

mod batch_get;
mod compare;
pub mod indexes;
mod scan;

use batch_get::*;
pub use compare::differences;
use compare::*;
use scan::*;

/// How many examples of each kind of difference the report lists.
const EXAMPLES: usize = 50;

/// What both ways of verifying need.
struct Target<'a> {
    entity: &'a Entity,
    table: String,
    store: dynamo::SharedTarget,
    policy: RetryPolicy,
    segments: u32,
    concurrency: usize,
    refs: Vec<(entities::Reference, KeySet)>,
    /// Which items are the migration's (extra) and which foreign, read
    /// from the ledgers at the first item the artifact lacks.
    owned: crate::backup::owned::LazyOwned,
}

impl Target<'_> {
    /// A consistent parallel Scan of the entity's items in its table.
    fn scan(&self, keys_only: bool) -> tokio::sync::mpsc::Receiver<Result<dynamo::RawPage>> {
        dynamo::scan(
            &self.store,
            &self.table,
            self.segments,
            Some(self.entity.key_prefix),
            keys_only,
            &self.policy,
        )
    }
}

/// Verifies one entity against its table.
pub async fn run(unit: Unit<'_>) -> Result<Outcome> {
    let (ctx, entity) = (unit.ctx, unit.entity);
    let started = Instant::now();
    let artifact = ctx.artifact(Phase::Validate, entity.name);
    // Checked while it is read (the report is written only after a whole
    // pass, so a file that differs from its manifest leaves nothing).
    let mut reader = ArtifactReader::open_streamed(&artifact)?;
    let input_sha256 = Some(reader.manifest().sha256.clone());
    let store = ctx.target().await;
    let policy = RetryPolicy::from_config(&ctx.config.migration);
    let segments = ctx.config.migration.scan_segments;
    let method = ctx.config.migration.verify_method;

    // The scan method fingerprints the artifact on a worker thread while the
    // referenced tables' keys are scanned.
    // The same pass counts what the indexes should hold (docs/checks.md).
    let pass1 = (method == VerifyMethod::Scan).then(|| {
        let mut expecting = indexes::Expecting::new(entity);
        tokio::task::spawn_blocking(move || {
            let expected = fingerprints(&mut reader, &mut expecting);
            // The parsed items are gone: give their pages back before the scan.
            crate::ctx::release_memory();
            expected.map(|e| (reader, e, expecting.finish()))
        })
    });

    // The ids present in the tables this entity refers to.
    let mut refs: Vec<(entities::Reference, KeySet)> = Vec::new();
    for r in entity.references {
        let target = r.entity;
        let ref_table = ctx.table(target)?.to_string();
        let mut ids = KeySet::new();
        let mut pages = dynamo::scan(
            &store,
            &ref_table,
            segments,
            Some(target.key_prefix),
            true,
            &policy,
        );
        while let Some(page) = pages.recv().await {
            stop_if_cancelled(ctx, entity.name)?;
            let page = page?;
            for item in page.items() {
                let item = scanned(&ref_table, item)?;
                if let Some(id) = wire_str(&item, "PK").and_then(|pk| target.id_in_key(pk)) {
                    ids.insert(key_hash(id, ""));
                }
            }
        }
        refs.push((*r, ids));
    }
    let t = Target {
        entity,
        table: ctx.table(entity)?.to_string(),
        store,
        policy,
        segments,
        concurrency: ctx.config.migration.concurrency.max(1),
        refs,
        owned: crate::backup::owned::LazyOwned::new(&ctx.data_dir, entity),
    };

    // What the indexes should hold, and the money the table's items carry
    // (docs/checks.md): counted along the way, nothing kept per item.
    let mut tally = entity.reconcile.map(Tally::new);
    let (f, index_expected) = match pass1 {
        Some(pass1) => {
            let (reader, expected, index_expected) = match pass1.await {
                Ok(done) => done?,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            let f = match expected {
                Some(expected) => by_scan(ctx, &t, &reader, expected, &mut tally).await?,
                None => {
                    tracing::warn!(
                        "{}: two items share a 64-bit fingerprint; verifying with BatchGetItem instead",
                        entity.name
                    );
                    by_batch_get(ctx, &t, reader.reopen()?, &mut tally).await?
                }
            };
            (f, index_expected)
        }
        None => {
            let index_expected = indexes::expected(&artifact, entity)?;
            let reader = ArtifactReader::open_streamed(&artifact)?;
            (
                by_batch_get(ctx, &t, reader, &mut tally).await?,
                index_expected,
            )
        }
    };
    let (indexes, bad_indexes) = indexes::verify(
        &*t.store,
        &t.table,
        entity,
        index_expected,
        segments,
        &t.policy,
    )
    .await?;
    let (reconciliation, unreconciled) = match tally {
        Some(tally) => {
            let (section, problem) = reconcile::verify(ctx, entity, tally).await?;
            (Some(section), problem)
        }
        None => (None, None),
    };
    let table = t.table;
    let reads = t.policy.calls.counts();
    if reads.retries > 0 {
        tracing::warn!(
            "verify of {}: {} reads retried ({} throttled, {} server errors, {} timeouts, {} keys unprocessed), {} ms waited",
            entity.name,
            reads.retries,
            reads.throttled,
            reads.server_errors,
            reads.timeouts,
            reads.unprocessed_items,
            reads.wait_ms
        );
    }

    let seconds = started.elapsed().as_secs_f64();
    let problems = f.missing + f.different + f.extra + f.orphans + bad_indexes;
    let mut outcome = Outcome {
        records_in: f.expected,
        records_out: f.matched,
        rejected: problems,
        input_sha256,
        ..Outcome::default()
    };
    outcome.reasons = [
        ("missing", f.missing),
        ("different", f.different),
        ("extra", f.extra),
        ("orphan_reference", f.orphans),
        ("index", bad_indexes),
        ("reconciliation", u64::from(unreconciled.is_some())),
    ]
    .into_iter()
    .filter(|(_, v)| *v > 0)
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    report::update(
        &ctx.report("verification_report.json"),
        &ctx.run_id,
        entity.name,
        sections::Verification {
            table: &table,
            method: match method {
                VerifyMethod::Scan => "scan",
                VerifyMethod::BatchGet => "batchGet",
            },
            ok: problems == 0 && unreconciled.is_none(),
            expected: f.expected,
            found: f.expected - f.missing,
            matched: f.matched,
            count_by_scan: f.counted,
            missing: f.missing,
            different: f.different,
            extra: f.extra,
            orphan_references: f.orphans,
            indexes,
            reconciliation,
            foreign: f.foreign,
            examples: sections::Examples {
                missing: &f.missing_examples,
                different: &f.different_examples,
                extra: &f.extra_examples,
                foreign: &f.foreign_examples,
                orphan_references: &f.orphan_examples,
            },
            reads,
            seconds,
            items_per_second: if seconds > 0.0 {
                f.expected as f64 / seconds
            } else {
                0.0
            },
        },
    )?;
    if problems == 0 && unreconciled.is_none() {
        tracing::info!(
            "verified {}: {} items match, {} counted by scan",
            entity.name,
            f.matched,
            f.counted
        );
        Ok(outcome)
    } else {
        let mut found = Vec::new();
        if problems > 0 {
            found.push(format!(
                "{}: verification found {} missing, {} different, {} extra, {} orphan reference(s), {} index(es) \
                 not holding what they should; see {}",
                entity.name,
                f.missing,
                f.different,
                f.extra,
                f.orphans,
                bad_indexes,
                ctx.report("verification_report.json").display()
            ));
        }
        found.extend(unreconciled);
        outcome.problems = found;
        Ok(outcome)
    }
}

/// Pass 1 of the scan method: the sorted fingerprints of every artifact item
/// (key and content: the key attributes are part of the item), 8 bytes an
/// item. `None` when two items share one (odds ~10⁻⁸ at a million items):
/// the caller then verifies with BatchGetItem.
fn fingerprints(
    reader: &mut ArtifactReader,
    indexes: &mut indexes::Expecting,
) -> Result<Option<Vec<u64>>> {
    let mut expected = Vec::with_capacity(reader.manifest().records as usize);
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        // Parsed once, for the fingerprint and the indexes.
        let item = Obj::parse(&buf).map_err(|e| {
            Error::artifact(reader.path(), format!("line {}: {e}", reader.line_no()))
        })?;
        expected.push(short(fingerprint::of_line(&item)));
        indexes.add(&item);
    }
    expected.sort_unstable();
    let collision = expected.windows(2).any(|w| w[0] == w[1]);
    Ok((!collision).then_some(expected))
}

/// Verify only reads: on Ctrl-C or `--time-limit` it stops between pages
/// and `--resume` verifies the entity again from the start.
fn stop_if_cancelled(ctx: &Ctx, entity: &str) -> Result<()> {
    if ctx.cancelled() {
        return Err(Error::Interrupted(format!(
            "verify of {entity} stopped; `migrate --resume` verifies it again"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::Item;
    use crate::fingerprint::{of_item as fingerprint, of_line};

    #[test]
    fn numbers_by_value_maps_by_member() {
        let a: Item = serde_json::from_str(r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}}"#).unwrap();
        let b: Item = serde_json::from_str(r#"{"n": 1.5, "m": {"y": 2, "x": "1"}}"#).unwrap();
        assert!(differences(&a, &b).is_empty());
        let c: Item = serde_json::from_str(r#"{"n": 1.51, "m": {"x": "1"}, "z": true}"#).unwrap();
        let d = differences(&a, &c);
        let names: Vec<&str> = d.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["m", "n", "z"]);
    }

    #[test]
    fn fingerprints_agree_with_the_comparison() {
        let item = |t: &str| serde_json::from_str::<Item>(t).unwrap();
        let a =
            item(r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#);
        let same =
            item(r#"{"z": null, "b": true, "l": [1.0, "a"], "m": {"y": 2, "x": "1"}, "n": 15e-1}"#);
        assert!(differences(&a, &same).is_empty());
        assert_eq!(fingerprint(&a), fingerprint(&same));
        let line =
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "\u0061"], "b": true, "z": null}"#;
        assert_eq!(of_line(&Obj::parse(line).unwrap()), fingerprint(&a));
        for other in [
            r#"{"n": 1.51, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": ["a", 1], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": 1, "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": "1"}, "l": [1, "a"], "b": true, "z": null}"#,
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true}"#,
            r#"{"n": 1.50, "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": false}"#,
            r#"{"n": "1.50", "m": {"x": "1", "y": 2.0}, "l": [1, "a"], "b": true, "z": null}"#,
        ] {
            let b = item(other);
            assert!(!differences(&a, &b).is_empty(), "{other}");
            assert_ne!(fingerprint(&a), fingerprint(&b), "{other}");
            assert_eq!(
                of_line(&Obj::parse(other).unwrap()),
                fingerprint(&b),
                "{other}"
            );
        }
    }
}
