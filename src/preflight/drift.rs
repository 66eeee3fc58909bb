//! Source drift: before extract, every column an entity declares it reads
//! ([`crate::entities::checks::SourceColumn`]) is compared with PostgreSQL's
//! catalog — type with its modifiers (`format_type`), and whether it may be
//! NULL. A difference stops the command with exit 2 and the list of
//! differences, before anything is extracted, unless `source.driftCheck`
//! is `"warn"` (docs/checks.md).

use std::collections::BTreeMap;

use crate::config::SourceConfig;
use crate::entities::Entity;
use crate::entities::checks::SourceColumn;
use crate::error::{Error, Result};

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub sql_type: String,
    pub nullable: bool,
}

/// The outcome of the comparison: refusals and harmless notes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Differences that stop the command.
    pub differences: Vec<String>,
    /// Differences that cannot break the migration (a column the entity
    /// allows NULL in is `NOT NULL` in the source).
    pub notes: Vec<String>,
    /// How many columns were compared.
    pub checked: usize,
}

/// Compares the declared columns with what the catalog holds, keyed by
/// (table, column); `tables` are the tables the catalog has at all.
pub fn compare(
    expected: &[SourceColumn],
    tables: &[String],
    found: &BTreeMap<(String, String), Found>,
) -> Drift {
    let mut d = Drift::default();
    for c in expected {
        d.checked += 1;
        let at = format!("{}.{}", c.table, c.name);
        if !tables.iter().any(|t| t == c.table) {
            let message = format!("table {} is missing", c.table);
            if !d.differences.contains(&message) {
                d.differences.push(message);
            }
            continue;
        }
        let Some(f) = found.get(&(c.table.to_string(), c.name.to_string())) else {
            d.differences
                .push(format!("{at} is missing; expected {}", c.sql_type));
            continue;
        };
        if f.sql_type != c.sql_type {
            let base = |t: &str| t.split('(').next().unwrap_or(t).trim().to_string();
            let modifiers = if c.sql_type.starts_with("numeric(") {
                "precision and scale"
            } else {
                "length"
            };
            let what = if base(&f.sql_type) == base(c.sql_type) && !f.sql_type.contains('(') {
                format!("{} without {modifiers}", f.sql_type)
            } else {
                f.sql_type.clone()
            };
            d.differences
                .push(format!("{at} is {what}; expected {}", c.sql_type));
        }
        match (f.nullable, c.nullable) {
            (true, false) => d
                .differences
                .push(format!("{at} allows NULL; expected NOT NULL")),
            (false, true) => d
                .notes
                .push(format!("{at} is NOT NULL, the entity also accepts NULL")),
            _ => {}
        }
    }
    d
}

/// Reads the catalog for every table the entities read, in `schema`.
async fn catalog(
    client: &tokio_postgres::Client,
    schema: &str,
    tables: &[String],
) -> Result<(Vec<String>, BTreeMap<(String, String), Found>)> {
    let rows = client
        .query(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[&schema, &tables],
        )
        .await
        .map_err(|e| {
            Error::Source(format!(
                "reading the catalog of schema {schema}: {}",
                crate::source::describe(&e)
            ))
        })?;
    let mut present = Vec::new();
    let mut found = BTreeMap::new();
    for r in rows {
        let table: String = r.get(0);
        if !present.contains(&table) {
            present.push(table.clone());
        }
        let (Some(name), Some(sql_type), Some(nullable)) = (
            r.get::<_, Option<String>>(1),
            r.get::<_, Option<String>>(2),
            r.get::<_, Option<bool>>(3),
        ) else {
            continue;
        };
        found.insert((table, name), Found { sql_type, nullable });
    }
    Ok((present, found))
}

/// The pre-flight before extract: the declared columns of `entities` against
/// the source's catalog. `Err(Error::Preflight)` lists every difference.
pub async fn check(source: &SourceConfig, entities: &[&'static Entity]) -> Result<Drift> {
    let expected: Vec<(&str, SourceColumn)> = entities
        .iter()
        .flat_map(|e| e.source.columns.iter().map(|c| (e.name, *c)))
        .collect();
    if expected.is_empty() {
        return Ok(Drift::default());
    }
    let mut tables: Vec<String> = expected.iter().map(|(_, c)| c.table.to_string()).collect();
    tables.sort();
    tables.dedup();
    let client = crate::source::connect(source).await?;
    let (present, found) = catalog(&client, &source.schema, &tables).await?;
    // One comparison per column, even when two entities read it.
    let mut columns: Vec<SourceColumn> = Vec::new();
    for (_, c) in &expected {
        if !columns
            .iter()
            .any(|o| o.table == c.table && o.name == c.name)
        {
            columns.push(*c);
        }
    }
    let drift = compare(&columns, &present, &found);
    for n in &drift.notes {
        tracing::info!("source check: {n}");
    }
    if !drift.differences.is_empty() && source.drift_warn_only {
        for d in &drift.differences {
            tracing::warn!("source check (driftCheck \"warn\"): {d}");
        }
        return Ok(drift);
    }
    if !drift.differences.is_empty() {
        return Err(Error::Preflight(format!(
            "the source schema {} differs from what the entities read; nothing was extracted:\n  - {}",
            source.schema,
            drift.differences.join("\n  - ")
        )));
    }
    tracing::info!(
        "source check: {} column(s) of {} match the entities' definitions",
        drift.checked,
        tables.join(", ")
    );
    Ok(drift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::checks::{not_null, null};

    #[test]
    fn differences_are_named() {
        let expected = [
            not_null("msg", "quantity", "numeric(12,3)"),
            not_null("msg", "sale_date", "date"),
            null("msg", "description", "text"),
            null("msg", "gone", "text"),
            null("other", "x", "text"),
        ];
        let found: BTreeMap<(String, String), Found> = [
            ("quantity", "numeric", false),
            ("sale_date", "date", true),
            ("description", "text", false),
        ]
        .into_iter()
        .map(|(n, t, null)| {
            (
                ("msg".to_string(), n.to_string()),
                Found {
                    sql_type: t.into(),
                    nullable: null,
                },
            )
        })
        .collect();
        let d = compare(&expected, &["msg".to_string()], &found);
        assert_eq!(
            d.differences,
            [
                "msg.quantity is numeric without precision and scale; expected numeric(12,3)",
                "msg.sale_date allows NULL; expected NOT NULL",
                "msg.gone is missing; expected text",
                "table other is missing",
            ]
        );
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert_eq!(d.checked, 5);
    }
}
