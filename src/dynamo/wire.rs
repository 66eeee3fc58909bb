//! A write request serialized once, in DynamoDB's wire JSON, when it is
//! read: retries reuse the bytes; its key and write units ride along.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::entities::Item;
use crate::entities::table::Index;
use crate::json::{Obj, Val};

use super::*;

/// One write in a batch: its position in the artifact and its item.
pub struct BatchEntry {
    pub index: u64,
    pub item: AvItem,
}

/// A write request of a batch, serialized once, in DynamoDB's wire JSON,
/// when it is read: retries and re-sent `UnprocessedItems` reuse the bytes,
/// and no SDK `AttributeValue` tree is built, cloned or serialized per item.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The item's key (`PK`, `SK`), to match `UnprocessedItems` and name
    /// the item in messages.
    pub key: AvItem,
    /// `{"PutRequest":{"Item":{..}}}` or `{"DeleteRequest":{"Key":{..}}}`.
    pub(super) wire: Vec<u8>,
    /// The write units it costs, for the rate cap ([`crate::rate`]).
    pub units: u32,
    /// A put's item fingerprint ([`crate::fingerprint::of_wire`] of the
    /// item as sent, taken from the parse that built the request, for the
    /// ledger); `None` for a delete.
    pub fingerprint: Option<crate::fingerprint::Fingerprint>,
}

impl Write {
    /// A put of an item given as the JSON text of an artifact line.
    pub fn put_json(line: &str) -> serde_json::Result<Write> {
        Write::put_json_in(line, &[])
    }

