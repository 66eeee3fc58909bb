//! Producers: `msg_anag` rows of kind 1.

use super::party::{UNIQUE_VAT, map_party, party_source};
use super::{Entity, MapContext, Row, TableDef, Transformed};

/// The producers entity.
pub static PRODUCERS: Entity = Entity {
    name: "producers",
    uuid_kind: "producer",
    key_prefix: "PRODUCER#",
    id_attribute: "producerId",
    schema: include_str!("../../entities/producers.schema.json"),
    table: &TableDef::PK_SK_ONLY,
    source: party_source("kind = 1 AND enabled"),
    references: &[],
    unique_attributes: UNIQUE_VAT,
    reconcile: None,
    mapping: map,
};

/// A producer (kind 1); its VAT number is required.
fn map(row: &Row<'_>, ctx: &MapContext) -> Result<Transformed, String> {
    match row.int("kind")? {
        1 => map_party(row, ctx, &PRODUCERS, None, true),
        other => Err(format!("kind {other} is not the producer kind (1)")),
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
        let t = PRODUCERS.map(&r, &ctx).unwrap();
        assert!(t.item["PK"].as_str().unwrap().starts_with("PRODUCER#"));
        assert!(t.item.contains_key("producerId"));
        assert!(!t.item.contains_key("buyerType"));
        assert_eq!(t.item["vatNumber"], "IT01234567897");
        let r = crate::entities::test_row(&json!({"first_id": 3, "kind": 1, "name": "Cantina"}));
        assert_eq!(
            PRODUCERS.map(&r, &ctx).unwrap().findings[0].code,
            "invalid_vat"
        );
    }
}
