//! A full buyers migration against real PostgreSQL and a real
//! DynamoDB API, checked item by item against expectations written by hand
//! from the README's mapping and rules (not computed by the code under test).

mod support;

use serde_json::{Value, json};
use support::{Env, text};
use uuid::Uuid;

const NS: &str = "e6efba72-f0d7-4be9-bfce-399356e044f7";

fn id(kind: &str, legacy: i64) -> String {
    Uuid::new_v5(
        &Uuid::parse_str(NS).unwrap(),
        format!("s9:{kind}:{legacy}").as_bytes(),
    )
    .to_string()
}

const ROWS: &str = r#"
INSERT INTO msg_anag (first_id, kind, name, vat_number, fiscal_code, address, city, province, zip, country,
                      email, phone, notes, enabled, created_at, updated_at) VALUES
 (1, 2, '  Rossi   &  Figli  SRL ', ' it 0123 4567 897 ', 'rssmra80a01h501u', ' Via Roma  1 ', 'Roma', 'rm', '00100', NULL,
     ' Info@Rossi.IT ', ' 06 123 ', 'note', true, '2024-03-31 02:30:00', '2024-10-27 02:30:00.123456'),
 (2, 3, 'Mario Bianchi', NULL, NULL, NULL, 'Milano', NULL, NULL, 'it', 'not-an-email', NULL, NULL, true, NULL, '2024-07-01 12:00:00'),
 (3, 2, 'Müller GmbH', 'DE123456789', NULL, 'Hauptstraße 5', 'Berlin', NULL, '10115', 'DE', NULL, NULL, NULL, true,
     '2023-01-15 10:00:00', NULL),
 (4, 2, '   ', 'IT01234567897', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '2024-01-01 00:00:00', NULL),
 (5, 2, 'Senza Partita Iva', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '2024-01-01 00:00:00', NULL),
 (6, 2, 'Check Sbagliato', 'IT01234567890', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '2024-01-01 00:00:00', NULL),
 (7, 3, 'Privato Con Iva Strana', 'N/A', NULL, NULL, NULL, NULL, NULL, NULL, 'ok@example.com', NULL, NULL, true,
     '2024-01-01 00:00:00', NULL),
 (8, 2, 'Disabilitato', 'IT01234567897', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, '2024-01-01 00:00:00', NULL),
 (9, 1, 'Un Produttore', 'IT01234567897', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '2024-01-01 00:00:00', NULL),
 (10, 4, 'Interno', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '2024-01-01 00:00:00', NULL),
 (11, 2, NULL, '00743110157', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, '2024-01-01 00:00:00', NULL);
"#;

fn expected() -> Vec<Value> {
    let b = |n: i64| id("buyer", n);
    vec![
        json!({"PK": format!("BUYER#{}", b(1)), "SK": "METADATA", "buyerId": b(1), "legacyId": 1, "buyerType": "company",
               "companyName": "Rossi & Figli SRL", "vatNumber": "IT01234567897", "fiscalCode": "RSSMRA80A01H501U",
               "address": {"street": "Via Roma 1", "city": "Roma", "province": "RM", "zip": "00100", "country": "IT"},
               "email": "info@rossi.it", "phone": "06 123", "status": "active",
               "createdAt": "2024-03-31T01:30:00.000Z", "updatedAt": "2024-10-27T01:30:00.123Z", "createdBy": "migration@system"}),
        json!({"PK": format!("BUYER#{}", b(2)), "SK": "METADATA", "buyerId": b(2), "legacyId": 2, "buyerType": "individual",
               "companyName": "Mario Bianchi", "address": {"city": "Milano", "country": "IT"}, "status": "active",
               "createdAt": "2024-07-01T10:00:00.000Z", "updatedAt": "2024-07-01T10:00:00.000Z", "createdBy": "migration@system"}),
        json!({"PK": format!("BUYER#{}", b(3)), "SK": "METADATA", "buyerId": b(3), "legacyId": 3, "buyerType": "company",
               "companyName": "Müller GmbH", "vatNumber": "DE123456789",
               "address": {"street": "Hauptstraße 5", "city": "Berlin", "zip": "10115", "country": "DE"}, "status": "active",
               "createdAt": "2023-01-15T09:00:00.000Z", "updatedAt": "2023-01-15T09:00:00.000Z", "createdBy": "migration@system"}),
        json!({"PK": format!("BUYER#{}", b(7)), "SK": "METADATA", "buyerId": b(7), "legacyId": 7, "buyerType": "individual",
               "companyName": "Privato Con Iva Strana", "email": "ok@example.com", "address": {"country": "IT"}, "status": "active",
               "createdAt": "2023-12-31T23:00:00.000Z", "updatedAt": "2023-12-31T23:00:00.000Z", "createdBy": "migration@system"}),
    ]
}

