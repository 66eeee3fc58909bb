//! Money reconciliation (docs/checks.md): for an entity that declares
//! [`Reconcile`], the row count and the exact sums of its money columns per
//! month and per currency, computed at both ends independently of the
//! transform code — from PostgreSQL by SQL over the extract query, in the
//! extract's own snapshot, and from the table by verify's Scan — plus the
//! rejected records' sums from the rejected report. Verify fails unless
//! `source = loaded + rejected` holds for every group, to the last digit:
//! sums are `rust_decimal` values, never floats. Memory: one entry per
//! group, not per item.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::artifact::{ArtifactReader, create_private_dir, read_json, write_json_atomic};
use crate::ctx::Ctx;
use crate::entities::checks::Reconcile;
use crate::entities::{Entity, Item};
use crate::error::{Error, Result};
use crate::json::{Obj, Val};
use crate::source::Snapshot;

/// The month and the `by` values of a group.
pub type GroupKey = Vec<String>;

/// A group's row count and sums (in the order of [`Reconcile::sums`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sums {
    pub count: u64,
    pub sums: Vec<Decimal>,
}

/// Every group of one side.
pub type Groups = BTreeMap<GroupKey, Sums>;

/// The source side as extract recorded it.
#[derive(Debug, Serialize, Deserialize)]
struct SourceRecord {
    /// Where the sums come from (`extract snapshot <id>`).
    taken: String,
    groups: Vec<(GroupKey, Sums)>,
}

/// The SQL of the source side: the entity's extract query, grouped.
pub fn source_sql(spec: &Reconcile, extract_query: &str) -> String {
    // The month as the extract artifact spells the date (JSON's ISO text,
    // whatever DateStyle says), first 7 characters: no cast to timestamp,
    // which refuses dates beyond its range ('5874897-12-31', 'infinity').
    let mut select = vec![format!(
        "left(to_json(({}))#>>'{{}}', 7) AS k0",
        spec.month.sql
    )];
    let mut keys = vec!["k0".to_string()];
    for (i, f) in spec.by.iter().enumerate() {
        select.push(format!("(({}))::text AS k{}", f.sql, i + 1));
        keys.push(format!("k{}", i + 1));
    }
    let mut outer = keys.clone();
    outer.push("count(*)::text".into());
    for (i, f) in spec.sums.iter().enumerate() {
        select.push(format!("({}) AS v{i}", f.sql));
        // NaN and the infinities (a `numeric` without typmod allows them)
        // cannot be summed exactly: left out here, such a row's item is
        // rejected by validate and counted unreadable on that side.
        outer.push(format!(
            "coalesce(sum(v{i}) FILTER (WHERE v{i}::text NOT IN ('NaN', 'Infinity', '-Infinity')), 0)::text"
        ));
    }
    format!(
        "SELECT {} FROM (SELECT {} FROM ({extract_query}) q) r GROUP BY {} ORDER BY {}",
        outer.join(", "),
        select.join(", "),
        keys.join(", "),
        keys.join(", ")
    )
}

/// Parses the rows of [`source_sql`].
fn parse_rows(spec: &Reconcile, rows: Vec<Vec<Option<String>>>) -> Result<Groups> {
    let nk = 1 + spec.by.len();
    let bad = |m: String| Error::Source(format!("reconciliation query: {m}"));
    let mut out = Groups::new();
    for row in rows {
        if row.len() != nk + 1 + spec.sums.len() {
            return Err(bad(format!("{} columns", row.len())));
        }
        let key: GroupKey = row[..nk]
            .iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect();
        let text = |i: usize| row[i].clone().unwrap_or_default();
        let count = text(nk)
            .parse::<u64>()
            .map_err(|e| bad(format!("count {:?}: {e}", text(nk))))?;
        let sums = (0..spec.sums.len())
            .map(|i| {
                let t = text(nk + 1 + i);
                crate::mapping::parse_decimal(&t)
                    .ok_or_else(|| bad(format!("sum {t:?} is not a decimal")))
            })
            .collect::<Result<Vec<_>>>()?;
        out.insert(key, Sums { count, sums });
    }
    Ok(out)
}

