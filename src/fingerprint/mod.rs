//! Item fingerprints: one walk over an item's attributes that gives the same
//! value for items verify calls equal (numbers by value, maps member by
//! member, lists in order, every kind tagged), whichever form the item is
//! read in: an artifact line, a `serde_json` map, an SDK item, or DynamoDB's
//! wire JSON as a Scan page or a backup holds it.
//!
//! There is one fingerprint, [`Fingerprint`]: the walk's tokens hashed with
//! SHA-256, cut to 128 bits ([`Stable`]), so it means the same to a later
//! binary (the load's ledger keeps it on disk) and is the same in verify,
//! sync and rollback. Sets that hold one per item in memory keep its first
//! 64 bits ([`short`]). An item's key has its fingerprint too
//! ([`key_hash`]): the fingerprint of the item that holds only the key
//! (docs/design.md, "Fingerprints").

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dynamo;
use crate::entities::Item;
use crate::json::{Obj, Val};
use crate::mapping::canonical_number_cow;

/// The walk of an attribute value, the same for values verify's comparison
/// calls equal: numbers by canonical decimal text, maps by sorted member
/// names, lists in order, every kind tagged.
fn fingerprint_into(value: &Value, h: &mut Stable) {
    match value {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => {
            1u8.hash(h);
            b.hash(h);
        }
        Value::Number(n) => {
            2u8.hash(h);
            match canonical_number_cow(n.as_str()) {
                Some(c) => c.hash(h),
                None => n.as_str().hash(h),
            }
        }
        Value::String(s) => {
            3u8.hash(h);
            s.hash(h);
        }
        Value::Array(items) => {
            4u8.hash(h);
            items.len().hash(h);
            for v in items {
                fingerprint_into(v, h);
            }
        }
        Value::Object(map) => fingerprint_members(
            map.iter().map(|(k, v)| (k.as_str(), v)),
            h,
            fingerprint_into,
        ),
    }
}

/// [`fingerprint_into`] of a value parsed in place (see [`of_line`]).
fn fingerprint_val(value: &Val<'_>, h: &mut Stable) {
    match value {
        Val::Null => 0u8.hash(h),
        Val::Bool(b) => {
            1u8.hash(h);
            b.hash(h);
        }
        Val::Num(n) => {
            2u8.hash(h);
            match canonical_number_cow(n) {
                Some(c) => c.hash(h),
                None => n.hash(h),
            }
        }
        Val::Str(s) => {
            3u8.hash(h);
            s.hash(h);
        }
        Val::Arr(items) => {
            4u8.hash(h);
            items.len().hash(h);
            for v in items {
                fingerprint_val(v, h);
            }
        }
        Val::Obj(o) => fingerprint_obj(o, h),
    }
}

fn fingerprint_obj(o: &Obj<'_>, h: &mut Stable) {
    fingerprint_members(o.0.iter().map(|(k, v)| (k.as_ref(), v)), h, fingerprint_val)
}

/// An item's fingerprint (see the module's head).
pub type Fingerprint = u128;

/// The fingerprint of an artifact line (plain JSON) parsed in place: equal to
/// [`of_wire`] of the item the load sends for it.
pub fn of_line(item: &Obj<'_>) -> Fingerprint {
    let mut h = Stable::new();
    fingerprint_obj(item, &mut h);
    h.digest()
}

/// The first 64 bits of a fingerprint, for sets that hold one per item in
/// memory (verify, sync).
pub fn short(fp: Fingerprint) -> u64 {
    (fp >> 64) as u64
}

/// Like [`fingerprint_into`] for an object's members.
fn fingerprint_members<'a, V: 'a>(
    members: impl ExactSizeIterator<Item = (&'a str, &'a V)>,
    h: &mut Stable,
    value: impl Fn(&V, &mut Stable),
) {
    5u8.hash(h);
    members.len().hash(h);
    let mut members: Vec<(&str, &V)> = members.collect();
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (k, v) in members {
        k.hash(h);
        value(v, h);
    }
}

/// The fingerprint of an item held as a `serde_json` map: equal to
/// [`of_line`] of its text.
pub fn of_item(item: &Item) -> Fingerprint {
    let mut h = Stable::new();
    fingerprint_members(
        item.iter().map(|(k, v)| (k.as_str(), v)),
        &mut h,
        fingerprint_into,
    );
    h.digest()
}

/// The fingerprint of an SDK item (a GetItem or BatchGetItem answer): equal
/// to [`of_wire`] of the same item on the wire, and to [`of_item`] of the
/// JSON item `from_av` makes of it.
pub fn of_av(item: &dynamo::AvItem) -> Fingerprint {
    let mut h = Stable::new();
    av_item_into(item, &mut h);
    h.digest()
}

fn av_item_into(item: &dynamo::AvItem, h: &mut Stable) {
    fingerprint_members(item.iter().map(|(k, v)| (k.as_str(), v)), h, av_value);
}

