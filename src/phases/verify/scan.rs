//! Verify by one Scan (the default): the artifact's fingerprints against
//! one consistent parallel Scan of the table; the few items that do not
//! match are told apart by key in a second pass over the artifact.

use std::collections::HashMap;

use super::reconcile::{self, Tally};
use crate::artifact::ArtifactReader;
use crate::ctx::Ctx;
use crate::dynamo::{self, item_from_av, key_of};
use crate::entities::Item;
use crate::error::{Error, Result};
use crate::fingerprint::key_hash;
use crate::fingerprint::{self, short};

use super::*;

/// A table item whose fingerprint the artifact does not hold: a changed
/// item, or one the artifact does not have at all. Rare; told apart in pass 2.
pub(super) struct Unmatched {
    pub(super) pk: String,
    pub(super) sk: String,
    /// The item itself, kept for the first few (report examples).
    pub(super) item: Option<Item>,
    /// Its orphan references, counted only if it turns out to be expected.
    pub(super) orphans: Findings,
    pub(super) paired: bool,
    /// The migration's (`backup::owned`): extra if the artifact lacks it.
    pub(super) owned: bool,
}

/// How many unmatched table items keep their attributes for the examples;
/// the expected side of the others is fetched by key when needed.
pub(super) const KEEP_UNMATCHED_ITEMS: usize = 1000;

/// One parallel Scan of the table, each item's fingerprint looked up among
/// the artifact's: found = the same item (marked). The rest — table items
/// whose fingerprint the artifact lacks, artifact items never marked — are
/// few, and a second pass over the artifact (only then) pairs them by key:
/// both sides = different; artifact only = missing; table only = extra if
/// the migration's, foreign otherwise.
pub(super) async fn by_scan(
    ctx: &Ctx,
    t: &Target<'_>,
    reader: &ArtifactReader,
    expected: Vec<u64>,
    tally: &mut Option<Tally>,
) -> Result<Findings> {
    let mut f = Findings {
        expected: expected.len() as u64,
        ..Findings::default()
    };
    let mut marked = vec![0u64; expected.len().div_ceil(64)];
    let mut unmatched: Vec<Unmatched> = Vec::new();
    let bar = ctx.progress.bar(t.entity.name, "verify", Some(f.expected));
    let mut pages = t.scan(false);
    while let Some(page) = pages.recv().await {
        stop_if_cancelled(ctx, t.entity.name)?;
        let page = page?;
        for wire in page.items() {
            let av = scanned(&t.table, wire)?;
            let av = &av;
            f.counted += 1;
            let text = |name: &str| wire_str(av, name);
            let key = (
                text("PK").unwrap_or_default(),
                text("SK").unwrap_or_default(),
            );
            let found = expected.binary_search(&short(fingerprint::of_wire(av)));
            let owned = found.is_ok() || t.owned.owns(key.0, key.1, text("createdBy"))?;
            // The money of the migration's items only: foreign items are
            // the application's (docs/checks.md).
            if let Some(tally) = tally.as_mut().filter(|_| owned) {
                tally.add(|a| reconcile::wire_value(av, a));
            }
            match found {
                Ok(i) => {
                    marked[i / 64] |= 1 << (i % 64);
                    f.matched += 1;
                    f.references(&t.refs, key, text);
                }
                Err(_) => {
                    let mut orphans = Findings::default();
                    orphans.references(&t.refs, key, text);
                    unmatched.push(Unmatched {
                        pk: key.0.to_string(),
                        sk: key.1.to_string(),
                        item: if unmatched.len() < KEEP_UNMATCHED_ITEMS {
                            Some(item_from_av(&dynamo::wire_item_to_av(wire).map_err(
                                |e| Error::target(format!("scan of {}: {e}", t.table)),
                            )?))
                        } else {
                            None
                        },
                        orphans,
                        paired: false,
                        owned,
                    });
                }
            }
        }
        bar.inc(page.len() as u64);
        bar.set_errors(unmatched.len() as u64 + f.orphans, String::new());
    }
    bar.finish();
    let unmarked = f.expected - f.matched;
    if unmarked > 0 || !unmatched.is_empty() {
        let by_key: HashMap<u128, usize> = unmatched
            .iter()
            .enumerate()
            .map(|(i, u)| (key_hash(&u.pk, &u.sk), i))
            .collect();
        // Differences whose table side was not kept: fetched afterwards.
        let mut fetch: Vec<Item> = Vec::new();
        let mut reader = reader.reopen()?;
        let mut buf = String::new();
        let mut seen = 0u64;
        while seen < unmarked {
            let Some(item) = reader.next_record::<Item>(&mut buf)? else {
                break;
            };
            let Ok(i) = expected.binary_search(&short(fingerprint::of_item(&item))) else {
                continue; // the artifact changed under us: reopen() guards it
            };
            if marked[i / 64] & (1 << (i % 64)) != 0 {
                continue;
            }
            seen += 1;
            let (pk, sk) = key_of(&item);
            match by_key.get(&key_hash(&pk, &sk)) {
                Some(&u) => {
                    let u = &mut unmatched[u];
                    u.paired = true;
                    f.different += 1;
                    // The first EXAMPLES differences of the artifact are the
                    // examples, whether their table side was kept or is fetched.
                    match &u.item {
                        _ if f.different_examples.len() + fetch.len() >= EXAMPLES => {}
                        Some(actual) => f.different_example((&pk, &sk), &item, actual),
                        None => fetch.push(item),
                    }
                    f.orphans += u.orphans.orphans;
                    for o in u.orphans.orphan_examples.drain(..) {
                        if f.orphan_examples.len() < EXAMPLES {
                            f.orphan_examples.push(o);
                        }
                    }
                }
                None => f.missing((&pk, &sk), &item),
            }
        }
        for u in unmatched.iter().filter(|u| !u.paired) {
            f.not_expected(u.owned, (&u.pk, &u.sk));
        }
        if !fetch.is_empty() {
            let found = read_by_key(&*t.store, &t.table, &t.policy, &fetch).await?;
            for expected in &fetch {
                let key = key_of(expected);
                let actual = found.get(&key).cloned().unwrap_or_default();
                f.different_example((&key.0, &key.1), expected, &actual);
            }
        }
    }
    Ok(f)
}