/// Where extract records the source side of an entity.
fn source_path(ctx: &Ctx, entity: &str) -> std::path::PathBuf {
    ctx.report(&format!("reconcile/{entity}.source.json"))
}

/// Called by extract in its snapshot: records the source side of `entity`.
pub async fn record_source(ctx: &Ctx, snapshot: &Snapshot, entity: &Entity) -> Result<()> {
    let Some(spec) = entity.reconcile else {
        return Ok(());
    };
    let sql = source_sql(spec, &entity.extract_query(&ctx.config.source.schema));
    let groups = parse_rows(spec, snapshot.text_rows(&sql).await?)?;
    let path = source_path(ctx, entity.name);
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    write_json_atomic(
        &path,
        &SourceRecord {
            taken: format!("extract snapshot {}", snapshot.id),
            groups: groups.into_iter().collect(),
        },
    )
}

/// The source side: as extract recorded it, else by a query now (a data
/// directory extracted before the reconciliation existed).
async fn source_groups(ctx: &Ctx, entity: &Entity, spec: &Reconcile) -> Result<(String, Groups)> {
    let path = source_path(ctx, entity.name);
    if path.exists() {
        let r: SourceRecord = read_json(&path)?;
        return Ok((r.taken, r.groups.into_iter().collect()));
    }
    tracing::warn!(
        "{}: extract did not record the source sums; reconciling against the source as it is now",
        entity.name
    );
    let client = crate::source::connect(&ctx.config.source).await?;
    let sql = source_sql(spec, &entity.extract_query(&ctx.config.source.schema));
    let rows = crate::source::text_rows(&client, &sql).await?;
    Ok(("query at verify time".into(), parse_rows(spec, rows)?))
}

/// A string or number attribute of a scanned item (`{"S": …}`, `{"N": …}`).
pub fn wire_value(item: &Obj<'_>, name: &str) -> Option<String> {
    match item.get(name)? {
        Val::Obj(o) => o.str("S").or_else(|| o.str("N")).map(str::to_string),
        _ => None,
    }
}

/// A string or number attribute of a plain JSON item.
pub fn plain_value(item: &Item, name: &str) -> Option<String> {
    match item.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.as_str().to_string()),
        _ => None,
    }
}

