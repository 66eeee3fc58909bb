//! Unit tests of `fingerprint`.

use super::*;
use crate::dynamo::{AvItem, item_from_av};
use serde_json::json;
use std::collections::HashMap;

/// DynamoDB's wire JSON of an SDK item, as a Scan response carries it.
fn wire_text(item: &AvItem) -> String {
    fn wire(v: &AttributeValue) -> Value {
        use aws_smithy_types::base64::encode;
        match v {
            AttributeValue::S(s) => json!({ "S": s }),
            AttributeValue::N(n) => json!({ "N": n }),
            AttributeValue::Bool(b) => json!({ "BOOL": b }),
            AttributeValue::Null(b) => json!({ "NULL": b }),
            AttributeValue::L(l) => json!({ "L": l.iter().map(wire).collect::<Vec<_>>() }),
            AttributeValue::M(m) => {
                json!({ "M": m.iter().map(|(k, v)| (k.clone(), wire(v))).collect::<serde_json::Map<_, _>>() })
            }
            AttributeValue::Ss(v) => json!({ "SS": v }),
            AttributeValue::Ns(v) => json!({ "NS": v }),
            AttributeValue::B(b) => json!({ "B": encode(b.as_ref()) }),
            AttributeValue::Bs(v) => {
                json!({ "BS": v.iter().map(|b| encode(b.as_ref())).collect::<Vec<_>>() })
            }
            other => panic!("{other:?}"),
        }
    }
    Value::Object(item.iter().map(|(k, v)| (k.clone(), wire(v))).collect()).to_string()
}

#[test]
fn table_side_fingerprint_equals_the_artifact_side() {
    use AttributeValue as A;
    let item: AvItem = HashMap::from([
        ("PK".to_string(), A::S("SALE#1".into())),
        ("n".to_string(), A::N("1.50".into())),
        ("odd".to_string(), A::N("not a number".into())),
        ("b".to_string(), A::Bool(false)),
        ("z".to_string(), A::Null(true)),
        (
            "l".to_string(),
            A::L(vec![A::N("7".into()), A::S("x".into())]),
        ),
        (
            "m".to_string(),
            A::M(HashMap::from([
                ("a".to_string(), A::S("1".into())),
                (
                    "c".to_string(),
                    A::M(HashMap::from([("d".to_string(), A::N("2e3".into()))])),
                ),
            ])),
        ),
        ("ss".to_string(), A::Ss(vec!["p".into(), "q".into()])),
        ("ns".to_string(), A::Ns(vec!["1".into(), "2.0".into()])),
        ("s\"q".to_string(), A::S("é\n\"".into())),
        (
            "bin".to_string(),
            A::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0u8, 255, 7])),
        ),
    ]);
    // Without the sets and binaries (no JSON form), as the JSON item.
    let plain: AvItem = item
        .iter()
        .filter(|(k, _)| !["ss", "ns", "bin"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(of_av(&plain), of_item(&item_from_av(&plain)));
    // as a Scan page holds it, read in place and read into SDK values
    let wire = wire_text(&item);
    assert_eq!(of_wire(&Obj::parse(&wire).unwrap()), of_av(&item));
    assert_eq!(dynamo::wire_item_to_av(&wire).unwrap(), item);
    let mut respelled = item.clone();
    respelled.insert("n".into(), A::N("1.5".into()));
    assert_eq!(of_av(&respelled), of_av(&item));
    let mut changed = item.clone();
    changed.insert("b".into(), A::Bool(true));
    assert_ne!(of_av(&changed), of_av(&item));
}

#[test]
fn sets_in_any_order_binaries_by_bytes() {
    use AttributeValue as A;
    use aws_sdk_dynamodb::primitives::Blob;
    let item = |ss: Vec<&str>, ns: Vec<&str>, bin: Vec<u8>| -> AvItem {
        HashMap::from([
            ("PK".to_string(), A::S("X".into())),
            (
                "ss".to_string(),
                A::Ss(ss.into_iter().map(String::from).collect()),
            ),
            (
                "ns".to_string(),
                A::Ns(ns.into_iter().map(String::from).collect()),
            ),
            ("b".to_string(), A::B(Blob::new(bin))),
        ])
    };
    let a = item(vec!["p", "q"], vec!["1", "2.50"], vec![1, 2]);
    assert_eq!(
        of_av(&a),
        of_av(&item(vec!["q", "p"], vec!["2.5", "1.0"], vec![1, 2]))
    );
    for other in [
        item(vec!["p"], vec!["1", "2.50"], vec![1, 2]),
        item(vec!["p", "q"], vec!["1", "2.51"], vec![1, 2]),
        item(vec!["p", "q"], vec!["1", "2.50"], vec![1, 3]),
    ] {
        assert_ne!(of_av(&a), of_av(&other));
    }
    // an SS is not the list of the same strings
    let mut list = a.clone();
    list.insert("ss".into(), A::L(vec![A::S("p".into()), A::S("q".into())]));
    assert_ne!(of_av(&a), of_av(&list));
}

#[test]
fn the_stable_fingerprint_does_not_change() {
    // Kept in ledgers on disk: a later build must compute the same value.
    let line = r#"{"PK":"BUYER#1","SK":"METADATA","n":1.50,"m":{"a":[true,null,"x"]}}"#;
    let fp = of_line(&Obj::parse(line).unwrap());
    assert_eq!(format!("{fp:032x}"), "0010fefcb9d62d85c383142e46f27cfb");
    let wire = r#"{"PK":{"S":"BUYER#1"},"SK":{"S":"METADATA"},"n":{"N":"1.5"},"m":{"M":{"a":{"L":[{"BOOL":true},{"NULL":true},{"S":"x"}]}}}}"#;
    assert_eq!(of_wire(&Obj::parse(wire).unwrap()), fp);
}

#[test]
fn a_key_hash_is_the_fingerprint_of_the_key_alone() {
    for (pk, sk) in [("SALE#1", "METADATA"), ("BUYER#x", ""), ("", "")] {
        let line = serde_json::json!({ "PK": pk, "SK": sk }).to_string();
        assert_eq!(key_hash(pk, sk), of_line(&Obj::parse(&line).unwrap()));
    }
    assert_ne!(key_hash("A", "BC"), key_hash("AB", "C"));
}
