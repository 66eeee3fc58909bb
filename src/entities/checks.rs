//! What an entity declares for the safety checks (docs/checks.md): the
//! source columns it reads, which the drift pre-flight compares with the
//! source's catalog before extract, and the money it reconciles, which
//! verify sums at both ends. Both are plain data in the entity's module; the
//! checks themselves know no entity by name.

/// One column an entity reads, as the source's catalog should describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceColumn {
    /// The table (in `source.schema`).
    pub table: &'static str,
    pub name: &'static str,
    /// The type as PostgreSQL's `format_type()` writes it, with its
    /// modifiers: `integer`, `numeric(12,3)`, `character varying(200)`.
    pub sql_type: &'static str,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

/// A column that may hold NULL.
pub const fn null(table: &'static str, name: &'static str, sql_type: &'static str) -> SourceColumn {
    SourceColumn {
        table,
        name,
        sql_type,
        nullable: true,
    }
}

/// A `NOT NULL` column.
pub const fn not_null(
    table: &'static str,
    name: &'static str,
    sql_type: &'static str,
) -> SourceColumn {
    SourceColumn {
        table,
        name,
        sql_type,
        nullable: false,
    }
}

/// One reconciled value: an SQL expression over the extract query's columns
/// and the item attribute holding the same value in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub sql: &'static str,
    pub attribute: &'static str,
}

/// What verify reconciles for an entity: per month of a date and per value
/// of the `by` fields, the row count and the sum of each of `sums`, from
/// the source by SQL and from the table by the verify Scan (docs/checks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconcile {
    /// A date column; the attribute holds `YYYY-MM-DD…` (its first 7
    /// characters are the month).
    pub month: Field,
    /// Further grouping (a currency): the SQL expression must give the value
    /// the item's attribute holds.
    pub by: &'static [Field],
    /// Exact decimal columns summed.
    pub sums: &'static [Field],
}
