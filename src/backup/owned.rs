//! Which items of a table are the migration's (docs/cutover.md). An item is
//! the migration's when a ledger of the entity's loads since its baseline
//! lists its key, or — for tables loaded before the ledger existed — when
//! it has the entity's key prefix and `createdBy` is
//! [`CREATED_BY`](crate::entities::CREATED_BY). Anything else in the table
//! is *foreign*: a sync never deletes it and verify never calls it extra.

use std::path::Path;

use super::ledger;
use crate::checkpoint::Checkpoint;
use crate::entities::{CREATED_BY, Entity};
use crate::error::Result;
use crate::fingerprint::{Fingerprint, key_hash};

/// The keys an entity's ledgers name, and its prefix. The key hashes are a
/// sorted list, 16 bytes a key: a hash set of a million keys held 36 MB
/// (54 MB while it grew), which made verify's peak at a million sales 117
/// MB (docs/performance.md). Looked up only for items the artifact lacks.
pub struct Owned {
    keys: Vec<Fingerprint>,
    prefix: &'static str,
}

impl Owned {
    /// Reads the ledgers the checkpoint in `data_dir` lists for `entity`.
    pub fn load(data_dir: &Path, entity: &Entity) -> Result<Owned> {
        let mut keys = Vec::new();
        if let Some(baseline) =
            Checkpoint::load(data_dir)?.and_then(|cp| cp.baselines.get(entity.name).cloned())
        {
            keys.reserve_exact(
                baseline.ledgers.iter().filter_map(|l| l.lines).sum::<u64>() as usize
            );
            for l in &baseline.ledgers {
                ledger::read(&l.path, |e| {
                    keys.push(key_hash(&e.pk, &e.sk));
                    Ok(())
                })?;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys.shrink_to_fit();
        Ok(Owned {
            keys,
            prefix: entity.key_prefix,
        })
    }

    /// Whether the item with this key and `createdBy` is the migration's.
    pub fn owns(&self, pk: &str, sk: &str, created_by: Option<&str>) -> bool {
        self.keys.binary_search(&key_hash(pk, sk)).is_ok()
            || (pk.starts_with(self.prefix) && created_by == Some(CREATED_BY))
    }

    /// Keys the ledgers name.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_keys_and_the_migrations_mark_are_ours_the_rest_is_foreign() {
        let owned = Owned {
            keys: vec![key_hash("BUYER#1", "METADATA")],
            prefix: "BUYER#",
        };
        assert!(owned.owns("BUYER#1", "METADATA", Some("someone")));
        assert!(owned.owns("BUYER#2", "METADATA", Some(CREATED_BY)));
        assert!(!owned.owns("BUYER#2", "METADATA", Some("app@example")));
        assert!(!owned.owns("BUYER#2", "METADATA", None));
        // the mark alone is not enough outside the entity's prefix
        assert!(!owned.owns("SALE#2", "METADATA", Some(CREATED_BY)));
    }
}