    /// A put of an artifact line into a table with `indexes`: its write
    /// units count each index the item appears in.
    pub fn put_json_in(line: &str, indexes: &[Index]) -> serde_json::Result<Write> {
        let item = Obj::parse(line)?;
        let mut wire = Vec::with_capacity(line.len() * 3 / 2 + 32);
        wire.extend_from_slice(br#"{"PutRequest":{"Item":"#);
        write_wire_obj(&item, &mut wire);
        wire.extend_from_slice(b"}}");
        Ok(Write {
            key: key_av(&item),
            wire,
            units: crate::rate::units(item_size(&item), indexes_holding(&item, indexes)),
            // of_line of a plain item equals of_wire of its wire form.
            fingerprint: Some(crate::fingerprint::of_line(&item)),
        })
    }

    /// A put of an item.
    pub fn put(item: &Item) -> Write {
        Write::put_json(&serde_json::to_string(item).expect("a JSON map serializes"))
            .expect("serde_json reads back what it wrote")
    }

    /// A delete of the item with this key from a table with `indexes`
    /// (counted as one unit for the table and one per index: the item's
    /// size is not known).
    pub fn delete_in(key: &Item, indexes: &[Index]) -> Write {
        let mut w = Write::delete(key);
        w.units = crate::rate::units(0, indexes.len());
        w
    }

    /// A delete of the item with this key.
    pub fn delete(key: &Item) -> Write {
        let text = serde_json::to_string(key).expect("a JSON map serializes");
        let key = Obj::parse(&text).expect("serde_json reads back what it wrote");
        let mut wire = Vec::with_capacity(text.len() * 2 + 32);
        wire.extend_from_slice(br#"{"DeleteRequest":{"Key":"#);
        write_wire_obj(&key, &mut wire);
        wire.extend_from_slice(b"}}");
        Write {
            key: key_av(&key),
            wire,
            units: 1,
            fingerprint: None,
        }
    }

    /// `PK=…, SK=…`, for messages.
    pub fn describe_key(&self) -> String {
        format!(
            "PK={}, SK={}",
            av_str(self.key.get("PK")),
            av_str(self.key.get("SK"))
        )
    }

    /// A put of an item given in DynamoDB's wire JSON (a backup line): the
    /// request carries exactly these bytes, so every type (sets, binaries,
    /// numbers as spelled) goes back as it was read.
    pub fn put_wire(item: &str) -> serde_json::Result<Write> {
        Write::put_wire_in(item, &[])
    }

    /// [`Write::put_wire`] into a table with `indexes` (for the write units).
    pub fn put_wire_in(item: &str, indexes: &[Index]) -> serde_json::Result<Write> {
        let obj = Obj::parse(item)?;
        let mut key = AvItem::new();
        for k in ["PK", "SK"] {
            if let Some(v) = obj.get(k) {
                key.insert(k.to_string(), wire_to_av(v)?);
            }
        }
        let mut wire = Vec::with_capacity(item.len() + 32);
        wire.extend_from_slice(br#"{"PutRequest":{"Item":"#);
        wire.extend_from_slice(item.trim().as_bytes());
        wire.extend_from_slice(b"}}");
        let units = crate::rate::units(wire_item_size(&obj), indexes_holding(&obj, indexes));
        Ok(Write {
            key,
            wire,
            units,
            fingerprint: Some(crate::fingerprint::of_wire(&obj)),
        })
    }

    /// A put's item as sent, in DynamoDB's wire JSON; `None` for a delete.
    pub fn item_wire(&self) -> Option<&str> {
        let item = self
            .wire
            .strip_prefix(br#"{"PutRequest":{"Item":"#)?
            .strip_suffix(b"}}")?;
        // Written from JSON text and UTF-8 strings only.
        std::str::from_utf8(item).ok()
    }

    #[cfg(test)]
    pub(super) fn is_put(&self) -> bool {
        self.wire.starts_with(b"{\"Put")
    }
}

/// Appends the DynamoDB wire JSON of an artifact line (a JSON object) to
/// `out`: the item exactly as a put of the line sends it (the S3 import
/// path's objects, docs/import.md).
pub fn item_wire_json(line: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let item = Obj::parse(line)?;
    write_wire_obj(&item, out);
    Ok(())
}

/// The key attributes of an item as SDK values.
pub(super) fn key_av(item: &Obj<'_>) -> AvItem {
    ["PK", "SK"]
        .into_iter()
        .filter_map(|k| item.get(k).map(|v| (k.to_string(), val_to_av(v))))
        .collect()
}

pub(super) fn val_to_av(v: &Val<'_>) -> AttributeValue {
    match v {
        Val::Null => AttributeValue::Null(true),
        Val::Bool(b) => AttributeValue::Bool(*b),
        Val::Num(n) => AttributeValue::N((*n).to_string()),
        Val::Str(s) => AttributeValue::S(s.to_string()),
        Val::Arr(items) => AttributeValue::L(items.iter().map(val_to_av).collect()),
        Val::Obj(o) => AttributeValue::M(
            o.0.iter()
                .map(|(k, v)| (k.to_string(), val_to_av(v)))
                .collect(),
        ),
    }
}

/// Writes a JSON object as DynamoDB's wire form of an item or map:
/// `{"name":{"S":"text"},"n":{"N":"1.50"},...}`. Numbers keep their exact text.
pub(super) fn write_wire_obj(obj: &Obj<'_>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in obj.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(k, out);
        out.push(b':');
        write_wire_val(v, out);
    }
    out.push(b'}');
}

pub(super) fn write_wire_val(v: &Val<'_>, out: &mut Vec<u8>) {
    match v {
        Val::Null => out.extend_from_slice(br#"{"NULL":true}"#),
        Val::Bool(true) => out.extend_from_slice(br#"{"BOOL":true}"#),
        Val::Bool(false) => out.extend_from_slice(br#"{"BOOL":false}"#),
        Val::Num(n) => {
            out.extend_from_slice(br#"{"N":""#);
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        Val::Str(s) => {
            out.extend_from_slice(br#"{"S":"#);
            write_json_str(s, out);
            out.push(b'}');
        }
        Val::Arr(items) => {
            out.extend_from_slice(br#"{"L":["#);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_wire_val(item, out);
            }
            out.extend_from_slice(b"]}");
        }
        Val::Obj(o) => {
            out.extend_from_slice(br#"{"M":"#);
            write_wire_obj(o, out);
            out.push(b'}');
        }
    }
}

pub(super) fn write_json_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// The body of one BatchWriteItem request.
pub(super) fn batch_body(table: &str, pending: &[(u64, Write)]) -> Vec<u8> {
    let len: usize = pending.iter().map(|(_, w)| w.wire.len() + 1).sum();
    let mut body = Vec::with_capacity(len + table.len() + 32);
    body.extend_from_slice(br#"{"RequestItems":{"#);
    write_json_str(table, &mut body);
    body.extend_from_slice(b":[");
    for (i, (_, w)) in pending.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&w.wire);
    }
    body.extend_from_slice(b"]}}");
    body
}