#[test]
fn full_buyers_migration_puts_exactly_the_right_items() {
    let env = Env::new("buyers");
    env.sql(ROWS);
    env.config(json!({}));
    let out = env.migrate(&["--full", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("summary"), "a summary is printed: {stdout}");

    // The table holds exactly the expected items, attribute by attribute.
    let table = env.scan("buyers");
    let want = expected();
    assert_eq!(
        table.len(),
        want.len(),
        "items in table: {:?}",
        table.keys()
    );
    for w in &want {
        let pk = w["PK"].as_str().unwrap();
        let got = table.get(pk).unwrap_or_else(|| panic!("missing {pk}"));
        assert_eq!(&Value::Object(got.clone()), w, "item {pk}");
    }

    // The quarantine holds exactly the rejected legacy ids with their reasons.
    let mut rejected: Vec<(i64, Vec<String>)> = env
        .jsonl("reports/rejected/buyers.jsonl")
        .iter()
        .map(|r| {
            (
                r["legacyId"].as_i64().unwrap(),
                r["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    rejected.sort();
    assert_eq!(
        rejected,
        vec![
            (4, vec!["missing_name".to_string()]),
            (5, vec!["invalid_vat".to_string()]),
            (6, vec!["invalid_vat".to_string()]),
            (11, vec!["missing_name".to_string()]),
        ]
    );
    // Warnings are kept apart, and the records stay.
    let warnings = env.jsonl("reports/warnings/buyers.jsonl");
    let mut warned: Vec<(i64, String)> = warnings
        .iter()
        .flat_map(|w| {
            let id = w["legacyId"].as_i64().unwrap();
            w["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |x| (id, x["code"].as_str().unwrap().to_string()))
        })
        .collect();
    warned.sort();
    // Buyer 1 shares its VAT with buyer 4, a party of the same entity (rejected
    // for its name, but still a buyer): both carry duplicate_vat.
    assert_eq!(
        warned,
        vec![
            (1, "duplicate_vat".to_string()),
            (2, "invalid_email".to_string()),
            (7, "invalid_vat".to_string())
        ]
    );

    let report = env.report("reports/validation_report.json");
    let b = &report["entities"]["buyers"];
    assert_eq!(b["input"], 8);
    assert_eq!(b["valid"], 4);
    assert_eq!(b["rejected"], 4);
    assert_eq!(
        b["rejectsByReason"],
        json!({"invalid_vat": 2, "missing_name": 2})
    );
    assert_eq!(
        b["warningsByReason"],
        json!({"duplicate_vat": 2, "invalid_email": 1, "invalid_vat": 1})
    );
    let verify = env.report("reports/verification_report.json");
    assert_eq!(verify["entities"]["buyers"]["ok"], true, "{verify}");
    assert_eq!(verify["entities"]["buyers"]["countByScan"], 4);

    // status shows every phase done.
    let status = env.migrate(&["status"]);
    let s = String::from_utf8_lossy(&status.stdout);
    for phase in ["extract", "transform", "validate", "load", "verify"] {
        assert!(
            s.lines()
                .any(|l| l.starts_with("buyers") && l.contains(phase) && l.contains("done")),
            "{s}"
        );
    }

    // Artifacts and reports are readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    for f in support::files_under(&env.data_dir()) {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
    // The password never reaches the log.
    let log = std::fs::read_to_string(env.data_dir().join("reports/migration.log")).unwrap();
    assert!(log.contains("\"run_id\""), "JSON log lines with the run id");
}

#[test]
fn truncated_or_edited_artifact_is_refused_before_use() {
    let env = Env::new("trunc");
    env.sql(ROWS);
    env.config(json!({}));
    let out = env.migrate(&["--phase", "extract", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let path = env.data_dir().join("extracted/buyers.jsonl");
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 10]).unwrap();
    let out = env.migrate(&["--phase", "transform", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("extracted/buyers.jsonl") && err.contains("truncated"),
        "{err}"
    );
    assert!(
        !env.data_dir().join("transformed/buyers.jsonl").exists(),
        "nothing half-written"
    );

    // An edit of the same length is caught by the checksum.
    let mut edited = full.clone();
    let pos = edited.iter().position(|b| *b == b'R').unwrap();
    edited[pos] = b'X';
    std::fs::write(&path, &edited).unwrap();
    let out = env.migrate(&["--phase", "transform", "--entity", "buyers", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SHA-256"),
        "{}",
        text(&out)
    );
}

#[test]
fn dependency_order_is_enforced() {
    let env = Env::new("deps");
    env.sql(ROWS);
    env.config(json!({}));
    assert!(
        env.migrate(&["--phase", "extract", "--quiet"])
            .status
            .success()
    );
    assert!(
        env.migrate(&["--phase", "transform", "--quiet"])
            .status
            .success()
    );
    let out = env.migrate(&["--phase", "validate", "--entity", "sales", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs buyers validate first")
            && err.contains("--phase validate --entity buyers"),
        "{err}"
    );
}

#[test]
fn validate_after_load_false_skips_verify_in_a_full_run() {
    let env = Env::new("noverify");
    env.sql(ROWS);
    env.config(json!({"migration": {"validateAfterLoad": false}}));
    let out = env.migrate(&["--full", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.scan("buyers").len(), 4);
    assert!(
        !env.data_dir()
            .join("reports/verification_report.json")
            .exists()
    );
    // Asked for explicitly, verify still runs.
    let out = env.migrate(&["--phase", "verify", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        env.data_dir()
            .join("reports/verification_report.json")
            .exists()
    );
}