/// A string or number attribute of a borrowed plain JSON item.
fn obj_value(item: &Obj<'_>, name: &str) -> Option<String> {
    match item.get(name)? {
        Val::Str(s) => Some(s.to_string()),
        Val::Num(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One side's groups, summed item by item.
pub struct Tally {
    spec: &'static Reconcile,
    pub groups: Groups,
    /// Items whose date or a money attribute could not be read.
    pub unreadable: u64,
}

impl Tally {
    pub fn new(spec: &'static Reconcile) -> Tally {
        Tally {
            spec,
            groups: Groups::new(),
            unreadable: 0,
        }
    }

    /// Adds one item; `get` reads an attribute as text.
    pub fn add(&mut self, get: impl Fn(&str) -> Option<String>) {
        let Some(date) = get(self.spec.month.attribute) else {
            self.unreadable += 1;
            return;
        };
        let mut key = vec![date.get(..7).unwrap_or(&date).to_string()];
        key.extend(
            self.spec
                .by
                .iter()
                .map(|f| get(f.attribute).unwrap_or_default()),
        );
        let n = self.spec.sums.len();
        let entry = self.groups.entry(key).or_insert_with(|| Sums {
            count: 0,
            sums: vec![Decimal::ZERO; n],
        });
        entry.count += 1;
        for (i, f) in self.spec.sums.iter().enumerate() {
            let value = get(f.attribute).and_then(|t| crate::mapping::parse_decimal(&t));
            match value.and_then(|v| entry.sums[i].checked_add(v)) {
                Some(sum) => entry.sums[i] = sum,
                None => self.unreadable += 1,
            }
        }
    }
}

/// The rejected side, from `reports/rejected/<entity>.jsonl`.
fn rejected_groups(ctx: &Ctx, entity: &Entity, spec: &'static Reconcile) -> Result<Tally> {
    let path = ctx.report(&format!("rejected/{}.jsonl", entity.name));
    let mut tally = Tally::new(spec);
    let mut reader = ArtifactReader::open(&path)?;
    let mut buf = String::new();
    while reader.next_line(&mut buf)? {
        let record = Obj::parse(&buf)
            .map_err(|e| Error::artifact(&path, format!("line {}: {e}", reader.line_no())))?;
        match record.get("item") {
            Some(Val::Obj(item)) => tally.add(|a| obj_value(item, a)),
            _ => tally.unreadable += 1,
        }
    }
    Ok(tally)
}

/// The JSON of one side of a group.
fn side(spec: &Reconcile, s: &Sums) -> Value {
    let mut m = Map::new();
    m.insert("count".into(), json!(s.count));
    for (f, v) in spec.sums.iter().zip(&s.sums) {
        m.insert(f.attribute.into(), json!(v.to_string()));
    }
    Value::Object(m)
}

/// Compares the three sides: the report's rows and the groups that differ.
pub fn compare(
    spec: &Reconcile,
    source: &Groups,
    loaded: &Groups,
    rejected: &Groups,
) -> (Vec<Value>, Vec<String>) {
    let zero = Sums {
        count: 0,
        sums: vec![Decimal::ZERO; spec.sums.len()],
    };
    let mut keys: Vec<&GroupKey> = source
        .keys()
        .chain(loaded.keys())
        .chain(rejected.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    for key in keys {
        let get = |g: &'_ Groups| g.get(key).cloned().unwrap_or_else(|| zero.clone());
        let (s, l, r) = (get(source), get(loaded), get(rejected));
        let mut diffs = Vec::new();
        if s.count != l.count + r.count {
            diffs.push(format!(
                "count: source {}, loaded {} + rejected {}",
                s.count, l.count, r.count
            ));
        }
        for (i, f) in spec.sums.iter().enumerate() {
            let (sv, lv, rv) = (s.sums[i], l.sums[i], r.sums[i]);
            if lv.checked_add(rv) != Some(sv) {
                diffs.push(format!(
                    "{}: source {sv}, loaded {lv} + rejected {rv}",
                    f.attribute
                ));
            }
        }
        let mut row = Map::new();
        row.insert("month".into(), json!(key[0]));
        for (f, v) in spec.by.iter().zip(&key[1..]) {
            row.insert(f.attribute.into(), json!(v));
        }
        row.insert("source".into(), side(spec, &s));
        row.insert("loaded".into(), side(spec, &l));
        row.insert("rejected".into(), side(spec, &r));
        row.insert("ok".into(), json!(diffs.is_empty()));
        if !diffs.is_empty() {
            bad.push(format!("{} {}", key.join(" "), diffs.join(", ")));
            row.insert("differences".into(), json!(diffs));
        }
        rows.push(Value::Object(row));
    }
    (rows, bad)
}

/// Verify's reconciliation of `entity`, given the table side its Scan
/// summed: the report section, and a problem line when it does not hold.
pub async fn verify(ctx: &Ctx, entity: &Entity, loaded: Tally) -> Result<(Value, Option<String>)> {
    let spec = loaded.spec;
    let (taken, source) = source_groups(ctx, entity, spec).await?;
    let rejected = rejected_groups(ctx, entity, spec)?;
    let (rows, bad) = compare(spec, &source, &loaded.groups, &rejected.groups);
    let total = |g: &Groups| {
        g.values().fold(zero_sums(spec), |mut acc, s| {
            acc.count += s.count;
            for (a, v) in acc.sums.iter_mut().zip(&s.sums) {
                *a = a.checked_add(*v).unwrap_or(Decimal::MAX);
            }
            acc
        })
    };
    let unreadable = loaded.unreadable + rejected.unreadable;
    let ok = bad.is_empty() && unreadable == 0;
    let section = json!({
        "ok": ok,
        "rule": "source = loaded + rejected, per month and group, exact decimals",
        "groupedBy": std::iter::once("month").chain(spec.by.iter().map(|f| f.attribute)).collect::<Vec<_>>(),
        "sourceTaken": taken,
        "total": {"source": side(spec, &total(&source)), "loaded": side(spec, &total(&loaded.groups)),
                  "rejected": side(spec, &total(&rejected.groups))},
        "unreadableItems": unreadable,
        "groups": rows,
    });
    let t = total(&source);
    let amounts: Vec<String> = spec
        .sums
        .iter()
        .zip(&t.sums)
        .map(|(f, v)| format!("{} {v}", f.attribute))
        .collect();
    if ok {
        tracing::info!(
            "reconciled {}: source = loaded + rejected in all {} group(s) (count {}, {})",
            entity.name,
            rows.len(),
            t.count,
            amounts.join(", ")
        );
        return Ok((section, None));
    }
    let mut what = bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if unreadable > 0 {
        what.push_str(&format!(
            "; {unreadable} item(s) without a readable date or amount"
        ));
    }
    Ok((
        section,
        Some(format!(
            "{}: reconciliation failed in {} of {} group(s): {what}; see {}",
            entity.name,
            bad.len(),
            rows.len(),
            ctx.report("verification_report.json").display()
        )),
    ))
}

fn zero_sums(spec: &Reconcile) -> Sums {
    Sums {
        count: 0,
        sums: vec![Decimal::ZERO; spec.sums.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::checks::Field;

    const SPEC: Reconcile = Reconcile {
        month: Field {
            sql: "d",
            attribute: "date",
        },
        by: &[Field {
            sql: "c",
            attribute: "currency",
        }],
        sums: &[Field {
            sql: "a",
            attribute: "amount",
        }],
    };

    fn tally(items: &[(&str, &str, &str)]) -> Groups {
        let mut t = Tally::new(&SPEC);
        for (d, c, a) in items {
            t.add(|n| match n {
                "date" => Some(d.to_string()),
                "currency" => Some(c.to_string()),
                "amount" => Some(a.to_string()),
                _ => None,
            });
        }
        t.groups
    }

    #[test]
    fn holds_to_the_cent_and_no_further() {
        let source = tally(&[
            ("2025-01-03", "EUR", "0.10"),
            ("2025-01-09", "EUR", "0.20"),
            ("2025-02-01", "USD", "1"),
        ]);
        let loaded = tally(&[("2025-01-03", "EUR", "0.1"), ("2025-02-01", "USD", "1.00")]);
        let rejected = tally(&[("2025-01-09", "EUR", "0.20")]);
        let (rows, bad) = compare(&SPEC, &source, &loaded, &rejected);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["source"]["amount"], "0.30");
        let loaded = tally(&[("2025-01-03", "EUR", "0.11"), ("2025-02-01", "USD", "1.00")]);
        let (_, bad) = compare(&SPEC, &source, &loaded, &rejected);
        assert_eq!(
            bad,
            ["2025-01 EUR amount: source 0.30, loaded 0.11 + rejected 0.20"]
        );
    }

    #[test]
    fn the_source_query_groups_the_extract_query() {
        let sql = source_sql(&SPEC, "SELECT d, c, a FROM t ORDER BY d");
        assert!(
            sql.contains("FROM (SELECT d, c, a FROM t ORDER BY d) q"),
            "{sql}"
        );
        assert!(sql.contains("GROUP BY k0, k1"), "{sql}");
    }
}
