//! Items between their three forms: JSON values (`Item`), the SDK's
//! `AttributeValue`s, and DynamoDB's wire JSON (backups, scan pages).

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value};

use crate::entities::Item;
use crate::json::{Obj, Val};

use super::*;

/// Converts a JSON item (strings, exact numbers, maps, lists, booleans).
pub fn to_av(value: &Value) -> AttributeValue {
    match value {
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Number(n) => AttributeValue::N(n.as_str().to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null(true),
        Value::Array(items) => AttributeValue::L(items.iter().map(to_av).collect()),
        Value::Object(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_av(v))).collect())
        }
    }
}

/// Converts a whole JSON item.
pub fn item_to_av(item: &Item) -> AvItem {
    item.iter().map(|(k, v)| (k.clone(), to_av(v))).collect()
}

/// Converts back to JSON (numbers stay exact text).
pub fn from_av(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => serde_json::from_str::<Number>(n)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(items) => Value::Array(items.iter().map(from_av).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), from_av(v))).collect())
        }
        AttributeValue::Ss(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(v) => Value::Array(
            v.iter()
                .map(|n| {
                    serde_json::from_str::<Number>(n)
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                })
                .collect(),
        ),
        other => Value::String(format!("{other:?}")),
    }
}

/// Converts an SDK item to a JSON item.
pub fn item_from_av(item: &AvItem) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), from_av(v)))
        .collect::<Map<_, _>>()
}

/// The `PK`/`SK` of an item, for messages and reports.
pub fn key_of(item: &Item) -> (String, String) {
    let get = |k: &str| {
        item.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (get("PK"), get("SK"))
}

/// Reads an item (or key) in DynamoDB's wire JSON into SDK values.
pub fn wire_item_to_av(text: &str) -> serde_json::Result<AvItem> {
    let item = Obj::parse(text)?;
    item.0
        .iter()
        .map(|(k, v)| Ok((k.to_string(), wire_to_av(v)?)))
        .collect()
}

/// One attribute value in DynamoDB's wire JSON (`{"S":"x"}`, `{"N":"1"}`, …)
/// as an SDK value.
pub fn wire_to_av(v: &Val<'_>) -> serde_json::Result<AttributeValue> {
    use serde::de::Error as _;
    let bad = || serde_json::Error::custom(format!("not a DynamoDB attribute value: {v:?}"));
    let Val::Obj(o) = v else { return Err(bad()) };
    let [(kind, inner)] = o.0.as_slice() else {
        return Err(bad());
    };
    let strings = |inner: &Val<'_>| -> serde_json::Result<Vec<String>> {
        let Val::Arr(items) = inner else {
            return Err(bad());
        };
        items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect()
    };
    let blob = |text: &str| {
        aws_smithy_types::base64::decode(text)
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .map_err(|e| serde_json::Error::custom(format!("bad base64 in a binary value: {e}")))
    };
    Ok(match (kind.as_ref(), inner) {
        ("S", Val::Str(s)) => AttributeValue::S(s.to_string()),
        ("N", Val::Str(n)) => AttributeValue::N(n.to_string()),
        ("BOOL", Val::Bool(b)) => AttributeValue::Bool(*b),
        ("NULL", Val::Bool(b)) => AttributeValue::Null(*b),
        ("L", Val::Arr(items)) => AttributeValue::L(
            items
                .iter()
                .map(wire_to_av)
                .collect::<serde_json::Result<_>>()?,
        ),
        ("M", Val::Obj(m)) => AttributeValue::M(
            m.0.iter()
                .map(|(k, v)| Ok((k.to_string(), wire_to_av(v)?)))
                .collect::<serde_json::Result<_>>()?,
        ),
        ("SS", _) => AttributeValue::Ss(strings(inner)?),
        ("NS", _) => AttributeValue::Ns(strings(inner)?),
        ("B", Val::Str(b)) => AttributeValue::B(blob(b)?),
        ("BS", _) => AttributeValue::Bs(
            strings(inner)?
                .iter()
                .map(|b| blob(b))
                .collect::<serde_json::Result<_>>()?,
        ),
        _ => return Err(bad()),
    })
}
