//! Item fingerprints: one walk over an item's attributes that gives the same
//! hash for items verify calls equal (numbers by value, maps member by
//! member, lists in order, every kind tagged), whichever form the item is
//! read in: an artifact line, a `serde_json` map, an SDK item, or DynamoDB's
//! wire JSON as a Scan page or a backup holds it.
//!
//! Verify hashes with the standard library's fast hasher (values compared
//! within one process); the load's ledger and rollback need a fingerprint
//! that means the same to a later binary, and use [`Stable`] (SHA-256, cut
//! to 128 bits) through the same walk (docs/rollback.md). Item keys have
//! their own 128-bit hash ([`key_hash`]) for the key sets of validate,
//! sync, verify and rollback.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dynamo;
use crate::entities::Item;
use crate::json::{Obj, Val};
use crate::mapping::canonical_number_cow;

/// A 64-bit fingerprint of an attribute value that is the same for values
/// [`same_value`] calls equal: numbers by canonical decimal text, maps by
/// sorted member names, lists in order, every kind tagged.
fn fingerprint_into(value: &Value, h: &mut impl Hasher) {
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
        Value::Object(map) => {
            fingerprint_members(map.iter().map(|(k, v)| (k.as_str(), v)), h, |v, h| {
                fingerprint_into(v, &mut Dyn(h))
            })
        }
    }
}

/// [`fingerprint_into`] of a value parsed in place (see [`fingerprint_parsed`]).
fn fingerprint_val(value: &Val<'_>, h: &mut impl Hasher) {
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

fn fingerprint_obj(o: &Obj<'_>, h: &mut impl Hasher) {
    fingerprint_members(o.0.iter().map(|(k, v)| (k.as_ref(), v)), h, |v, h| {
        fingerprint_val(v, &mut Dyn(h))
    })
}

/// The fingerprint of an artifact line parsed in place: equal to
/// `fingerprint` of the item it holds, without building a
/// `serde_json::Value`.
pub fn fingerprint_parsed(item: &Obj<'_>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fingerprint_obj(item, &mut h);
    h.finish()
}

/// Like [`fingerprint_into`] for an object's members.
fn fingerprint_members<'a, V: 'a>(
    members: impl ExactSizeIterator<Item = (&'a str, &'a V)>,
    h: &mut impl Hasher,
    value: impl Fn(&V, &mut dyn Hasher),
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

/// The fingerprint of a whole item (see [`fingerprint_into`]).
pub fn fingerprint(item: &Item) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fingerprint_members(item.iter().map(|(k, v)| (k.as_str(), v)), &mut h, |v, h| {
        fingerprint_into(v, &mut Dyn(h))
    });
    h.finish()
}

/// The fingerprint of an SDK item: equal to `fingerprint(&item_from_av(item))`
/// without building the JSON value.
#[cfg(test)]
pub fn fingerprint_av(item: &dynamo::AvItem) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    av_item_into(item, &mut h);
    h.finish()
}

fn av_item_into(item: &dynamo::AvItem, h: &mut impl Hasher) {
    fingerprint_members(item.iter().map(|(k, v)| (k.as_str(), v)), h, av_value);
}

/// [`fingerprint_into`] of an SDK value, as `from_av` would convert it
/// (sets and binaries, which have no JSON form, apart).
fn av_value(v: &AttributeValue, h: &mut dyn Hasher) {
    let mut h = Dyn(h);
    match v {
        AttributeValue::S(s) => {
            3u8.hash(&mut h);
            s.hash(&mut h);
        }
        AttributeValue::N(n) => number_fingerprint(n, &mut h),
        AttributeValue::Bool(b) => {
            1u8.hash(&mut h);
            b.hash(&mut h);
        }
        AttributeValue::Null(_) => 0u8.hash(&mut h),
        AttributeValue::L(items) => {
            4u8.hash(&mut h);
            items.len().hash(&mut h);
            for v in items {
                av_value(v, &mut h);
            }
        }
        AttributeValue::M(map) => {
            fingerprint_members(map.iter().map(|(k, v)| (k.as_str(), v)), &mut h, av_value)
        }
        // Sets in any order (the server keeps none), binaries by their bytes:
        // never in an artifact, but in backups of tables that hold them.
        AttributeValue::Ss(v) => set(6, v.iter().map(|s| s.as_bytes().to_vec()), &mut h),
        AttributeValue::Ns(v) => set(
            7,
            v.iter().map(|n| {
                canonical_number_cow(n)
                    .map(Cow::into_owned)
                    .unwrap_or_else(|| n.clone())
                    .into_bytes()
            }),
            &mut h,
        ),
        AttributeValue::Bs(v) => set(8, v.iter().map(|b| b.as_ref().to_vec()), &mut h),
        AttributeValue::B(b) => {
            10u8.hash(&mut h);
            b.as_ref().hash(&mut h);
        }
        other => fingerprint_into(&dynamo::from_av(other), &mut h),
    }
}

