//! Buyers: `msg_anag` rows of kind 2 (company) and 3 (private person).

use super::party::{UNIQUE_VAT, map_party, party_source};
use super::{Entity, MapContext, Row, TableDef, Transformed};

/// The buyers entity.
pub static BUYERS: Entity = Entity {
    name: "buyers",
    uuid_kind: "buyer",
    key_prefix: "BUYER#",
    id_attribute: "buyerId",
    schema: include_str!("../../entities/buyers.schema.json"),
    table: &TableDef::PK_SK_ONLY,
    source: party_source("kind IN (2, 3) AND enabled"),
    references: &[],
    unique_attributes: UNIQUE_VAT,
    reconcile: None,
    mapping: map,
};

/// A company (kind 2) or a private person (kind 3).
fn map(row: &Row<'_>, ctx: &MapContext) -> Result<Transformed, String> {
    let (party_type, vat_required) = match row.int("kind")? {
        2 => ("company", true),
        3 => ("individual", false),
        other => return Err(format!("kind {other} is not a buyer kind (2 or 3)")),
    };
    map_party(row, ctx, &BUYERS, Some(party_type), vat_required)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::Finding;
    use crate::entities::Severity;
    use serde_json::json;

    fn ctx() -> MapContext {
        MapContext {
            namespace: uuid::Uuid::parse_str(crate::config::DEFAULT_UUID_NAMESPACE).unwrap(),
            first_run_started_at: chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    fn row(v: serde_json::Value) -> Row<'static> {
        crate::entities::test_row(&v)
    }

    #[test]
    fn company_buyer_maps_to_spec_shape() {
        let t = BUYERS
            .map(
                &row(json!({"first_id": 7, "kind": 2, "name": "  Rossi   SRL ", "vat_number": " it 0123 4567 897 ",
                  "fiscal_code": "rssmra80a01h501u", "address": "Via Roma 1", "city": "Roma", "province": "rm",
                  "zip": "00100", "country": null, "email": " Info@Rossi.IT ", "phone": " 06 1234 ",
                  "created_at": "2024-03-31T02:30:00", "updated_at": null})),
                &ctx(),
            )
            .unwrap();
        assert!(t.findings.is_empty());
        let id = crate::mapping::legacy_uuid(&ctx().namespace, "buyer", 7).to_string();
        assert_eq!(
            serde_json::to_value(&t.item).unwrap(),
            json!({"PK": format!("BUYER#{id}"), "SK": "METADATA", "buyerId": id, "legacyId": 7,
                   "buyerType": "company", "companyName": "Rossi SRL", "vatNumber": "IT01234567897",
                   "fiscalCode": "RSSMRA80A01H501U",
                   "address": {"street": "Via Roma 1", "city": "Roma", "province": "RM", "zip": "00100", "country": "IT"},
                   "email": "info@rossi.it", "phone": "06 1234", "status": "active",
                   "createdAt": "2024-03-31T01:30:00.000Z", "updatedAt": "2024-03-31T01:30:00.000Z",
                   "createdBy": "migration@system"})
        );
    }

    #[test]
    fn rules() {
        let base = json!({"first_id": 1, "kind": 2, "name": "A", "vat_number": "IT01234567897"});
        let with = |k: &str, v: serde_json::Value| {
            let mut r = base.clone();
            r[k] = v;
            BUYERS.map(&row(r), &ctx()).unwrap()
        };
        let codes = |t: &Transformed| {
            t.findings
                .iter()
                .map(|f| (f.code.clone(), f.severity))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            codes(&with("name", json!("  "))),
            [("missing_name".into(), Severity::Reject)]
        );
        assert_eq!(
            codes(&with("vat_number", json!(null))),
            [("invalid_vat".into(), Severity::Reject)]
        );
        assert_eq!(
            codes(&with("vat_number", json!("IT01234567890"))),
            [("invalid_vat".into(), Severity::Reject)]
        );
        let private = with("kind", json!(3));
        assert!(private.findings.is_empty());
        assert_eq!(private.item["buyerType"], "individual");
        let mut r = base.clone();
        r["kind"] = json!(3);
        r["vat_number"] = json!("it 123");
        let t = BUYERS.map(&row(r), &ctx()).unwrap();
        assert_eq!(
            t.findings,
            [Finding::warning(
                "invalid_vat",
                "VAT number \"IT123\" is not valid; left out"
            )]
        );
        assert!(!t.item.contains_key("vatNumber"));
        let t = with("email", json!("not-an-email"));
        assert_eq!(codes(&t), [("invalid_email".into(), Severity::Warning)]);
        assert!(!t.item.contains_key("email"));
        assert!(
            BUYERS
                .map(&row(json!({"first_id": 1, "kind": 1})), &ctx())
                .is_err()
        );
    }

    #[test]
    fn timestamp_fallbacks() {
        let t = BUYERS
            .map(&row(json!({"first_id": 1, "kind": 3, "name": "A", "updated_at": "2024-10-27T02:30:00"})), &ctx())
            .unwrap();
        assert_eq!(t.item["createdAt"], "2024-10-27T01:30:00.000Z");
        assert_eq!(t.item["updatedAt"], "2024-10-27T01:30:00.000Z");
        let t = BUYERS
            .map(&row(json!({"first_id": 1, "kind": 3, "name": "A"})), &ctx())
            .unwrap();
        assert_eq!(t.item["createdAt"], "2026-01-01T00:00:00.000Z");
        assert_eq!(t.item["updatedAt"], "2026-01-01T00:00:00.000Z");
    }
}
