//! Unit tests of the table definitions: grouping entities into tables, the
//! union of indexes, and comparing a described table with its definition.

use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, BillingModeSummary, GlobalSecondaryIndexDescription,
    KeySchemaElement, KeyType, Projection as SdkProjection, ProjectionType, ScalarAttributeType,
    TableDescription,
};

use super::*;
use crate::entities::{find, registry};

fn config(target: &str) -> Config {
    let text = format!(
        r#"{{"source": {{"type": "postgresql", "host": "h", "database": "d", "username": "u"}},
            "target": {{"region": "us-east-1", {target}}}}}"#
    );
    Config::from_str(Path::new("c.json"), &text, &|_| None).unwrap()
}

fn separate() -> Config {
    config(r#""buyersTable": "B-t", "producersTable": "P-t", "salesTable": "S-t""#)
}

fn key(name: &str, t: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(t)
        .build()
        .unwrap()
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

fn gsi(name: &str, pk: &str, sk: &str, p: ProjectionType) -> GlobalSecondaryIndexDescription {
    GlobalSecondaryIndexDescription::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(SdkProjection::builder().projection_type(p).build())
        .build()
}

/// A description of the sales table as `tables create` makes it.
fn sales_desc() -> TableDescription {
    let mut b = TableDescription::builder()
        .table_name("S-t")
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .billing_mode_summary(
            BillingModeSummary::builder()
                .billing_mode(BillingMode::PayPerRequest)
                .build(),
        );
    for a in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
        b = b.attribute_definitions(attr(a));
    }
    b.global_secondary_indexes(gsi("GSI1", "GSI1PK", "GSI1SK", ProjectionType::All))
        .global_secondary_indexes(gsi("GSI2", "GSI2PK", "GSI2SK", ProjectionType::All))
        .build()
}

#[test]
fn one_table_per_entity_with_its_own_indexes() {
    let specs = specs(&separate(), registry()).unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["B-t", "P-t", "S-t"]);
    assert!(specs[0].indexes.is_empty());
    let sales: Vec<&str> = specs[2].indexes.iter().map(|i| i.name).collect();
    assert_eq!(sales, ["GSI1", "GSI2"]);
    assert_eq!(specs[2].entities, ["sales"]);
}

#[test]
fn entity_narrows_to_its_table() {
    let specs = specs(&separate(), &[find("sales").unwrap()]).unwrap();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].name, "S-t");
}

#[test]
fn a_shared_table_gets_the_union_of_indexes_once() {
    let c = config(r#""buyersTable": "One", "producersTable": "One", "salesTable": "One""#);
    let specs = specs(&c, registry()).unwrap();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].entities, ["buyers", "producers", "sales"]);
    assert_eq!(specs[0].indexes.len(), 2, "GSI1 and GSI2 once");
    // Naming only buyers still builds the table right for the sales in it.
    let only = super::specs(&c, &[find("buyers").unwrap()]).unwrap();
    assert_eq!(only, specs);
    let attrs: Vec<&str> = specs[0].attributes().iter().map(|a| a.name).collect();
    assert_eq!(attrs, ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"]);
}

#[test]
fn an_unconfigured_entity_is_a_config_error() {
    let c = config(r#""buyersTable": "B-t""#);
    let err = specs(&c, registry()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("/target/producersTable"), "{err}");
}

#[test]
fn the_created_shape_matches() {
    let specs = specs(&separate(), registry()).unwrap();
    assert_eq!(
        compare(&specs[2], &sales_desc(), Billing::PayPerRequest),
        Ok(vec![])
    );
}

#[test]
fn other_keys_missing_or_different_indexes_are_named() {
    let specs = specs(&separate(), registry()).unwrap();
    let other_keys = TableDescription::builder()
        .key_schema(key("id", KeyType::Hash))
        .attribute_definitions(attr("id"))
        .build();
    let problems = compare(&specs[0], &other_keys, Billing::PayPerRequest).unwrap_err();
    assert_eq!(
        problems,
        ["key schema id (S, HASH), expected PK (S, HASH) + SK (S, RANGE)"]
    );

    let mut no_gsi2 = sales_desc();
    no_gsi2.global_secondary_indexes = Some(vec![gsi(
        "GSI1",
        "GSI1PK",
        "GSI2SK",
        ProjectionType::KeysOnly,
    )]);
    let problems = compare(&specs[2], &no_gsi2, Billing::PayPerRequest).unwrap_err();
    assert_eq!(
        problems,
        [
            "index GSI1 has key GSI1PK (S, HASH) + GSI2SK (S, RANGE), expected GSI1PK (S, HASH) + GSI1SK (S, RANGE)",
            "index GSI1 projects KEYS_ONLY, expected ALL",
            "index GSI2 is missing",
        ]
    );
}

#[test]
fn extra_indexes_and_other_billing_are_notes() {
    let specs = specs(&separate(), registry()).unwrap();
    // The buyers' table with the sales' indexes, billed on demand.
    let notes = compare(
        &specs[0],
        &sales_desc(),
        Billing::Provisioned { read: 1, write: 1 },
    )
    .unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes[0].starts_with("index GSI1 is not declared"),
        "{notes:?}"
    );
    assert!(notes[2].contains("billed PAY_PER_REQUEST"), "{notes:?}");
}