fn set(tag: u8, members: impl Iterator<Item = Vec<u8>>, h: &mut Dyn<'_>) {
    let mut members: Vec<Vec<u8>> = members.collect();
    members.sort_unstable();
    tag.hash(h);
    members.len().hash(h);
    for m in members {
        m.hash(h);
    }
}

/// The same fingerprint read from the item as the Scan page holds it, in
/// DynamoDB's wire JSON parsed in place: equal to `fingerprint_av` of the
/// item the SDK would have decoded.
pub fn fingerprint_wire(item: &Obj<'_>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    wire_item_into(item, &mut h);
    h.finish()
}

fn wire_item_into(item: &Obj<'_>, h: &mut impl Hasher) {
    fingerprint_members(item.0.iter().map(|(k, v)| (k.as_ref(), v)), h, wire_value);
}

fn wire_value(v: &Val<'_>, h: &mut dyn Hasher) {
    let mut h = Dyn(h);
    if let Val::Obj(o) = v
        && let [(kind, inner)] = o.0.as_slice()
    {
        match (kind.as_ref(), inner) {
            ("S", Val::Str(s)) => {
                3u8.hash(&mut h);
                s.hash(&mut h);
                return;
            }
            ("N", Val::Str(n)) => {
                number_fingerprint(n, &mut h);
                return;
            }
            ("BOOL", Val::Bool(b)) => {
                1u8.hash(&mut h);
                b.hash(&mut h);
                return;
            }
            ("NULL", _) => {
                0u8.hash(&mut h);
                return;
            }
            ("L", Val::Arr(items)) => {
                4u8.hash(&mut h);
                items.len().hash(&mut h);
                for v in items {
                    wire_value(v, &mut h);
                }
                return;
            }
            ("M", Val::Obj(m)) => {
                fingerprint_members(m.0.iter().map(|(k, v)| (k.as_ref(), v)), &mut h, wire_value);
                return;
            }
            _ => {}
        }
    }
    // Sets, binaries: rare; through the SDK value. What is not a value at all
    // cannot equal an artifact value.
    match dynamo::wire_to_av(v) {
        Ok(av) => av_value(&av, &mut h),
        Err(_) => {
            9u8.hash(&mut h);
            format!("{v:?}").hash(&mut h);
        }
    }
}

/// A number's part of a fingerprint, as `from_av` reads DynamoDB's `N`.
fn number_fingerprint(n: &str, h: &mut Dyn<'_>) {
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

/// A `&mut dyn Hasher` as a sized `Hasher`.
struct Dyn<'a>(&'a mut dyn Hasher);

impl Hasher for Dyn<'_> {
    fn finish(&self) -> u64 {
        self.0.finish()
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }
}

/// A hasher whose output does not depend on the Rust release or the
/// platform: SHA-256 of the walk's tokens (lengths as 8 bytes little
/// endian), cut to 128 bits. For fingerprints kept on disk (the ledger).
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

/// The stable fingerprint of an item in DynamoDB's wire JSON (a backup line,
/// a Scan item, the item of a put request as sent).
pub fn stable_wire(item: &Obj<'_>) -> u128 {
    let mut h = Stable::new();
    wire_item_into(item, &mut h);
    h.digest()
}

/// The stable fingerprint of an SDK item (a GetItem or BatchGetItem
/// answer): equal to [`stable_wire`] of the same item on the wire.
pub fn stable_av(item: &dynamo::AvItem) -> u128 {
    let mut h = Stable::new();
    av_item_into(item, &mut h);
    h.digest()
}

/// The stable fingerprint of an artifact line (plain JSON): equal to
/// [`stable_wire`] of the item the load sends for it.
#[cfg(test)]
pub fn stable_line(line: &str) -> serde_json::Result<u128> {
    let item = Obj::parse(line)?;
    let mut h = Stable::new();
    fingerprint_obj(&item, &mut h);
    Ok(h.digest())
}

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
pub type KeySet = std::collections::HashSet<u128>;

#[cfg(test)]
mod tests;
