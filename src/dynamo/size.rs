//! An item's size as DynamoDB counts it (the 400 KB limit, write units),
//! from plain JSON or wire JSON, and the indexes an item appears in.

use crate::entities::table::Index;
use crate::json::{Obj, Val};

/// An item's size as DynamoDB counts it: names plus values, numbers one byte
/// per two significant digits plus one, maps and lists 3 bytes plus one per
/// element. Read from the item's JSON parsed in place.
pub fn item_size(item: &crate::json::Obj<'_>) -> usize {
    item.0.iter().map(|(k, v)| k.len() + val_size(v)).sum()
}

pub(super) fn val_size(v: &crate::json::Val<'_>) -> usize {
    use crate::json::Val;
    match v {
        Val::Str(s) => s.len(),
        Val::Num(n) => n.bytes().filter(u8::is_ascii_digit).count().div_ceil(2) + 1,
        Val::Bool(_) | Val::Null => 1,
        Val::Arr(items) => 3 + items.iter().map(|i| 1 + val_size(i)).sum::<usize>(),
        Val::Obj(o) => {
            3 + o
                .0
                .iter()
                .map(|(k, v)| 1 + k.len() + val_size(v))
                .sum::<usize>()
        }
    }
}

/// The size of an item given in DynamoDB's wire JSON, by the same rule as
/// [`item_size`] (binaries count their decoded bytes).
pub fn wire_item_size(item: &Obj<'_>) -> usize {
    item.0.iter().map(|(k, v)| k.len() + wire_val_size(v)).sum()
}

pub(super) fn wire_val_size(v: &Val<'_>) -> usize {
    let Val::Obj(typed) = v else {
        return val_size(v);
    };
    let Some((tag, inner)) = typed.0.first() else {
        return 1;
    };
    fn num(n: &str) -> usize {
        n.bytes().filter(u8::is_ascii_digit).count().div_ceil(2) + 1
    }
    fn text(v: &Val<'_>) -> usize {
        match v {
            Val::Str(s) => s.len(),
            _ => 1,
        }
    }
    fn items<'b, 'a>(v: &'b Val<'a>) -> &'b [Val<'a>] {
        match v {
            Val::Arr(a) => a,
            _ => &[],
        }
    }
    match (tag.as_ref(), inner) {
        ("S", v) => text(v),
        ("N", Val::Str(n)) => num(n),
        ("B", v) => text(v) * 3 / 4,
        ("SS", v) => items(v).iter().map(text).sum(),
        ("NS", v) => items(v)
            .iter()
            .map(|n| match n {
                Val::Str(n) => num(n),
                _ => 1,
            })
            .sum(),
        ("BS", v) => items(v).iter().map(|b| text(b) * 3 / 4).sum(),
        ("L", v) => 3 + items(v).iter().map(|e| 1 + wire_val_size(e)).sum::<usize>(),
        ("M", Val::Obj(m)) => {
            3 + m
                .0
                .iter()
                .map(|(k, v)| 1 + k.len() + wire_val_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// How many of `indexes` an item appears in (it has their key attributes).
pub(super) fn indexes_holding(item: &Obj<'_>, indexes: &[Index]) -> usize {
    indexes
        .iter()
        .filter(|i| i.holds(|a| item.get(a).is_some()))
        .count()
}
