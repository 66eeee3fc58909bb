//! Unit tests of the configuration: good files, every kind of bad input
//! and where it is reported.

use std::path::Path;

use crate::error::Result;

use super::load::*;
use super::*;

const GOOD: &str = r#"{
  "source": { "type": "postgresql", "host": "localhost", "port": 5432,
              "database": "s9", "username": "migration_user",
              "password": "${DB_PASSWORD}", "ssl": false, "schema": "public" },
  "target": { "region": "us-east-1", "endpoint": "http://localhost:4566",
              "buyersTable": "BuyersTable-dev", "producersTable": "ProducersTable-dev",
              "salesTable": "SalesTable-dev" },
  "migration": { "batchSize": 25, "concurrency": 8, "maxRetries": 8,
                 "retryDelay": 0.05, "exponentialBackoff": true,
                 "continueOnError": false, "backupBeforeLoad": true,
                 "validateAfterLoad": true, "batchDelay": 0, "dryRun": false }
}"#;

fn env(name: &str) -> Option<String> {
    (name == "DB_PASSWORD").then(|| "s3cret".to_string())
}

fn load(text: &str) -> Result<Config> {
    Config::from_str(Path::new("config.json"), text, &env)
}

#[test]
fn example_loads() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.source.password.expose(), "s3cret");
    assert_eq!(c.target.tables["buyers"], "BuyersTable-dev");
    assert_eq!(c.migration.batch_size, 25);
    assert_eq!(c.source.ssl, SslMode::Disable);
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn extract_format_defaults_to_binary() {
    assert_eq!(
        load(GOOD).unwrap().migration.extract_format,
        ExtractFormat::Binary
    );
    let json = GOOD.replace(
        "\"batchSize\": 25",
        "\"batchSize\": 25, \"extractFormat\": \"json\"",
    );
    assert_eq!(
        load(&json).unwrap().migration.extract_format,
        ExtractFormat::Json
    );
    let err = load(&json.replace("\"json\"", "\"csv\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/migration/extractFormat"), "{err}");
}

#[test]
fn batch_size_over_25_is_refused_with_path() {
    let err = load(&GOOD.replace("\"batchSize\": 25", "\"batchSize\": 26")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/migration/batchSize: 26 is greater than the maximum of 25"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn unset_variable_is_named() {
    let err = Config::from_str(Path::new("c.json"), GOOD, &|_| None).unwrap_err();
    assert!(
        err.to_string()
            .contains("/source/password: environment variable DB_PASSWORD is not set")
    );
}

#[test]
fn malformed_json_gives_line_and_column() {
    let err = load("{\n  \"source\": ,\n}").unwrap_err();
    assert!(err.to_string().contains("line 2, column"), "{err}");
}

#[test]
fn every_violation_is_reported() {
    let text = GOOD
        .replace("\"port\": 5432", "\"port\": \"x\"")
        .replace("\"concurrency\": 8", "\"concurrency\": 0");
    let msg = load(&text).unwrap_err().to_string();
    assert!(msg.contains("/source/port"), "{msg}");
    assert!(msg.contains("/migration/concurrency"), "{msg}");
}

#[test]
fn password_value_is_never_echoed() {
    let text = GOOD.replace("\"${DB_PASSWORD}\"", "12345");
    let msg = load(&text).unwrap_err().to_string();
    assert!(msg.contains("/source/password"), "{msg}");
    assert!(!msg.contains("12345"), "{msg}");
    // The artifact key likewise, and a good one is held as a secret.
    let with_key = |v: &str| {
        GOOD.replacen(
            "\"migration\": {",
            &format!("\"migration\": {{ \"artifactKey\": {v},"),
            1,
        )
    };
    let msg = load(&with_key("987654321")).unwrap_err().to_string();
    assert!(msg.contains("/migration/artifactKey"), "{msg}");
    assert!(!msg.contains("987654321"), "{msg}");
    let c = load(&with_key("\"k-1\"")).unwrap();
    assert_eq!(
        c.migration.artifact_key.as_ref().map(|k| k.expose()),
        Some("k-1")
    );
    assert!(!format!("{c:?}").contains("k-1"));
}

#[test]
fn billing_defaults_to_on_demand_and_takes_provisioned_units() {
    assert_eq!(load(GOOD).unwrap().target.billing, Billing::PayPerRequest);
    let prov = GOOD.replace(
        "\"region\": \"us-east-1\",",
        "\"region\": \"us-east-1\", \"billingMode\": \"PROVISIONED\", \"readCapacityUnits\": 5, \"writeCapacityUnits\": 40000,",
    );
    assert_eq!(
        load(&prov).unwrap().target.billing,
        Billing::Provisioned {
            read: 5,
            write: 40_000
        }
    );
}

#[test]
fn billing_beyond_limits_or_inconsistent_is_refused() {
    let with = |extra: &str| {
        let text = GOOD.replace(
            "\"region\": \"us-east-1\",",
            &format!("\"region\": \"us-east-1\", {extra}"),
        );
        let err = load(&text).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        err.to_string()
    };
    let msg = with(
        r#""billingMode": "PROVISIONED", "readCapacityUnits": 5, "writeCapacityUnits": 40001,"#,
    );
    assert!(msg.contains("/target/writeCapacityUnits"), "{msg}");
    let msg =
        with(r#""billingMode": "PROVISIONED", "readCapacityUnits": 0, "writeCapacityUnits": 5,"#);
    assert!(msg.contains("/target/readCapacityUnits"), "{msg}");
    let msg = with(r#""billingMode": "PROVISIONED", "readCapacityUnits": 5,"#);
    assert!(
        msg.contains("/target/writeCapacityUnits: required"),
        "{msg}"
    );
    let msg = with(r#""writeCapacityUnits": 5,"#);
    assert!(msg.contains("only with"), "{msg}");
    let msg = with(r#""billingMode": "ON_DEMAND","#);
    assert!(msg.contains("/target/billingMode"), "{msg}");
}

#[test]
fn expansion_rules() {
    let e = |s: &str| expand_str(s, "/x", &env);
    assert_eq!(e("a${DB_PASSWORD}b").unwrap(), "as3cretb");
    assert_eq!(e("$${DB_PASSWORD}").unwrap(), "${DB_PASSWORD}");
    assert_eq!(e("cost $5").unwrap(), "cost $5");
    assert!(e("${NOPE}").unwrap_err().contains("NOPE"));
    assert!(e("${OPEN").is_err());
}
