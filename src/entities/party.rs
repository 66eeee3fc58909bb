//! What buyers and producers share: both are rows of `msg_anag` mapped to the
//! same item shape under the same rules (README "Mapping and rules").

use serde_json::{Map, Value};

use super::checks::{SourceColumn, not_null, null};
use super::{
    Entity, Finding, MapContext, Row, Severity, Source, Transformed, UniqueAttribute, audit_times,
    item, n, s,
};
use crate::mapping::{self, Email};

/// The columns every party query selects.
const PARTY_COLUMNS: &str = "first_id, kind, name, vat_number, fiscal_code, address, city, \
                                 province, zip, country, email, phone, created_at, updated_at";

/// The `msg_anag` columns the party queries read (the selected ones and
/// `enabled`), as the S9 schema declares them (checked before extract).
const PARTY_SOURCE: &[SourceColumn] = &[
    not_null("msg_anag", "first_id", "integer"),
    not_null("msg_anag", "kind", "smallint"),
    null("msg_anag", "name", "character varying(200)"),
    null("msg_anag", "vat_number", "character varying(20)"),
    null("msg_anag", "fiscal_code", "character varying(16)"),
    null("msg_anag", "address", "character varying(300)"),
    null("msg_anag", "city", "character varying(100)"),
    null("msg_anag", "province", "character(2)"),
    null("msg_anag", "zip", "character varying(10)"),
    null("msg_anag", "country", "character(2)"),
    null("msg_anag", "email", "character varying(200)"),
    null("msg_anag", "phone", "character varying(50)"),
    not_null("msg_anag", "enabled", "boolean"),
    null("msg_anag", "created_at", "timestamp without time zone"),
    null("msg_anag", "updated_at", "timestamp without time zone"),
];

/// The `msg_anag` rows matching `filter`.
pub const fn party_source(filter: &'static str) -> Source {
    Source {
        table: "msg_anag",
        select: PARTY_COLUMNS,
        filter,
        legacy_id: "first_id",
        split: true,
        columns: PARTY_SOURCE,
    }
}

/// A party's VAT number should be unique among the entity's items.
pub const UNIQUE_VAT: &[UniqueAttribute] = &[UniqueAttribute {
    attribute: "vatNumber",
    code: "duplicate_vat",
    severity: Severity::Warning,
}];

/// Maps a `msg_anag` row to an item of `entity` with its rule findings:
/// `party_type` is the `buyerType` (producers have none), and
/// `vat_required` says whether a missing or invalid VAT number rejects it.
pub fn map_party(
    row: &Row<'_>,
    ctx: &MapContext,
    entity: &Entity,
    party_type: Option<&'static str>,
    vat_required: bool,
) -> Result<Transformed, String> {
    let legacy_id = row.int(entity.source.legacy_id)?;
    let id = entity.id(&ctx.namespace, legacy_id);
    let mut findings = Vec::new();

    let name = row.text("name").and_then(mapping::fold_spaces);
    if name.is_none() {
        findings.push(Finding::reject("missing_name", "name is blank or NULL"));
    }

    let vat = match row.text("vat_number").and_then(mapping::normalize_vat) {
        None => {
            if vat_required {
                findings.push(Finding::reject("invalid_vat", "VAT number is missing"));
            }
            None
        }
        Some(v) if mapping::vat_is_valid(&v) => Some(v),
        Some(v) => {
            let message = format!("VAT number {v:?} is not valid");
            findings.push(if vat_required {
                Finding::reject("invalid_vat", message)
            } else {
                Finding::warning("invalid_vat", format!("{message}; left out"))
            });
            None
        }
    };

    let email = match mapping::normalize_email(row.text("email")) {
        Email::Absent => None,
        Email::Valid(e) => Some(e),
        Email::Invalid(raw) => {
            findings.push(Finding::warning(
                "invalid_email",
                format!("e-mail {raw:?} is not an address; left out"),
            ));
            None
        }
    };

    let upper = |c: &str| {
        row.text(c)
            .and_then(mapping::trimmed)
            .map(|v| v.to_uppercase())
    };
    let mut address = Map::new();
    for (key, value) in [
        ("street", row.text("address").and_then(mapping::fold_spaces)),
        ("city", row.text("city").and_then(mapping::fold_spaces)),
        ("province", upper("province")),
        ("zip", row.text("zip").and_then(mapping::trimmed)),
        (
            "country",
            Some(upper("country").unwrap_or_else(|| "IT".into())),
        ),
    ] {
        if let Some(v) = value {
            address.insert(key.into(), Value::String(v));
        }
    }

    let (created_at, updated_at) = audit_times(row, ctx)?;
    let item = item([
        ("PK", s(entity.key(&id))),
        ("SK", s("METADATA")),
        (entity.id_attribute, s(id)),
        ("legacyId", n(&legacy_id.to_string())),
        ("buyerType", party_type.map(s).unwrap_or_default()),
        ("companyName", name.map(Value::String)),
        ("vatNumber", vat.map(Value::String)),
        ("fiscalCode", upper("fiscal_code").map(Value::String)),
        ("address", Some(Value::Object(address))),
        ("email", email.map(Value::String)),
        (
            "phone",
            row.text("phone")
                .and_then(mapping::trimmed)
                .map(Value::String),
        ),
        ("status", s("active")),
        ("createdAt", s(created_at)),
        ("updatedAt", s(updated_at)),
        ("createdBy", s(super::CREATED_BY)),
    ]);
    Ok(Transformed {
        legacy_id,
        item,
        findings,
    })
}
