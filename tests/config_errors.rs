//! Bad configuration and bad usage exit 2, say what and where, and
//! write nothing.

mod support;

use std::process::Command;

use serde_json::json;

fn run(
    dir: &std::path::Path,
    config: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    if let Some(c) = config {
        std::fs::write(dir.join("config.json"), c).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_migrate"));
    cmd.current_dir(dir).args(args).env_remove("DB_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn good() -> serde_json::Value {
    serde_json::from_str(include_str!("../config.example.json")).unwrap()
}

fn case(name: &str, config: Option<String>, args: &[&str], env: &[(&str, &str)], expect: &[&str]) {
    let dir = std::env::temp_dir().join(format!(
        "migrate-cfg-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = run(&dir, config.as_deref(), args, env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{name}: {}",
        support::text(&out)
    );
    for e in expect {
        assert!(err.contains(e), "{name}: expected {e:?} in: {err}");
    }
    assert!(
        !err.contains("s3cr3t"),
        "{name}: the password leaked: {err}"
    );
    let left: Vec<_> = support::files_under(&dir)
        .into_iter()
        .filter(|p| !p.ends_with("config.json"))
        .collect();
    assert!(left.is_empty(), "{name}: wrote {left:?}");
    assert!(!dir.join("data").exists(), "{name}: created data/");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_bad_configuration_exits_2_and_writes_nothing() {
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good();
        f(&mut c);
        Some(serde_json::to_string_pretty(&c).unwrap())
    };
    let pw = [("DB_PASSWORD", "s3cr3t")];
    case(
        "batch",
        with(&|c| c["migration"]["batchSize"] = json!(26)),
        &["--full"],
        &pw,
        &["/migration/batchSize: 26 is greater than the maximum of 25"],
    );
    case(
        "unset-var",
        with(&|_| {}),
        &["--full"],
        &[],
        &["/source/password", "DB_PASSWORD is not set"],
    );
    case(
        "malformed",
        Some("{\n  \"source\": {\n    \"host\": \"x\",,\n  }\n}".into()),
        &["--full"],
        &pw,
        &["line 3, column"],
    );
    case(
        "several",
        with(&|c| {
            c["source"]["port"] = json!("five");
            c["migration"]["concurrency"] = json!(0);
            c["target"]["endpoint"] = json!("localhost:4566");
        }),
        &["--full"],
        &pw,
        &["/source/port", "/migration/concurrency", "/target/endpoint"],
    );
    case(
        "missing-section",
        with(&|c| {
            c.as_object_mut().unwrap().remove("target");
        }),
        &["--full"],
        &pw,
        &["\"target\" is a required property"],
    );
    case(
        "unknown-key",
        with(&|c| c["migration"]["batchSzie"] = json!(10)),
        &["--full"],
        &pw,
        &["/migration", "batchSzie"],
    );
    case(
        "password-type",
        with(&|c| c["source"]["password"] = json!(12345)),
        &["--full"],
        &pw,
        &["/source/password"],
    );
    case(
        "no-file",
        None,
        &["--full", "--config", "nope.json"],
        &pw,
        &["nope.json", "cannot read"],
    );
}

#[test]
fn bad_usage_exits_2_naming_the_valid_values() {
    case(
        "phase",
        None,
        &["--phase", "lod"],
        &[],
        &["lod", "extract", "transform", "validate", "load", "verify"],
    );
    case(
        "entity",
        None,
        &["--full", "--entity", "customers"],
        &[],
        &["customers", "buyers", "producers", "sales"],
    );
    case("nothing", None, &[], &[], &["--full"]);
}
