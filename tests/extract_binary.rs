//! Extract through `COPY … (FORMAT binary)` decoded by `migrate` writes the
//! very artifact PostgreSQL's `row_to_json` gives (`extractFormat: "json"`),
//! line for line: on the generator's sample database, on hand-written rows
//! with every edge the decoder has (NULLs, DST-edge and BC timestamps,
//! infinities, numerics with trailing zeros and large precision, NaN,
//! non-Latin text, quotes, backslashes, control characters, a 500 KB
//! description), on 20,000 random values of every decoded type, and when a
//! column's type has no decoder (the fallback, with its warning).

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use support::{Env, text};

const ENTITIES: [&str; 3] = ["buyers", "producers", "sales"];

/// Runs `--phase extract` with `format` and returns each entity's artifact
/// as it was written, with the console's stderr.
fn extract(env: &Env, format: &str, connections: u32) -> (BTreeMap<&'static str, Vec<u8>>, String) {
    // The edge rows change column types on purpose: drift is logged, not refused.
    env.config(json!({"source": {"driftCheck": "warn"},
                      "migration": {"extractFormat": format, "extractConnections": connections}}));
    let out = env.migrate(&["--phase", "extract", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut artifacts = BTreeMap::new();
    for e in ENTITIES {
        let path = env.data_dir().join(format!("extracted/{e}.jsonl"));
        artifacts.insert(e, std::fs::read(&path).unwrap());
    }
    (artifacts, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The formats each run used, as its log says (`extracting <entity>`).
fn formats_logged(data_dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(data_dir.join("reports/migration.log")).unwrap();
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("extracting ") && !m.contains("entities"))
        })
        .map(|v| v["fields"]["format"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Asserts two artifacts are the same bytes, naming the first line that differs.
fn assert_same_lines(entity: &str, json: &[u8], binary: &[u8]) {
    let a: Vec<&[u8]> = json.split(|b| *b == b'\n').collect();
    let b: Vec<&[u8]> = binary.split(|b| *b == b'\n').collect();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x != y {
            let show = |l: &[u8]| {
                let s = String::from_utf8_lossy(l);
                s.chars().take(600).collect::<String>()
            };
            panic!(
                "{entity} line {}: row_to_json wrote\n  {}\nthe binary extract wrote\n  {}",
                i + 1,
                show(x),
                show(y)
            );
        }
    }
    assert_eq!(a.len(), b.len(), "{entity}: line counts");
    assert_eq!(json, binary, "{entity}");
}

fn assert_same(env: &Env, connections: u32) -> BTreeMap<&'static str, Vec<u8>> {
    let (json, _) = extract(env, "json", connections);
    let (binary, _) = extract(env, "binary", connections);
    let logged = formats_logged(&env.data_dir());
    assert_eq!(
        logged[logged.len() - 6..],
        ["json", "json", "json", "binary", "binary", "binary"],
        "the runs used the formats asked for"
    );
    for e in ENTITIES {
        assert!(!json[e].is_empty(), "{e} has rows");
        assert_same_lines(e, &json[e], &binary[e]);
    }
    binary
}

/// The generator's sample database at its default size and seed (every
/// case of scripts/gen_s9.sql), over two connections and over one.
#[test]
fn binary_extract_equals_row_to_json_on_the_sample_database() {
    let env = Env::new("xbin_gen");
    env.generate(1250, 430, 8542, 42);
    let rows = assert_same(&env, 2);
    assert_same(&env, 1);
    let sales = rows["sales"].iter().filter(|b| **b == b'\n').count();
    assert_eq!(
        sales.to_string(),
        env.sql("SELECT count(*) FROM msg WHERE enabled").trim()
    );
}

/// Rows written by hand for every edge of the decoder. The numeric columns
/// lose their typmod and `buyer_id` becomes `bigint`, so large precision,
/// NaN, the infinities and 64-bit ids reach the extract queries as they are.
const EDGE_ROWS: &str = r#"
ALTER TABLE msg ALTER COLUMN quantity TYPE numeric, ALTER COLUMN unit_price TYPE numeric,
                ALTER COLUMN buyer_id TYPE bigint;
INSERT INTO msg_anag (first_id, kind, name, vat_number, fiscal_code, address, city, province, zip, country,
                      email, phone, notes, enabled, created_at, updated_at) VALUES
 (1, 2, '  Rossi   &  Figli  SRL ', ' it 0123 4567 897 ', 'rssmra80a01h501u', ' Via Roma  1 ', 'Roma', 'rm', '00100', NULL,
     ' Info@Rossi.IT ', ' 06 123 ', 'note', true, '2024-03-31 02:30:00', '2024-10-27 02:30:00.123456'),
 (2, 3, 'Mario "Il Capo" Bianchi', NULL, NULL, E'C:\\dir\\file \\\\ end\\', 'Milano', NULL, NULL, 'it', NULL, NULL, NULL, true,
     NULL, '2024-10-27 01:59:59.999999'),
 (3, 2, 'Müller GmbH — Ωμέγα Ελλάς, Москва, 東京株式会社, شركة, 😀🇮🇹', 'DE123456789', NULL, 'Hauptstraße 5', 'Zürich',
     NULL, '10115', 'DE', NULL, NULL, NULL, true, '2023-01-15 10:00:00', NULL),
 (4, 2, E'ctl \x01\x02\x03\x04\x05\x06\x07\b\t\n\x0b\f\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f end',
     '', '', '', '', 'a', 'z', 'i', '', '', NULL, true, '0044-03-15 12:00:00 BC', 'infinity'),
 (5, 1, 'Produttore', 'IT01234567897', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '-infinity', '2024-02-29 23:59:59.5'),
 (6, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, NULL, NULL),
 (2147483647, 3, 'ultimo', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '1900-01-01 00:00:00.000001', NULL),
 (-5, 2, 'negativo', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '1999-12-31 23:59:59.999999', NULL);
INSERT INTO msg (first_id, buyer_id, producer_id, sale_date, description, quantity, unit_price, vat_rate, total_amount,
                 currency, status, payment_method, enabled, created_at, updated_at) VALUES
 (1, 1, 5, '2024-03-31', 'plain', 1.000, 1234.50, 22.00, 1506.09, 'EUR', 'completed', 'card', true,
     '2024-03-31 02:00:00', '2024-03-31 03:00:00'),
 (2, NULL, NULL, '2024-10-27', NULL, 0, 0.000, 0.00, 0.00, NULL, NULL, NULL, true, '2024-10-27 02:00:00', '2024-10-27 03:00:00'),
 (3, 9223372036854775807, -2147483648, '0001-01-01 BC', repeat(E'descrizione lunga \"q\" \\ \t ünïcødé ✓ \x01', 12000),
     12345678901234567890123456789.123456789012345678900, -0.000000000000000000000000000001, 999.99, -999999999999.99,
     'US', 'pending', 'bank_transfer', true, '4713-01-01 00:00:00.5 BC', '294276-12-31 23:59:59.999999'),
 (4, -9223372036854775808, 0, 'infinity', '', 'NaN', 'Infinity', 5.5, 0.01, 'E', E'st\"at', E'pay\\m', true, NULL, NULL),
 (5, 7, 7, '-infinity', 'x', '-Infinity', 100000000000000000000, 10.00, 100.10, 'EU', 'x', 'y', true,
     '2000-01-01 00:00:00', '2000-01-01 00:00:00.000001'),
 (6, 8, 8, '5874897-12-31', 'y', 0.00001000, 10000.0000, 0.10, 1.00, '€$£', 'ok', 'ok', true,
     '2024-03-31 01:59:59.999999', '2024-10-27 02:59:59.999999'),
 (7, 9, 9, '2024-02-29', 'disabled', 1, 1, 1, 1, 'EUR', NULL, NULL, false, NULL, NULL);
"#;

#[test]
fn binary_extract_equals_row_to_json_on_every_edge() {
    let env = Env::new("xbin_edge");
    env.sql(EDGE_ROWS);
    for connections in [1, 3] {
        let rows = assert_same(&env, connections);
        let sales = String::from_utf8(rows["sales"].clone()).unwrap();
        let lines: Vec<&str> = sales.lines().collect();
        assert_eq!(lines.len(), 6, "the disabled sale is not extracted");
        // what a user would check in the artifact: exact numbers, wall-clock times
        assert!(lines[0].contains(r#""unit_price":1234.50"#), "{}", lines[0]);
        assert!(lines[1].contains(r#""unit_price":0.000"#), "{}", lines[1]);
        assert!(
            lines[2].contains(r#""quantity":12345678901234567890123456789.123456789012345678900"#),
            "{}",
            &lines[2][..200]
        );
        assert!(lines[2].len() > 500_000, "the 500 KB description");
        assert!(lines[3].contains(r#""quantity":"NaN","unit_price":"Infinity""#));
        assert!(lines[0].contains(r#""created_at":"2024-03-31T02:00:00""#));
    }
    // driftCheck "warn": the changed columns are named in the log, not refused
    let log = std::fs::read_to_string(env.data_dir().join("reports/migration.log")).unwrap();
    assert!(
        log.contains("msg.buyer_id is bigint; expected integer") && log.contains("WARN"),
        "the drift is logged as a warning"
    );
}

/// A column of a type the binary decoder does not know (`timestamptz`
/// here): extract warns, naming the column and its type, and PostgreSQL
/// renders that entity as with `extractFormat: "json"`; the others stay
/// binary.
#[test]
fn unknown_column_type_falls_back_to_row_to_json_with_a_warning() {
    let env = Env::new("xbin_fallback");
    env.sql(EDGE_ROWS);
    env.sql(
        "ALTER TABLE msg ALTER COLUMN updated_at TYPE timestamptz USING updated_at AT TIME ZONE 'Europe/Rome'",
    );
    let (json, _) = extract(&env, "json", 2);
    let (binary, stderr) = extract(&env, "binary", 2);
    // the drift warnings (driftCheck "warn"), then the fallback's own
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && !l.contains("source check"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("sales")
            && warnings[0].contains("updated_at")
            && warnings[0].contains("timestamptz")
            && warnings[0].contains("row_to_json"),
        "{}",
        warnings[0]
    );
    let logged = formats_logged(&env.data_dir());
    assert_eq!(logged[logged.len() - 3..], ["binary", "binary", "json"]);
    for e in ENTITIES {
        assert_same_lines(e, &json[e], &binary[e]);
    }
    // the timestamptz column as PostgreSQL renders it, with its offset
    let sales = String::from_utf8_lossy(&binary["sales"]).into_owned();
    assert!(
        ["+00:00\"", "+01:00\"", "+02:00\""]
            .iter()
            .any(|o| sales.contains(o)),
        "{}",
        &sales[..300]
    );
}

/// 20,000 rows of random values of every type the decoder handles, read
/// through the library both ways over one snapshot: the same lines.
const RANDOM_ROWS: &str = r#"
SELECT setseed(0.19);
CREATE FUNCTION rnd_text(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(string_agg(CASE WHEN r < 0.5 THEN chr(32 + floor(random() * 95)::int)
                                  WHEN r < 0.7 THEN chr(1 + floor(random() * 31)::int)
                                  WHEN r < 0.8 THEN (ARRAY['"', '\', '/', chr(127)])[1 + floor(random() * 4)::int]
                                  WHEN r < 0.9 THEN chr(128 + floor(random() * 1920)::int)
                                  WHEN r < 0.97 THEN chr(2048 + floor(random() * 53248)::int)
                                  ELSE chr(65536 + floor(random() * 1048575)::int) END, ''), '')
  FROM (SELECT random() AS r FROM generate_series(1, n)) s $$;
CREATE FUNCTION rnd_numeric() RETURNS numeric LANGUAGE sql VOLATILE AS $$
  SELECT CASE WHEN r < 0.02 THEN 'NaN' WHEN r < 0.03 THEN 'Infinity' WHEN r < 0.04 THEN '-Infinity'
              WHEN r < 0.06 THEN '0.' || repeat('0', floor(random() * 12)::int)
              ELSE (CASE WHEN random() < 0.4 THEN '-' ELSE '' END)
                   || floor(random() * power(10, floor(random() * 16)))::bigint::text
                   || repeat('0', floor(random() * 24)::int) || '.'
                   || lpad(floor(random() * 1000000)::text, floor(random() * 30)::int, '0')
                   || repeat('0', floor(random() * 6)::int) END::numeric
  FROM (SELECT random() AS r) s $$;
CREATE TABLE fuzz AS
SELECT g AS id,
       CASE WHEN random() < 0.1 THEN NULL ELSE floor(random() * 65536 - 32768)::int2 END AS i2,
       CASE WHEN random() < 0.1 THEN NULL ELSE floor(random() * 4294967296 - 2147483648)::int4 END AS i4,
       CASE WHEN random() < 0.1 THEN NULL
            ELSE (floor(random() * 9.2e18)::numeric * (CASE WHEN random() < 0.5 THEN -1 ELSE 1 END))::int8 END AS i8,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END AS b,
       CASE WHEN random() < 0.1 THEN NULL ELSE rnd_numeric() END AS n,
       CASE WHEN random() < 0.05 THEN NULL WHEN random() < 0.02 THEN 'infinity'::timestamp
            WHEN random() < 0.02 THEN '-infinity'::timestamp
            ELSE timestamp '2000-01-01' + (random() - 0.5) * interval '6000 years'
                 + floor(random() * 1000000) * interval '1 microsecond' END AS ts,
       CASE WHEN random() < 0.05 THEN NULL WHEN random() < 0.02 THEN 'infinity'::date
            WHEN random() < 0.02 THEN '-infinity'::date
            ELSE date '2000-01-01' + floor((random() - 0.5) * 2400000)::int END AS d,
       CASE WHEN random() < 0.1 THEN NULL ELSE rnd_text(g % 40) END AS tx,
       CASE WHEN random() < 0.1 THEN NULL ELSE rnd_text(g % 9)::varchar(20) END AS vc,
       CASE WHEN random() < 0.1 THEN NULL ELSE rnd_text(g % 4)::char(5) END AS bp,
       rnd_text(g % 12)::name AS nm,
       CASE WHEN random() < 0.1 THEN NULL ELSE md5(g::text || random()::text)::uuid END AS u
FROM generate_series(1, 20000) g;
"#;

#[test]
fn binary_decoder_equals_row_to_json_on_random_values_of_every_type() {
    use migrate::source::{self, Snapshot};
    let env = Env::new("xbin_fuzz");
    env.sql(RANDOM_ROWS);
    let path = env.config(json!({}));
    let password = support::pg_params()
        .get("password")
        .cloned()
        .unwrap_or_default();
    let config =
        migrate::config::Config::from_str(&path, &std::fs::read_to_string(&path).unwrap(), &|_| {
            Some(password.clone())
        })
        .unwrap();
    let query = "SELECT id, i2, i4, i8, b, n, ts, d, tx, vc, bp, nm, u, \
                 ts AS \"time \"\"stamp\"\"\", tx AS \"ключ\" FROM fuzz ORDER BY id";
    let (json, binary) = env.rt.block_on(async {
        let client = source::connect(&config.source).await.unwrap();
        let snapshot = Snapshot::begin(client).await.unwrap();
        let mut json = Vec::new();
        snapshot
            .copy_json(query, |chunk| {
                json.extend_from_slice(chunk);
                Ok(())
            })
            .await
            .unwrap();
        let plan = snapshot
            .row_plan(query)
            .await
            .unwrap()
            .expect("every column has a decoder");
        let mut binary = Vec::new();
        let mut chunks = 0;
        let rows = snapshot
            .copy_binary(
                query,
                &plan,
                |line| {
                    binary.extend_from_slice(line);
                    binary.push(b'\n');
                    Ok(())
                },
                |_| {
                    chunks += 1;
                    Ok(())
                },
            )
            .await
            .unwrap();
        assert_eq!(rows, 20_000);
        assert!(chunks > 1);
        snapshot.finish().await.unwrap();
        (json, binary)
    });
    assert_same_lines("fuzz", &json, &binary);
    // the sample covers what it should
    let all = String::from_utf8(json).unwrap();
    for needle in [
        "\"NaN\"",
        "\"-Infinity\"",
        " BC\"",
        "\"infinity\"",
        "\\u0001",
        "\\\\",
        "\\\"",
        "0000,",
        "\"b\":false",
        "\"ключ\":",
        "\"time \\\"stamp\\\"\":",
    ] {
        assert!(all.contains(needle), "the random rows hold {needle}");
    }
}
