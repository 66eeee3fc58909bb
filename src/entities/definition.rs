//! What one business entity is, as a value: its name, keys, source rows,
//! schema, table, references, unique attributes and money checks, plus the
//! one function that maps a row to an item. Everything else is derived here
//! (the extract query, the dependencies, an item's id and `PK`), so no other
//! module spells an entity's key prefix or UUID kind (docs/design.md,
//! "Entities").

use std::fmt;

use uuid::Uuid;

use super::checks::{Reconcile, SourceColumn};
use super::{MapContext, Row, Severity, TableDef, Transformed};
use crate::mapping;

/// Where an entity's rows come from in the source.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The table in `source.schema`.
    pub table: &'static str,
    /// The selected columns, comma-separated; each must be in `columns`.
    pub select: &'static str,
    /// The SQL condition of the rows to migrate.
    pub filter: &'static str,
    /// The integer column holding the legacy id; the query is ordered by it,
    /// and the id's UUID v5 is built from it.
    pub legacy_id: &'static str,
    /// Whether extract may read ranges of `legacy_id` over parallel
    /// connections sharing one snapshot (README "Configuration").
    pub split: bool,
    /// The columns the query reads (selected or filtered on), as the
    /// source's catalog should describe them; checked before extract
    /// (docs/checks.md).
    pub columns: &'static [SourceColumn],
}

/// A reference from this entity's items to another entity's ids.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// The attribute of this entity's item holding the id.
    pub attribute: &'static str,
    /// The entity referred to.
    pub entity: &'static Entity,
    /// The reject code when the id is not among the valid migrated ones.
    pub code: &'static str,
}

/// An attribute whose value should be unique within the entity.
#[derive(Debug, Clone, Copy)]
pub struct UniqueAttribute {
    pub attribute: &'static str,
    pub code: &'static str,
    pub severity: Severity,
}

/// Maps one extracted row. `Err` means the row cannot be mapped at all (it
/// goes to the transform quarantine with the message).
pub type Mapping = fn(&Row<'_>, &MapContext) -> Result<Transformed, String>;

/// One business entity moving from PostgreSQL to DynamoDB.
pub struct Entity {
    /// The name on the command line and in file names (`buyers`).
    pub name: &'static str,
    /// The name part of the entity's UUID v5 ids (`buyer`; README "Mapping
    /// and rules").
    pub uuid_kind: &'static str,
    /// The `PK` prefix of the entity's items (`BUYER#`): an item's `PK` is
    /// the prefix and its id ([`Entity::key`]).
    pub key_prefix: &'static str,
    /// The attribute holding the entity's own id (`buyerId`).
    pub id_attribute: &'static str,
    /// The JSON Schema items must satisfy (`entities/<name>.schema.json`).
    pub schema: &'static str,
    /// The key schema and indexes of the entity's table; `migrate tables
    /// create` creates the table from it (docs/tables.md). Entities sharing
    /// one table get the union of their indexes.
    pub table: &'static TableDef,
    pub source: Source,
    /// References to other entities, checked against their valid items;
    /// the entities referred to are this one's dependencies.
    pub references: &'static [Reference],
    /// Attributes that should be unique among the entity's items.
    pub unique_attributes: &'static [UniqueAttribute],
    /// The money verify reconciles between the source and the table; `None`
    /// skips the reconciliation (docs/checks.md).
    pub reconcile: Option<&'static Reconcile>,
    /// Row → item, with the rule findings that need the legacy values.
    pub mapping: Mapping,
}

impl Entity {
    /// Maps one extracted row (see [`Mapping`]).
    pub fn map(&self, row: &Row<'_>, ctx: &MapContext) -> Result<Transformed, String> {
        (self.mapping)(row, ctx)
    }

    /// The SELECT of the rows to migrate in `schema`, ordered by legacy id.
    pub fn extract_query(&self, schema: &str) -> String {
        let s = &self.source;
        format!(
            "SELECT {} FROM \"{schema}\".{} WHERE {} ORDER BY {}",
            s.select, s.table, s.filter, s.legacy_id
        )
    }

    /// The column extract splits the query on, when it may.
    pub fn split_column(&self) -> Option<&'static str> {
        self.source.split.then_some(self.source.legacy_id)
    }

    /// The entities this one refers to, in the order of its references.
    pub fn dependencies(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.references.iter().map(|r| r.entity.name)
    }

    /// The id of the item migrated from `legacy_id` (UUID v5 under the
    /// configured namespace).
    pub fn id(&self, namespace: &Uuid, legacy_id: i64) -> String {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        mapping::legacy_uuid(namespace, self.uuid_kind, legacy_id)
            .hyphenated()
            .encode_lower(&mut text)
            .to_owned()
    }

    /// The `PK` of the item with id `id`.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.key_prefix)
    }

    /// The id in a `PK` of this entity's items ([`Entity::key`] undone);
    /// `None` for a key of something else.
    pub fn id_in_key<'k>(&self, pk: &'k str) -> Option<&'k str> {
        pk.strip_prefix(self.key_prefix)
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entity").field("name", &self.name).finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::entities::{buyers::BUYERS, sales::SALES};

    #[test]
    fn the_query_is_derived_from_the_source() {
        assert_eq!(
            SALES.extract_query("s9"),
            "SELECT first_id, buyer_id, producer_id, sale_date, description, quantity, unit_price, \
             vat_rate, total_amount, currency, status, payment_method, created_at, updated_at \
             FROM \"s9\".msg WHERE enabled ORDER BY first_id"
        );
        assert_eq!(SALES.split_column(), Some("first_id"));
    }

    #[test]
    fn dependencies_are_the_entities_referred_to() {
        assert_eq!(
            SALES.dependencies().collect::<Vec<_>>(),
            ["buyers", "producers"]
        );
        assert_eq!(BUYERS.dependencies().count(), 0);
    }

    #[test]
    fn key_is_prefix_and_id() {
        let ns = uuid::Uuid::nil();
        let id = BUYERS.id(&ns, 7);
        assert_eq!(id, crate::mapping::legacy_uuid(&ns, "buyer", 7).to_string());
        assert_eq!(BUYERS.key(&id), format!("BUYER#{id}"));
        assert_eq!(BUYERS.id_in_key(&BUYERS.key(&id)), Some(id.as_str()));
        assert_eq!(BUYERS.id_in_key("SALE#1"), None);
    }
}