/// [`fingerprint_into`] of an SDK value, as `from_av` would convert it
/// (sets and binaries, which have no JSON form, apart).
fn av_value(v: &AttributeValue, h: &mut Stable) {
    match v {
        AttributeValue::S(s) => {
            3u8.hash(h);
            s.hash(h);
        }
        AttributeValue::N(n) => number_fingerprint(n, h),
        AttributeValue::Bool(b) => {
            1u8.hash(h);
            b.hash(h);
        }
        AttributeValue::Null(_) => 0u8.hash(h),
        AttributeValue::L(items) => {
            4u8.hash(h);
            items.len().hash(h);
            for v in items {
                av_value(v, h);
            }
        }
        AttributeValue::M(map) => {
            fingerprint_members(map.iter().map(|(k, v)| (k.as_str(), v)), h, av_value)
        }
        // Sets in any order (the server keeps none), binaries by their bytes:
        // never in an artifact, but in backups of tables that hold them.
        AttributeValue::Ss(v) => set(6, v.iter().map(|s| s.as_bytes().to_vec()), h),
        AttributeValue::Ns(v) => set(
            7,
            v.iter().map(|n| {
                canonical_number_cow(n)
                    .map(Cow::into_owned)
                    .unwrap_or_else(|| n.clone())
                    .into_bytes()
            }),
            h,
        ),
        AttributeValue::Bs(v) => set(8, v.iter().map(|b| b.as_ref().to_vec()), h),
        AttributeValue::B(b) => {
            10u8.hash(h);
            b.as_ref().hash(h);
        }
        other => fingerprint_into(&dynamo::from_av(other), h),
    }
}

fn set(tag: u8, members: impl Iterator<Item = Vec<u8>>, h: &mut Stable) {
    let mut members: Vec<Vec<u8>> = members.collect();
    members.sort_unstable();
    tag.hash(h);
    members.len().hash(h);
    for m in members {
        m.hash(h);
    }
}

/// The fingerprint of an item in DynamoDB's wire JSON parsed in place (a
/// Scan page's item, a backup line, the item of a put request as sent):
/// equal to [`of_av`] of the item the SDK would have decoded.
pub fn of_wire(item: &Obj<'_>) -> Fingerprint {
    let mut h = Stable::new();
    wire_item_into(item, &mut h);
    h.digest()
}

fn wire_item_into(item: &Obj<'_>, h: &mut Stable) {
    fingerprint_members(item.0.iter().map(|(k, v)| (k.as_ref(), v)), h, wire_value);
}

fn wire_value(v: &Val<'_>, h: &mut Stable) {
    if let Val::Obj(o) = v
        && let [(kind, inner)] = o.0.as_slice()
    {
        match (kind.as_ref(), inner) {
            ("S", Val::Str(s)) => {
                3u8.hash(h);
                s.hash(h);
                return;
            }
            ("N", Val::Str(n)) => {
                number_fingerprint(n, h);
                return;
            }
            ("BOOL", Val::Bool(b)) => {
                1u8.hash(h);
                b.hash(h);
                return;
            }
            ("NULL", _) => {
                0u8.hash(h);
                return;
            }
            ("L", Val::Arr(items)) => {
                4u8.hash(h);
                items.len().hash(h);
                for v in items {
                    wire_value(v, h);
                }
                return;
            }
            ("M", Val::Obj(m)) => {
                fingerprint_members(m.0.iter().map(|(k, v)| (k.as_ref(), v)), h, wire_value);
                return;
            }
            _ => {}
        }
    }
    // Sets, binaries: rare; through the SDK value. What is not a value at all
    // cannot equal an artifact value.
    match dynamo::wire_to_av(v) {
        Ok(av) => av_value(&av, h),
        Err(_) => {
            9u8.hash(h);
            format!("{v:?}").hash(h);
        }
    }
}

/// A number's part of a fingerprint, as `from_av` reads DynamoDB's `N`.
fn number_fingerprint(n: &str, h: &mut Stable) {
    let canonical = canonical_number_cow(n);
    // A canonical text is a JSON number; any other text is checked.
    if !matches!(canonical, Some(Cow::Borrowed(_)))
        && serde_json::from_str::<serde_json::Number>(n).is_err()
    {
        // from_av keeps what is not a JSON number as a string.
        3u8.hash(h);
        n.hash(h);
        return;
    }
    2u8.hash(h);
    match canonical {
        Some(c) => c.hash(h),
        None => n.hash(h),
    }
}

/// The fingerprint's hasher, whose output does not depend on the Rust
/// release or the platform: SHA-256 of the walk's tokens (lengths as 8
/// bytes little endian), cut to 128 bits. With the CPU's SHA instructions
/// it costs what the standard library's SipHash does (docs/design.md,
/// "Fingerprints").
pub struct Stable(Sha256);

impl Stable {
    pub fn new() -> Stable {
        Stable(Sha256::new())
    }

    /// The first 128 bits of the digest.
    pub fn digest(self) -> u128 {
        let d = self.0.finalize();
        u128::from_be_bytes(d[..16].try_into().expect("32 bytes"))
    }
}

impl Default for Stable {
    fn default() -> Self {
        Stable::new()
    }
}

impl Hasher for Stable {
    fn finish(&self) -> u64 {
        (self.0.clone().finalize()[..8])
            .iter()
            .fold(0u64, |a, b| (a << 8) | u64::from(*b))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.0.update([i]);
    }
    fn write_usize(&mut self, i: usize) {
        self.0.update((i as u64).to_le_bytes());
    }
}

/// The fingerprint of an item key: [`of_line`] of the item `{"PK": pk,
/// "SK": sk}`, for key sets that must stay small in memory at millions of
/// items (a collision among a billion keys has odds around 10⁻²⁰).
pub fn key_hash(pk: &str, sk: &str) -> Fingerprint {
    // The walk's tokens of that two-member map, without building it.
    let mut h = Stable::new();
    5u8.hash(&mut h);
    2usize.hash(&mut h);
    for (name, value) in [("PK", pk), ("SK", sk)] {
        name.hash(&mut h);
        3u8.hash(&mut h);
        value.hash(&mut h);
    }
    h.digest()
}

/// A set of key fingerprints.
pub type KeySet = std::collections::HashSet<u128>;

#[cfg(test)]
mod tests;
