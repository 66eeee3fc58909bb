//! Sales: `msg` rows, referring to buyers and producers by UUID v5.

use rust_decimal::Decimal;
use serde_json::Value;

use super::buyers::BUYERS;
use super::checks::{Field, Reconcile, SourceColumn, not_null, null};
use super::producers::PRODUCERS;
use super::table::{Index, Key, PK_SK, Projection, TableDef};
use super::{
    Entity, Finding, MapContext, Reference, Row, Source, Transformed, audit_times, item, n, s,
};
use crate::mapping;

/// Largest allowed gap between the stored total and the computed one.
const TOTAL_TOLERANCE: Decimal = Decimal::from_parts(5, 0, 0, false, 2); // 0.05

/// The sales table: PK/SK, plus a sale's buyer and producer as the keys of
/// GSI1 and GSI2 (the sales of a buyer or of a producer, by date).
pub const TABLE: TableDef = TableDef {
    key: PK_SK,
    indexes: &[
        Index {
            name: "GSI1",
            key: Key {
                hash: super::table::s("GSI1PK"),
                range: Some(super::table::s("GSI1SK")),
            },
            projection: Projection::All,
        },
        Index {
            name: "GSI2",
            key: Key {
                hash: super::table::s("GSI2PK"),
                range: Some(super::table::s("GSI2SK")),
            },
            projection: Projection::All,
        },
    ],
};

/// The `msg` columns the query reads (the selected ones and `enabled`), as
/// the S9 schema declares them (checked before extract).
const SOURCE: &[SourceColumn] = &[
    not_null("msg", "first_id", "integer"),
    null("msg", "buyer_id", "integer"),
    null("msg", "producer_id", "integer"),
    not_null("msg", "sale_date", "date"),
    null("msg", "description", "text"),
    not_null("msg", "quantity", "numeric(12,3)"),
    not_null("msg", "unit_price", "numeric(12,2)"),
    not_null("msg", "vat_rate", "numeric(5,2)"),
    not_null("msg", "total_amount", "numeric(14,2)"),
    null("msg", "currency", "character(3)"),
    null("msg", "status", "character varying(20)"),
    null("msg", "payment_method", "character varying(30)"),
    not_null("msg", "enabled", "boolean"),
    null("msg", "created_at", "timestamp without time zone"),
    null("msg", "updated_at", "timestamp without time zone"),
];

/// Sales reconcile per month of `sale_date` and per currency (as the mapping
/// normalizes it: trimmed, upper case, NULL or blank → `EUR`): count, total
/// amount and quantity (docs/checks.md).
const RECONCILE: Reconcile = Reconcile {
    month: Field {
        sql: "sale_date",
        attribute: "saleDate",
    },
    by: &[Field {
        sql: "coalesce(upper(nullif(btrim(currency), '')), 'EUR')",
        attribute: "currency",
    }],
    sums: &[
        Field {
            sql: "total_amount",
            attribute: "totalAmount",
        },
        Field {
            sql: "quantity",
            attribute: "quantity",
        },
    ],
};

/// Legacy status spellings (trimmed, lower-cased) and their target value.
pub const STATUS_MAP: &[(&str, &str)] = &[
    ("c", "confirmed"),
    ("conf", "confirmed"),
    ("confirmed", "confirmed"),
    ("s", "shipped"),
    ("spedito", "shipped"),
    ("shipped", "shipped"),
    ("a", "cancelled"),
    ("annullato", "cancelled"),
    ("cancelled", "cancelled"),
    ("p", "pending"),
    ("pending", "pending"),
];

/// Maps a legacy status; NULL is `pending`, unknown codes are `None`.
pub fn map_status(raw: Option<&str>) -> Option<&'static str> {
    let Some(raw) = raw else {
        return Some("pending");
    };
    let key = raw.trim().to_lowercase();
    STATUS_MAP.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// quantity × unit price × (1 + VAT rate / 100), exact.
pub fn expected_total(
    quantity: Decimal,
    unit_price: Decimal,
    vat_rate: Decimal,
) -> Option<Decimal> {
    let net = quantity.checked_mul(unit_price)?;
    let factor = Decimal::ONE_HUNDRED.checked_add(vat_rate)?;
    net.checked_mul(factor)?.checked_div(Decimal::ONE_HUNDRED)
}

