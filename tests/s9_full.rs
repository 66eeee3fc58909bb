//! A full S9 migration of generated data (scripts/gen_s9.sh, every case of
//! the generator present), checked against an oracle written in PostgreSQL
//! SQL straight from the README's mapping and rules: every expected item of the three tables is
//! built by SQL from msg_anag / msg, independently of the Rust mapping code,
//! and compared attribute by attribute (numbers by value) with what the
//! tables hold. The generator's own per-row expectations (s9_gen.expected)
//! decide which rows are valid, and are themselves checked against the
//! oracle's rendering of the rules, sales orphans included.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use support::{Env, text};

const ENTITIES: [&str; 3] = ["buyers", "producers", "sales"];

/// Unicode White_Space, as Rust's `char::is_whitespace` (and so `str::trim`
/// and `split_whitespace`) knows it. PostgreSQL's `\s` in the generator's C
/// locale is ASCII only, and `btrim` trims spaces only: spelled out instead.
const WS: &str =
    r"[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// The README's mapping and rules as SQL functions, in a schema the migration never reads.
const ORACLE_FUNCTIONS: &str = r##"
CREATE SCHEMA oracle;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" SCHEMA oracle;

-- Trimmed; NULL when blank.
CREATE FUNCTION oracle.trim_ws(t text) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT nullif(regexp_replace($1, '^{WS}+|{WS}+$', '', 'g'), '') $$;
-- Trimmed, inner runs of white space folded to one space; NULL when blank.
CREATE FUNCTION oracle.fold(t text) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT regexp_replace(oracle.trim_ws($1), '{WS}+', ' ', 'g') $$;
CREATE FUNCTION oracle.blank(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
  $$ SELECT $1 IS NULL OR $1 ~ '^{WS}*$' $$;

-- UUID v5 of s9:<kind>:<legacy id> in the default namespace.
CREATE FUNCTION oracle.id(kind text, legacy bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT oracle.uuid_generate_v5('e6efba72-f0d7-4be9-bfce-399356e044f7'::uuid,
                                    's9:' || kind || ':' || legacy)::text $$;

-- Europe/Rome wall clock -> UTC, milliseconds (to_char's MS truncates).
CREATE FUNCTION oracle.ts(t timestamp) RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT to_char(($1 AT TIME ZONE 'Europe/Rome') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- VAT: white space removed, upper case, IT before 11 digits alone; NULL when nothing is left.
CREATE FUNCTION oracle.vat_norm(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN c = '' THEN NULL WHEN c ~ '^[0-9]{11}$' THEN 'IT' || c ELSE c END
  FROM (SELECT upper(regexp_replace(coalesce($1, ''), '{WS}', '', 'g')) AS c) s $$;
-- Eleven digits whose last is the check digit of the first ten.
CREATE FUNCTION oracle.it_check_ok(d text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT (10 - sum(CASE WHEN i % 2 = 1 THEN x WHEN 2 * x > 9 THEN 2 * x - 9 ELSE 2 * x END) % 10) % 10
         = substr($1, 11, 1)::int
  FROM (SELECT i, substr($1, i, 1)::int AS x FROM generate_series(1, 10) AS i) s $$;
CREATE FUNCTION oracle.vat_ok(n text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN $1 IS NULL THEN false
              WHEN $1 LIKE 'IT%' THEN CASE WHEN $1 ~ '^IT[0-9]{11}$' THEN oracle.it_check_ok(substr($1, 3)) ELSE false END
              ELSE $1 ~ '^[A-Z]{2}[A-Z0-9]{2,12}$' END $$;

-- An address (already trimmed and lower-cased): dot-separated atoms, @, dotted alphanumeric
-- labels (inner hyphens), an alphabetic TLD of 2+ letters.
CREATE FUNCTION oracle.email_ok(e text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT length($1) <= 254 AND length(split_part($1, '@', 1)) <= 64
     AND $1 ~ '^[a-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&''*+/=?^_`{|}~-]+)*@([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$' $$;

CREATE FUNCTION oracle.sorted(a text[]) RETURNS text[] LANGUAGE sql IMMUTABLE AS
  $$ SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM unnest($1) AS x $$;
"##;

/// Per extracted row: its rule outcome and its item, computed by SQL alone.
/// `{RUN_START}` is the run's start (the last createdAt fallback).
const ORACLE_TABLES: &str = r##"
CREATE TABLE oracle.party AS
WITH p AS (
  SELECT a.*,
         CASE WHEN a.kind = 1 THEN 'producers' ELSE 'buyers' END AS entity,
         CASE WHEN a.kind = 1 THEN 'producer' ELSE 'buyer' END AS id_kind,
         oracle.fold(a.name) AS cname,
         oracle.vat_norm(a.vat_number) AS vat,
         lower(oracle.trim_ws(a.email)) AS mail,
         coalesce(oracle.ts(a.created_at), oracle.ts(a.updated_at), '{RUN_START}') AS created
  FROM public.msg_anag a
  WHERE a.enabled AND a.kind IN (1, 2, 3)
), q AS (
  SELECT p.*, oracle.vat_ok(vat) AS vat_ok, coalesce(NOT oracle.email_ok(mail), false) AS mail_bad FROM p
), r AS (
  SELECT q.*, vat_ok AND count(*) FILTER (WHERE vat_ok) OVER (PARTITION BY entity, vat) > 1 AS dup FROM q
)
SELECT entity, first_id AS legacy_id, created_at IS NULL AND updated_at IS NULL AS both_null,
  array_remove(ARRAY[
    CASE WHEN cname IS NULL THEN 'missing_name' END,
    CASE WHEN kind IN (1, 2) AND NOT vat_ok THEN 'invalid_vat' END], NULL) AS reasons,
  array_remove(ARRAY[
    CASE WHEN kind = 3 AND vat IS NOT NULL AND NOT vat_ok THEN 'invalid_vat' END,
    CASE WHEN dup THEN 'duplicate_vat' END,
    CASE WHEN mail_bad THEN 'invalid_email' END], NULL) AS warnings,
  jsonb_strip_nulls(jsonb_build_object(
    'PK', CASE entity WHEN 'buyers' THEN 'BUYER#' ELSE 'PRODUCER#' END || oracle.id(id_kind, first_id),
    'SK', 'METADATA',
    CASE entity WHEN 'buyers' THEN 'buyerId' ELSE 'producerId' END, oracle.id(id_kind, first_id),
    'legacyId', first_id,
    'buyerType', CASE kind WHEN 2 THEN 'company' WHEN 3 THEN 'individual' END,
    'companyName', cname,
    'vatNumber', CASE WHEN vat_ok THEN vat END,
    'fiscalCode', upper(oracle.trim_ws(fiscal_code)),
    'address', jsonb_build_object(
        'street', oracle.fold(address),
        'city', oracle.fold(city),
        'province', upper(oracle.trim_ws(province)),
        'zip', oracle.trim_ws(zip),
        'country', coalesce(upper(oracle.trim_ws(country)), 'IT')),
    'email', CASE WHEN NOT mail_bad THEN mail END,
    'phone', oracle.trim_ws(phone),
    'status', 'active',
    'createdAt', created,
    'updatedAt', coalesce(oracle.ts(updated_at), created),
    'createdBy', 'migration@system')) AS item
FROM r;

CREATE TABLE oracle.sale AS
WITH s AS (
  SELECT m.*,
         oracle.id('sale', m.first_id) AS sid,
         oracle.id('buyer', m.buyer_id) AS bid,
         oracle.id('producer', m.producer_id) AS pid,
         to_char(m.sale_date, 'YYYY-MM-DD') AS d,
         CASE WHEN m.status IS NULL THEN 'pending'
              ELSE CASE lower(coalesce(oracle.trim_ws(m.status), ''))
                     WHEN 'c' THEN 'confirmed' WHEN 'conf' THEN 'confirmed' WHEN 'confirmed' THEN 'confirmed'
                     WHEN 's' THEN 'shipped' WHEN 'spedito' THEN 'shipped' WHEN 'shipped' THEN 'shipped'
                     WHEN 'a' THEN 'cancelled' WHEN 'annullato' THEN 'cancelled' WHEN 'cancelled' THEN 'cancelled'
                     WHEN 'p' THEN 'pending' WHEN 'pending' THEN 'pending' END END AS st,
         coalesce(oracle.ts(m.created_at), oracle.ts(m.updated_at), '{RUN_START}') AS created
  FROM public.msg m
  WHERE m.enabled
)
SELECT 'sales'::text AS entity, first_id AS legacy_id, created_at IS NULL AND updated_at IS NULL AS both_null,
  array_remove(ARRAY[
    CASE WHEN NOT EXISTS (SELECT 1 FROM oracle.party b WHERE b.entity = 'buyers' AND b.legacy_id = s.buyer_id
                                                          AND cardinality(b.reasons) = 0)
         THEN 'orphan_buyer' END,
    CASE WHEN NOT EXISTS (SELECT 1 FROM oracle.party p WHERE p.entity = 'producers' AND p.legacy_id = s.producer_id
                                                          AND cardinality(p.reasons) = 0)
         THEN 'orphan_producer' END,
    CASE WHEN quantity <= 0 OR unit_price < 0 THEN 'invalid_amount' END,
    CASE WHEN st IS NULL THEN 'unknown_status' END,
    -- the item is its description plus well under 2 KB (asserted: no description near the limit)
    CASE WHEN octet_length(description) > 400000 THEN 'item_too_large' END], NULL) AS reasons,
  array_remove(ARRAY[
    CASE WHEN abs(total_amount - quantity * unit_price * (1 + vat_rate / 100)) > 0.05 THEN 'total_mismatch' END],
    NULL) AS warnings,
  jsonb_strip_nulls(jsonb_build_object(
    'PK', 'SALE#' || sid,
    'SK', 'METADATA',
    'saleId', sid,
    'legacyId', first_id,
    'buyerId', bid,
    'producerId', pid,
    'saleDate', d,
    'description', CASE WHEN NOT oracle.blank(description) THEN description END,
    'quantity', quantity,
    'unitPrice', unit_price,
    'vatRate', vat_rate,
    'totalAmount', total_amount,
    'currency', coalesce(upper(oracle.trim_ws(currency)), 'EUR'),
    'status', st,
    'paymentMethod', oracle.trim_ws(payment_method),
    'createdAt', created,
    'updatedAt', coalesce(oracle.ts(updated_at), created),
    'createdBy', 'migration@system',
    'GSI1PK', 'BUYER#' || bid,
    'GSI1SK', 'SALE#' || d || '#' || sid,
    'GSI2PK', 'PRODUCER#' || pid,
    'GSI2SK', 'SALE#' || d || '#' || sid)) AS item
FROM s;
"##;

/// Where the oracle's rule outcomes and the generator's differ (both sides
/// over the extracted rows: enabled, of a migrated kind).
const OUTCOME_DIFFERENCES: &str = r##"
WITH o AS (
  SELECT entity, legacy_id, oracle.sorted(reasons) AS r, oracle.sorted(warnings) AS w FROM oracle.party
  UNION ALL
  SELECT entity, legacy_id, oracle.sorted(reasons), oracle.sorted(warnings) FROM oracle.sale
), e AS (
  SELECT entity, legacy_id, oracle.sorted(reasons) AS r, oracle.sorted(warnings) AS w, outcome
  FROM s9_gen.expected WHERE entity IN ('buyers', 'producers', 'sales') AND outcome <> 'skipped'
)
SELECT format('%s %s: oracle reasons %s warnings %s | s9_gen.expected %s reasons %s warnings %s',
              entity, legacy_id, o.r, o.w, e.outcome, e.r, e.w)
FROM o FULL JOIN e USING (entity, legacy_id)
WHERE o.r IS DISTINCT FROM e.r OR o.w IS DISTINCT FROM e.w
   OR e.outcome IS DISTINCT FROM CASE WHEN cardinality(o.r) > 0 THEN 'rejected' ELSE 'valid' END
ORDER BY entity, legacy_id
"##;

/// The expected item of every row s9_gen.expected calls valid.
const EXPECTED_ITEMS: &str = r##"
SELECT jsonb_build_object('entity', o.entity, 'legacyId', o.legacy_id, 'item', o.item)::text
FROM (SELECT entity, legacy_id, item FROM oracle.party UNION ALL SELECT entity, legacy_id, item FROM oracle.sale) o
JOIN s9_gen.expected e USING (entity, legacy_id)
WHERE e.outcome = 'valid'
"##;

/// The generator's records with an outcome, as JSON lines.
const GENERATOR_OUTCOMES: &str = r##"
SELECT jsonb_build_object('entity', entity, 'legacyId', legacy_id, 'outcome', outcome,
                          'reasons', reasons, 'warnings', warnings)::text
FROM s9_gen.expected
WHERE entity IN ('buyers', 'producers', 'sales') AND outcome <> 'skipped'
"##;

/// One entity's expected items by PK, with their legacy ids.
type Expected = BTreeMap<String, (i64, Map<String, Value>)>;

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn codes(v: &Value) -> Vec<String> {
    let mut c: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other["code"]
                .as_str()
                .unwrap_or_else(|| panic!("no code: {other}"))
                .to_string(),
        })
        .collect();
    c.sort();
    c
}

/// A DynamoDB number (or a PostgreSQL numeric) by value.
fn decimal(n: &serde_json::Number) -> Decimal {
    let t = n.as_str();
    t.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(t))
        .unwrap_or_else(|e| panic!("{t} is not a decimal: {e}"))
}

/// Equal, numbers compared by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => decimal(x) == decimal(y),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

fn short(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 120 {
                format!(
                    "{}… ({} bytes)",
                    s.chars().take(120).collect::<String>(),
                    s.len()
                )
            } else {
                s
            }
        }
    }
}

/// Attribute-by-attribute differences of two items.
fn item_diffs(want: &Map<String, Value>, got: &Map<String, Value>) -> Vec<String> {
    let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter(|k| match (want.get(*k), got.get(*k)) {
            (Some(a), Some(b)) => !same(a, b),
            _ => true,
        })
        .map(|k| {
            format!(
                "{k}: expected {}, table has {}",
                short(want.get(k)),
                short(got.get(k))
            )
        })
        .collect()
}

/// The run's start as the items carry it: UTC, milliseconds truncated.
fn run_start(data_dir: &Path) -> String {
    let path = data_dir.join("checkpoint.json");
    let cp: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let raw = cp["startedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("no startedAt in {cp}"));
    let t = chrono::DateTime::parse_from_rfc3339(raw).unwrap().to_utc();
    format!(
        "{}.{:03}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_millis()
    )
}

/// `migrate` with this env's config but another data dir.
fn migrate_in(env: &Env, data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .current_dir(&env.dir)
        .arg("--config")
        .arg(env.dir.join("config.json"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env(
            "MIGRATE_TEST_PGPASSWORD",
            support::pg_params()
                .get("password")
                .cloned()
                .unwrap_or_default(),
        )
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

/// A fresh env filled by the generator, every one of its cases with rows
/// whose outcome is the one the case intends.
fn generated_env(tag: &str, buyers: u32, producers: u32, sales: u32, seed: u32) -> Env {
    let env = Env::new(tag);
    env.generate(buyers, producers, sales, seed);
    let empty = env.sql(
        "SELECT string_agg(entity || '/' || code, ', ') FROM s9_gen.case_summary WHERE rows = 0",
    );
    assert_eq!(empty.trim(), "", "cases without rows at this size");
    let differing =
        env.sql("SELECT string_agg(entity || '/' || code, ', ') FROM s9_gen.case_summary WHERE differing > 0");
    assert_eq!(
        differing.trim(),
        "",
        "generator cases whose rows do not have the intended outcome"
    );
    env
}

#[test]
fn full_migration_matches_an_independent_oracle() {
    let env = generated_env("s9full", 300, 120, 2000, 7);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    // The oracle's preconditions on the data.
    env.sql(&ORACLE_FUNCTIONS.replace("{WS}", WS));
    let non_ascii = env.sql(
        "SELECT (SELECT count(*) FROM msg_anag WHERE concat(vat_number, fiscal_code, province, country, email) ~ '[^\\u0001-\\u007f]')
              + (SELECT count(*) FROM msg WHERE concat(status, currency) ~ '[^\\u0001-\\u007f]')",
    );
    assert_eq!(
        non_ascii.trim(),
        "0",
        "case-mapped columns must be ASCII for the oracle's upper/lower"
    );
    let near_limit = env
        .sql("SELECT count(*) FROM msg WHERE octet_length(description) BETWEEN 390000 AND 412000");
    assert_eq!(
        near_limit.trim(),
        "0",
        "no description so close to 400 KB that the other attributes matter"
    );

    let start = run_start(&env.data_dir());
    env.sql(
        &ORACLE_TABLES
            .replace("{WS}", WS)
            .replace("{RUN_START}", &start),
    );

    let mut problems: Vec<String> = Vec::new();

    // 1. The generator's expectations agree with the oracle's rendering of the rules.
    for l in env
        .sql(OUTCOME_DIFFERENCES)
        .lines()
        .filter(|l| !l.is_empty())
    {
        problems.push(format!("expectation: {l}"));
    }

    // 2. The e-mail rule: the oracle's and the code's verdicts on every generated value.
    for v in lines(&env.sql(
        "SELECT DISTINCT jsonb_build_object('raw', email, 'ok', oracle.email_ok(lower(oracle.trim_ws(email))))::text
         FROM msg_anag WHERE oracle.trim_ws(email) IS NOT NULL",
    )) {
        let raw = v["raw"].as_str().unwrap();
        let rust_ok = match migrate::mapping::normalize_email(Some(raw)) {
            migrate::mapping::Email::Valid(_) => true,
            migrate::mapping::Email::Invalid(_) => false,
            migrate::mapping::Email::Absent => panic!("{raw:?} is not blank"),
        };
        if rust_ok != v["ok"].as_bool().unwrap() {
            problems.push(format!("e-mail {raw:?}: oracle valid={}, mapping::normalize_email valid={rust_ok}", v["ok"]));
        }
    }

    // 3. Every table holds exactly the expected items, attribute by attribute.
    let mut expected: BTreeMap<&str, Expected> = BTreeMap::new();
    for v in lines(&env.sql(EXPECTED_ITEMS)) {
        let entity = ENTITIES.iter().find(|e| **e == v["entity"]).unwrap();
        let item = v["item"].as_object().unwrap().clone();
        let pk = item["PK"].as_str().unwrap().to_string();
        expected
            .entry(entity)
            .or_default()
            .insert(pk, (v["legacyId"].as_i64().unwrap(), item));
    }
    let mut counts = Vec::new();
    for entity in ENTITIES {
        let want = expected.remove(entity).unwrap_or_default();
        let table = env.scan(entity);
        counts.push(format!(
            "{entity}: expected {} items, table {}",
            want.len(),
            table.len()
        ));
        assert!(
            want.len() > 50,
            "{entity}: too few expected items ({})",
            want.len()
        );
        for (pk, (legacy, item)) in &want {
            match table.get(pk) {
                None => problems.push(format!("{entity} {legacy}: missing from the table ({pk})")),
                Some(got) => {
                    for d in item_diffs(item, got) {
                        problems.push(format!("{entity} {legacy}: {d}"));
                    }
                }
            }
        }
        for (pk, got) in &table {
            if !want.contains_key(pk) {
                problems.push(format!(
                    "{entity} {}: in the table but not expected ({pk})",
                    short(got.get("legacyId"))
                ));
            }
        }
    }

    // 4. Rejects and warnings: exactly what the generator expects, with the same codes.
    let gen_outcomes = lines(&env.sql(GENERATOR_OUTCOMES));
    for entity in ENTITIES {
        let of = |outcome: &str, field: &str| -> BTreeSet<(i64, Vec<String>)> {
            gen_outcomes
                .iter()
                .filter(|g| {
                    g["entity"] == entity && g["outcome"] == outcome && !codes(&g[field]).is_empty()
                })
                .map(|g| (g["legacyId"].as_i64().unwrap(), codes(&g[field])))
                .collect()
        };
        let from_file = |rel: &str, field: &str| -> BTreeSet<(i64, Vec<String>)> {
            env.jsonl(rel)
                .iter()
                .map(|r| (r["legacyId"].as_i64().unwrap(), codes(&r[field])))
                .collect()
        };
        for (what, want, got) in [
            (
                "rejected",
                of("rejected", "reasons"),
                from_file(&format!("reports/rejected/{entity}.jsonl"), "reasons"),
            ),
            (
                "warned",
                of("valid", "warnings"),
                from_file(&format!("reports/warnings/{entity}.jsonl"), "warnings"),
            ),
        ] {
            assert!(
                !want.is_empty(),
                "{entity}: the generator expects some {what} records"
            );
            for (id, c) in want.difference(&got) {
                problems.push(format!(
                    "{entity} {id}: expected {what} with {c:?}, the report does not have that"
                ));
            }
            for (id, c) in got.difference(&want) {
                problems.push(format!(
                    "{entity} {id}: the report has it {what} with {c:?}, not expected"
                ));
            }
        }
    }

    // 5. Verification after load found nothing either.
    let verify = env.report("reports/verification_report.json");
    for entity in ENTITIES {
        if verify["entities"][entity]["ok"] != true {
            problems.push(format!(
                "{entity}: verification report not ok: {}",
                verify["entities"][entity]
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{} problem(s) ({}):\n{}",
        problems.len(),
        counts.join("; "),
        problems
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn second_run_from_fresh_data_dir_gives_same_items() {
    let env = generated_env("s9again", 120, 100, 1500, 11);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let first: Vec<_> = ENTITIES.iter().map(|e| env.scan(e)).collect();
    let first_start = run_start(&env.data_dir());

    let other: PathBuf = env.dir.join("data-second");
    let out = migrate_in(&env, &other, &["--full", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let second: Vec<_> = ENTITIES.iter().map(|e| env.scan(e)).collect();
    let second_start = run_start(&other);
    assert_ne!(first_start, second_start, "two runs, two start times");

    // Rows without any timestamp: they alone take the run's start.
    let both_null: BTreeMap<&str, BTreeSet<i64>> = ENTITIES
        .iter()
        .map(|e| {
            let sql = match *e {
                "buyers" => "SELECT first_id FROM msg_anag WHERE kind IN (2, 3) AND created_at IS NULL AND updated_at IS NULL",
                "producers" => "SELECT first_id FROM msg_anag WHERE kind = 1 AND created_at IS NULL AND updated_at IS NULL",
                _ => "SELECT first_id FROM msg WHERE created_at IS NULL AND updated_at IS NULL",
            };
            (*e, env.sql(sql).lines().filter(|l| !l.is_empty()).map(|l| l.parse().unwrap()).collect())
        })
        .collect();

    let mut problems = Vec::new();
    for (i, entity) in ENTITIES.iter().enumerate() {
        let (a, b) = (&first[i], &second[i]);
        assert!(!a.is_empty(), "{entity}: nothing migrated");
        let ka: Vec<&String> = a.keys().collect();
        let kb: Vec<&String> = b.keys().collect();
        assert_eq!(ka, kb, "{entity}: the second run has other ids");
        let mut timeless = 0;
        for (pk, x) in a {
            let y = &b[pk];
            let legacy = x["legacyId"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| x["legacyId"].to_string());
            let legacy: i64 = legacy.parse().unwrap();
            if both_null[entity].contains(&legacy) {
                timeless += 1;
                for (item, start) in [(x, &first_start), (y, &second_start)] {
                    for attr in ["createdAt", "updatedAt"] {
                        if item.get(attr) != Some(&Value::String(start.clone())) {
                            problems.push(format!(
                                "{entity} {legacy}: {attr} {} is not the run's start {start}",
                                short(item.get(attr))
                            ));
                        }
                    }
                }
                let strip = |m: &Map<String, Value>| {
                    let mut m = m.clone();
                    m.remove("createdAt");
                    m.remove("updatedAt");
                    m
                };
                for d in item_diffs(&strip(x), &strip(y)) {
                    problems.push(format!("{entity} {legacy} (first run vs second): {d}"));
                }
            } else {
                for d in item_diffs(x, y) {
                    problems.push(format!("{entity} {legacy} (first run vs second): {d}"));
                }
            }
        }
        assert!(
            timeless > 0,
            "{entity}: no migrated row without timestamps; the test would prove nothing"
        );
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
