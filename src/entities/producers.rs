//! Producers: `msg_anag` rows of kind 1.

use super::party::{PARTY_COLUMNS, PARTY_SOURCE, PartyKind, map_party};
use super::{Entity, MapContext, Row, Severity, TableDef, Transformed, UniqueAttribute};

/// The producers entity.
pub struct Producers;

impl Entity for Producers {
    fn name(&self) -> &'static str {
        "producers"
    }
    fn key_prefix(&self) -> &'static str {
        "PRODUCER#"
    }
    fn id_attribute(&self) -> &'static str {
        "producerId"
    }
    fn schema(&self) -> &'static str {
        include_str!("../../entities/producers.schema.json")
    }
    fn table(&self) -> &'static TableDef {
        &TableDef::PK_SK_ONLY
    }
    fn extract_query(&self, schema: &str) -> String {
        format!(
            "SELECT {PARTY_COLUMNS} FROM \"{schema}\".msg_anag WHERE kind = 1 AND enabled ORDER BY first_id"
        )
    }
    fn split_column(&self) -> Option<&'static str> {
        Some("first_id")
    }
    fn source_columns(&self) -> &'static [super::checks::SourceColumn] {
        PARTY_SOURCE
    }
    fn map(&self, row: &Row<'_>, ctx: &MapContext) -> Result<Transformed, String> {
        match row.int("kind")? {
            1 => map_party(
                row,
                ctx,
                &PartyKind {
                    id_kind: "producer",
                    key_prefix: "PRODUCER#",
                    id_attribute: "producerId",
                    party_type: None,
                    vat_required: true,
                },
            ),
            other => Err(format!("kind {other} is not the producer kind (1)")),
        }
    }
    fn unique_attributes(&self) -> &'static [UniqueAttribute] {
        &[UniqueAttribute {
            attribute: "vatNumber",
            code: "duplicate_vat",
            severity: Severity::Warning,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn producer_shape_and_vat_rule() {
        let ctx = MapContext {
            namespace: uuid::Uuid::parse_str(crate::config::DEFAULT_UUID_NAMESPACE).unwrap(),
            first_run_started_at: chrono::Utc::now(),
        };
        let r = crate::entities::test_row(
            &json!({"first_id": 3, "kind": 1, "name": "Cantina", "vat_number": "01234567897"}),
        );
        let t = Producers.map(&r, &ctx).unwrap();
        assert!(t.item["PK"].as_str().unwrap().starts_with("PRODUCER#"));
        assert!(t.item.contains_key("producerId"));
        assert!(!t.item.contains_key("buyerType"));
        assert_eq!(t.item["vatNumber"], "IT01234567897");
        let r = crate::entities::test_row(&json!({"first_id": 3, "kind": 1, "name": "Cantina"}));
        assert_eq!(
            Producers.map(&r, &ctx).unwrap().findings[0].code,
            "invalid_vat"
        );
    }
}
