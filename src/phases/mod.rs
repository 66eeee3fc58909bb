//! One module per phase. Each reads its input artifact (verified against its
//! manifest), streams records through, and fills in the checkpoint step.

pub mod conserve;
pub mod estimate;
pub mod extract;
pub mod load;
pub mod plan;
pub mod reconcile;
pub mod transform;
pub mod validate;
pub mod verify;

#[cfg(test)]
mod target_tests;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

pub use conserve::conserved;

/// A 128-bit fingerprint of an item key, for key sets that must stay small
/// in memory at millions of items: two independent 64-bit SipHashes, so a
/// collision among a billion keys has odds around 10⁻²⁰.
pub fn key_hash(pk: &str, sk: &str) -> u128 {
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        pk.hash(&mut h);
        sk.hash(&mut h);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// A set of key fingerprints.
pub type KeySet = HashSet<u128>;
