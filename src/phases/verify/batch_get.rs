//! Verify by key (`verifyMethod: "batchGet"`): every artifact key read
//! back with BatchGetItem, then a keys-only Scan for the count and the
//! extra items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;

use super::reconcile::{self, Tally};
use crate::artifact::ArtifactReader;
use crate::ctx::Ctx;
use crate::dynamo::{self, MAX_BATCH_GET_KEYS, RetryPolicy, item_from_av, key_of};
use crate::entities::Item;
use crate::error::Result;
use crate::fingerprint::key_hash;

use super::*;

/// Reads the table's side of `items` by key (BatchGetItem, consistent),
/// keyed by (PK, SK); items the table lacks are absent.
pub(super) async fn read_by_key(
    target: &dyn dynamo::Target,
    table: &str,
    policy: &RetryPolicy,
    items: &[Item],
) -> Result<HashMap<(String, String), Item>> {
    let keys = items
        .iter()
        .map(|i| {
            let (pk, sk) = key_of(i);
            HashMap::from([
                ("PK".to_string(), AttributeValue::S(pk)),
                ("SK".to_string(), AttributeValue::S(sk)),
            ])
        })
        .collect();
    Ok(dynamo::batch_get(target, table, keys, policy)
        .await?
        .iter()
        .map(|av| {
            let item = item_from_av(av);
            (key_of(&item), item)
        })
        .collect())
}

/// BatchGetItem of every artifact key (100 a request, `concurrency` in
/// flight, consistent reads), then a keys-only parallel Scan for the count
/// and the extra items.
pub(super) async fn by_batch_get(
    ctx: &Ctx,
    t: &Target<'_>,
    mut reader: ArtifactReader,
    tally: &mut Option<Tally>,
) -> Result<Findings> {
    let total = reader.manifest().records;
    let bar = ctx.progress.bar(t.entity.name, "verify", Some(total));
    let mut f = Findings::default();
    // Sorted once the comparison is done: 16 bytes an item, no hash table.
    let mut expected_keys: Vec<u128> = Vec::with_capacity(total as usize);
    let mut buf = String::new();
    let mut in_flight = FuturesUnordered::new();
    let mut group: Vec<Item> = Vec::with_capacity(MAX_BATCH_GET_KEYS);
    let mut done = false;
    while !done || !in_flight.is_empty() {
        while !done && in_flight.len() < t.concurrency {
            match reader.next_record::<Item>(&mut buf)? {
                Some(item) => {
                    let (pk, sk) = key_of(&item);
                    expected_keys.push(key_hash(&pk, &sk));
                    group.push(item);
                    if group.len() < MAX_BATCH_GET_KEYS {
                        continue;
                    }
                }
                None => done = true,
            }
            if group.is_empty() {
                continue;
            }
            let items = std::mem::take(&mut group);
            let (store, table, policy) = (t.store.clone(), t.table.clone(), t.policy.clone());
            in_flight.push(async move {
                let found = read_by_key(&*store, &table, &policy, &items).await;
                (items, found)
            });
        }
        let Some((items, found)) = in_flight.next().await else {
            break;
        };
        let mut by_key = found?;
        for expected in &items {
            f.expected += 1;
            let key = key_of(expected);
            let k = (key.0.as_str(), key.1.as_str());
            match by_key.remove(&key) {
                None => f.missing(k, expected),
                Some(actual) => {
                    if let Some(tally) = tally.as_mut() {
                        tally.add(|a| reconcile::plain_value(&actual, a));
                    }
                    if differences(expected, &actual).is_empty() {
                        f.matched += 1;
                    } else {
                        f.different += 1;
                        f.different_example(k, expected, &actual);
                    }
                    f.references(&t.refs, k, |a| actual.get(a).and_then(Value::as_str));
                }
            }
        }
        bar.inc(items.len() as u64);
        bar.set_errors(f.missing + f.different + f.orphans, String::new());
    }
    bar.finish();

    // One keys-only parallel Scan both counts the entity's items in the table
    // and finds the extra ones.
    expected_keys.sort_unstable();
    let mut pages = t.scan(true);
    while let Some(page) = pages.recv().await {
        stop_if_cancelled(ctx, t.entity.name)?;
        let page = page?;
        for item in page.items() {
            let item = scanned(&t.table, item)?;
            f.counted += 1;
            let key = (
                wire_str(&item, "PK").unwrap_or_default(),
                wire_str(&item, "SK").unwrap_or_default(),
            );
            if expected_keys
                .binary_search(&key_hash(key.0, key.1))
                .is_err()
            {
                f.not_expected(
                    t.owned.owns(key.0, key.1, wire_str(&item, "createdBy"))?,
                    key,
                );
            }
        }
    }
    Ok(f)
}
