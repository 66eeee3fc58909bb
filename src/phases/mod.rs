//! One module per phase. Each reads its input artifact (verified against its
//! manifest), streams records through, and fills in the checkpoint step.

pub mod extract;
pub mod load;
pub mod plan;
pub mod transform;
pub mod validate;
pub mod verify;

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// A 128-bit fingerprint of an item key, for key sets that must stay small
/// in memory at millions of items (collisions are negligible at 2⁻⁶⁴ scale).
pub fn key_hash(pk: &str, sk: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(pk.as_bytes());
    h.update([0u8]);
    h.update(sk.as_bytes());
    let d = h.finalize();
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

/// A set of key fingerprints.
pub type KeySet = HashSet<u128>;
