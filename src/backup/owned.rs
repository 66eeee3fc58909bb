//! Which items of a table are the migration's (docs/cutover.md). An item is
//! the migration's when a ledger of the entity's loads since its baseline
//! lists its key, or — for tables loaded before the ledger existed — when
//! it has the entity's key prefix and `createdBy` is
//! [`CREATED_BY`](crate::entities::CREATED_BY). Anything else in the table
//! is *foreign*: a sync never deletes it and verify never calls it extra.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::ledger;
use crate::checkpoint::Checkpoint;
use crate::entities::{CREATED_BY, Entity};
use crate::error::Result;
use crate::fingerprint::{key_hash, short};

/// The keys an entity's ledgers name, and its prefix. The keys are a sorted
/// list of the first 64 bits of their hashes, 8 bytes a key: a hash set of
/// full hashes held 36 MB at a million keys (54 MB while it grew), which
/// made verify's peak at a million sales 117 MB (docs/performance.md).
/// Looked up only for items the artifact lacks; that a foreign item's key
/// shares 64 bits with one of a million ledger keys has odds of 10⁻¹³.
pub struct Owned {
    keys: Vec<u64>,
    prefix: &'static str,
}

impl Owned {
    /// Reads the ledgers the checkpoint in `data_dir` lists for `entity`.
    pub fn load(data_dir: &Path, entity: &Entity) -> Result<Owned> {
        let mut keys = Vec::new();
        if let Some(baseline) =
            Checkpoint::load(data_dir)?.and_then(|cp| cp.baselines.get(entity.name).cloned())
        {
            // Loads after the first name mostly the same keys: merged one
            // ledger at a time, memory is the keys plus one ledger's.
            for l in &baseline.ledgers {
                keys.reserve_exact(l.lines.unwrap_or(0) as usize);
                ledger::read(&l.path, |e| {
                    keys.push(short(key_hash(&e.pk, &e.sk)));
                    Ok(())
                })?;
                keys.sort_unstable();
                keys.dedup();
            }
        }
        keys.shrink_to_fit();
        Ok(Owned {
            keys,
            prefix: entity.key_prefix,
        })
    }

    /// Whether the item with this key and `createdBy` is the migration's.
    pub fn owns(&self, pk: &str, sk: &str, created_by: Option<&str>) -> bool {
        self.keys.binary_search(&short(key_hash(pk, sk))).is_ok()
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

/// [`Owned`], read from the ledgers only when first asked. Verify asks only
/// about items its artifact lacks, so a verify whose table matches the
/// artifact never holds the ledgers' keys (8 MB at a million;
/// docs/performance.md, "Run h"); an unreadable ledger then fails the first
/// question instead of the start.
pub struct LazyOwned {
    data_dir: PathBuf,
    entity: &'static Entity,
    owned: OnceLock<Owned>,
}

impl LazyOwned {
    pub fn new(data_dir: &Path, entity: &'static Entity) -> LazyOwned {
        LazyOwned {
            data_dir: data_dir.to_path_buf(),
            entity,
            owned: OnceLock::new(),
        }
    }

    /// [`Owned::owns`], reading the ledgers the first time.
    pub fn owns(&self, pk: &str, sk: &str, created_by: Option<&str>) -> Result<bool> {
        if self.owned.get().is_none() {
            let loaded = Owned::load(&self.data_dir, self.entity)?;
            // Verify asks from one task; were it two, both loaded the same.
            let _ = self.owned.set(loaded);
        }
        let owned = self.owned.get().expect("set just above");
        Ok(owned.owns(pk, sk, created_by))
    }

    /// Whether the ledgers have been read.
    #[cfg(test)]
    fn is_loaded(&self) -> bool {
        self.owned.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_keys_and_the_migrations_mark_are_ours_the_rest_is_foreign() {
        let owned = Owned {
            keys: vec![short(key_hash("BUYER#1", "METADATA"))],
            prefix: "BUYER#",
        };
        assert!(owned.owns("BUYER#1", "METADATA", Some("someone")));
        assert!(owned.owns("BUYER#2", "METADATA", Some(CREATED_BY)));
        assert!(!owned.owns("BUYER#2", "METADATA", Some("app@example")));
        assert!(!owned.owns("BUYER#2", "METADATA", None));
        // the mark alone is not enough outside the entity's prefix
        assert!(!owned.owns("SALE#2", "METADATA", Some(CREATED_BY)));
    }

    #[test]
    fn the_ledgers_are_read_at_the_first_question_not_before() {
        let dir = std::env::temp_dir().join(format!("migrate-owned-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let buyers = crate::entities::find("buyers").unwrap();
        // A checkpoint that cannot be read: nothing asks for it yet.
        std::fs::write(dir.join(Checkpoint::FILE), "{ not json").unwrap();
        let lazy = LazyOwned::new(&dir, buyers);
        assert!(!lazy.is_loaded());
        let e = lazy.owns("BUYER#1", "METADATA", None).unwrap_err();
        assert!(e.to_string().contains(Checkpoint::FILE), "{e}");
        // With no checkpoint there are no ledgers: only the mark counts.
        std::fs::remove_file(dir.join(Checkpoint::FILE)).unwrap();
        let lazy = LazyOwned::new(&dir, buyers);
        assert!(lazy.owns("BUYER#1", "METADATA", Some(CREATED_BY)).unwrap());
        assert!(!lazy.owns("BUYER#2", "METADATA", None).unwrap());
        assert!(lazy.is_loaded());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