/// The sales entity.
pub static SALES: Entity = Entity {
    name: "sales",
    uuid_kind: "sale",
    key_prefix: "SALE#",
    id_attribute: "saleId",
    schema: include_str!("../../entities/sales.schema.json"),
    table: &TABLE,
    source: Source {
        table: "msg",
        select: "first_id, buyer_id, producer_id, sale_date, description, quantity, unit_price, \
                 vat_rate, total_amount, currency, status, payment_method, created_at, updated_at",
        filter: "enabled",
        legacy_id: "first_id",
        split: true,
        columns: SOURCE,
    },
    references: &[
        Reference {
            attribute: "buyerId",
            entity: &BUYERS,
            code: "orphan_buyer",
        },
        Reference {
            attribute: "producerId",
            entity: &PRODUCERS,
            code: "orphan_producer",
        },
    ],
    unique_attributes: &[],
    reconcile: Some(&RECONCILE),
    mapping: map,
};

/// A sale: its buyer and producer become their UUIDs and the keys of the
/// indexes; amounts stay exact text.
fn map(row: &Row<'_>, ctx: &MapContext) -> Result<Transformed, String> {
    let legacy_id = row.int(SALES.source.legacy_id)?;
    let ns = &ctx.namespace;
    let sale_id = SALES.id(ns, legacy_id);
    let buyer_id = row.opt_int("buyer_id")?.map(|b| BUYERS.id(ns, b));
    let producer_id = row.opt_int("producer_id")?.map(|p| PRODUCERS.id(ns, p));
    let sale_date = row
        .text("sale_date")
        .ok_or("column sale_date is NULL")?
        .to_string();
    if chrono::NaiveDate::parse_from_str(&sale_date, "%Y-%m-%d").is_err() {
        return Err(format!("column sale_date: {sale_date:?} is not a date"));
    }
    let mut findings = Vec::new();

    let quantity = row.number("quantity")?;
    let unit_price = row.number("unit_price")?;
    let vat_rate = row.number("vat_rate")?;
    let total = row.number("total_amount")?;
    let dec = |c: &str, t: &str| {
        mapping::parse_decimal(t).ok_or_else(|| format!("column {c}: {t} is not a decimal"))
    };
    let (q, p, v, t) = (
        dec("quantity", quantity)?,
        dec("unit_price", unit_price)?,
        dec("vat_rate", vat_rate)?,
        dec("total_amount", total)?,
    );
    if q <= Decimal::ZERO || p < Decimal::ZERO {
        findings.push(Finding::reject(
            "invalid_amount",
            format!("quantity {quantity} must be > 0 and unit price {unit_price} >= 0"),
        ));
    }
    match expected_total(q, p, v) {
            Some(expected) if (t - expected).abs() > TOTAL_TOLERANCE => findings.push(Finding::warning(
                "total_mismatch",
                format!("total {total} differs from {quantity} × {unit_price} × (1 + {vat_rate}/100) = {expected} by more than 0.05"),
            )),
            Some(_) => {}
            None => findings.push(Finding::warning("total_mismatch", "the expected total overflows; not checked")),
        }

    let raw_status = row.text("status");
    let status = map_status(raw_status);
    if status.is_none() {
        findings.push(Finding::reject(
            "unknown_status",
            format!(
                "status {:?} is not a known legacy code",
                raw_status.unwrap_or_default()
            ),
        ));
    }

    let currency = row
        .text("currency")
        .and_then(mapping::trimmed)
        .map(|c| c.to_uppercase())
        .unwrap_or_else(|| "EUR".into());
    let (created_at, updated_at) = audit_times(row, ctx)?;
    let index_sk = format!("{}{sale_date}#{sale_id}", SALES.key_prefix);
    let description = row.text("description").filter(|d| !d.trim().is_empty());
    let item = item([
        ("PK", s(SALES.key(&sale_id))),
        ("SK", s("METADATA")),
        ("saleId", s(sale_id.clone())),
        ("legacyId", n(&legacy_id.to_string())),
        ("buyerId", buyer_id.clone().map(Value::String)),
        ("producerId", producer_id.clone().map(Value::String)),
        ("saleDate", s(sale_date)),
        (
            "description",
            description.map(|d| Value::String(d.to_string())),
        ),
        ("quantity", n(quantity)),
        ("unitPrice", n(unit_price)),
        ("vatRate", n(vat_rate)),
        ("totalAmount", n(total)),
        ("currency", s(currency)),
        ("status", status.map(s).unwrap_or_default()),
        (
            "paymentMethod",
            row.text("payment_method")
                .and_then(mapping::trimmed)
                .map(Value::String),
        ),
        ("createdAt", s(created_at)),
        ("updatedAt", s(updated_at)),
        ("createdBy", s(super::CREATED_BY)),
        (
            "GSI1PK",
            buyer_id.as_ref().map(|b| Value::String(BUYERS.key(b))),
        ),
        (
            "GSI1SK",
            buyer_id.is_some().then(|| Value::String(index_sk.clone())),
        ),
        (
            "GSI2PK",
            producer_id
                .as_ref()
                .map(|p| Value::String(PRODUCERS.key(p))),
        ),
        (
            "GSI2SK",
            producer_id
                .is_some()
                .then(|| Value::String(index_sk.clone())),
        ),
    ]);
    Ok(Transformed {
        legacy_id,
        item,
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::Severity;
    use serde_json::json;

    fn ctx() -> MapContext {
        MapContext {
            namespace: uuid::Uuid::parse_str(crate::config::DEFAULT_UUID_NAMESPACE).unwrap(),
            first_run_started_at: chrono::Utc::now(),
        }
    }

    fn sale(over: serde_json::Value) -> Transformed {
        // parsed from text as PostgreSQL writes it (json! would pass numbers through f64)
        let mut r: serde_json::Value = serde_json::from_str(
            r#"{"first_id": 10, "buyer_id": 1, "producer_id": 2, "sale_date": "2024-05-01",
            "description": "Vino", "quantity": 2.000, "unit_price": 10.25, "vat_rate": 22.00,
            "total_amount": 25.01, "currency": null, "status": " Conf ", "payment_method": "bonifico",
            "created_at": "2024-05-01T10:00:00", "updated_at": "2024-05-02T10:00:00"}"#,
        )
        .unwrap();
        for (k, v) in over.as_object().unwrap() {
            r[k] = v.clone();
        }
        SALES.map(&crate::entities::test_row(&r), &ctx()).unwrap()
    }

    #[test]
    fn sale_shape() {
        let t = sale(json!({}));
        assert!(t.findings.is_empty(), "{:?}", t.findings);
        let ns = ctx().namespace;
        let sid = mapping::legacy_uuid(&ns, "sale", 10).to_string();
        let bid = mapping::legacy_uuid(&ns, "buyer", 1).to_string();
        let pid = mapping::legacy_uuid(&ns, "producer", 2).to_string();
        let it = &t.item;
        assert_eq!(it["PK"], format!("SALE#{sid}"));
        assert_eq!(it["buyerId"], bid);
        assert_eq!(it["GSI1PK"], format!("BUYER#{bid}"));
        assert_eq!(it["GSI1SK"], format!("SALE#2024-05-01#{sid}"));
        assert_eq!(it["GSI2PK"], format!("PRODUCER#{pid}"));
        assert_eq!(it["currency"], "EUR");
        assert_eq!(it["status"], "confirmed");
        // exact decimals, as written by PostgreSQL
        assert_eq!(serde_json::to_string(&it["quantity"]).unwrap(), "2.000");
        assert_eq!(serde_json::to_string(&it["unitPrice"]).unwrap(), "10.25");
        assert_eq!(it["createdAt"], "2024-05-01T08:00:00.000Z");
    }

    #[test]
    fn statuses() {
        for (raw, want) in [
            (Some("C"), Some("confirmed")),
            (Some(" CONFIRMED "), Some("confirmed")),
            (Some("Spedito"), Some("shipped")),
            (Some("s"), Some("shipped")),
            (Some("annullato"), Some("cancelled")),
            (Some("A"), Some("cancelled")),
            (Some("P"), Some("pending")),
            (None, Some("pending")),
            (Some("X"), None),
            (Some(""), None),
        ] {
            assert_eq!(map_status(raw), want, "{raw:?}");
        }
        let t = sale(json!({"status": "returned"}));
        assert_eq!(t.findings[0].code, "unknown_status");
        assert!(!t.item.contains_key("status"));
    }

    #[test]
    fn amounts() {
        assert_eq!(
            sale(json!({"quantity": 0})).findings[0].code,
            "invalid_amount"
        );
        assert_eq!(
            sale(json!({"quantity": -1.5})).findings[0].code,
            "invalid_amount"
        );
        assert_eq!(
            sale(json!({"unit_price": -0.01})).findings[0].code,
            "invalid_amount"
        );
        assert!(
            sale(json!({"unit_price": 0, "total_amount": 0}))
                .findings
                .is_empty()
        );
        // 2 × 10.25 × 1.22 = 25.01 exactly; ±0.05 is tolerated
        assert!(sale(json!({"total_amount": 25.06})).findings.is_empty());
        let t = sale(json!({"total_amount": 25.07}));
        assert_eq!(
            (t.findings[0].code.as_str(), t.findings[0].severity),
            ("total_mismatch", Severity::Warning)
        );
        assert_eq!(
            expected_total(
                "0.1".parse().unwrap(),
                "0.2".parse().unwrap(),
                "0".parse().unwrap()
            )
            .unwrap()
            .to_string(),
            "0.02"
        );
    }

    #[test]
    fn missing_party_leaves_index_keys_out() {
        let t = sale(json!({"buyer_id": null}));
        assert!(!t.item.contains_key("buyerId"));
        assert!(!t.item.contains_key("GSI1PK"));
        assert!(!t.item.contains_key("GSI1SK"));
    }
}
