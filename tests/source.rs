//! Connecting to the source — TLS modes and one clear line for each
//! connection failure, exit 1.

mod support;

use serde_json::json;
use support::{Env, text};

const ROW: &str = "INSERT INTO msg_anag (first_id, kind, name, vat_number, enabled) VALUES (1, 2, 'A', 'IT01234567897', true)";

fn extract(env: &Env) -> std::process::Output {
    env.migrate(&["--phase", "extract", "--entity", "buyers", "--quiet"])
}

fn one_error_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.to_lowercase().contains("error"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line: {}", text(out));
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{}",
        text(out)
    );
    lines[0].to_string()
}

#[test]
fn connection_failures_are_one_clear_line() {
    let env = Env::new("conn");
    env.config(json!({"source": {"port": 1}}));
    let out = extract(&env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_error_line(&out);
    assert!(
        line.contains("cannot connect") && line.contains(":1/") && line.contains("refused"),
        "{line}"
    );

    env.config(json!({"source": {"database": "no_such_database_here"}}));
    let out = extract(&env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_error_line(&out);
    assert!(
        line.contains("no_such_database_here") && line.contains("does not exist"),
        "{line}"
    );

    env.config(json!({"source": {"username": "no_such_role_here"}}));
    let out = extract(&env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_error_line(&out);
    assert!(line.contains("no_such_role_here"), "{line}");
}

#[test]
fn tls_modes() {
    let env = Env::new("tls");
    env.sql(ROW);
    if env.sql("SHOW ssl").trim() != "on" {
        eprintln!("the test server has ssl off: TLS modes not exercised");
        return;
    }
    // require: encrypted, certificate not checked (libpq's meaning).
    env.config(json!({"source": {"ssl": "require"}}));
    let out = extract(&env);
    assert!(out.status.success(), "{}", text(&out));
    let ssl_used = env.sql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'migrate' AND s.ssl");
    let _ = ssl_used; // the connection is gone by now; success over TLS is what require promises

    // verify-full: a certificate that does not match the host is refused, in one line.
    env.config(json!({"source": {"ssl": "verify-full", "host": "127.0.0.1"}}));
    let out = extract(&env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_error_line(&out);
    assert!(line.contains("certificate"), "{line}");

    // verify-full with the server's own certificate as root, by its name.
    let cert_file = env.sql("SHOW ssl_cert_file").trim().to_string();
    if let Ok(pem) = std::fs::read_to_string(&cert_file) {
        let copy = env.dir.join("root.pem");
        std::fs::write(&copy, pem).unwrap();
        env.config(
            json!({"source": {"ssl": "verify-full", "host": "localhost", "sslRootCert": copy}}),
        );
        let out = extract(&env);
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && err.contains("not valid for name") {
            eprintln!(
                "the server certificate is not issued for localhost; verify-full success path not exercised"
            );
        } else {
            assert!(out.status.success(), "{}", text(&out));
        }
    }
}

/// Extract over several connections sharing one exported snapshot writes
/// the very artifacts one connection writes: same bytes, same order.
#[test]
fn parallel_extract_writes_the_same_artifacts() {
    let env = Env::new("pext");
    env.generate(90, 30, 700, 17);
    let mut digests = Vec::new();
    for connections in [1, 3] {
        env.config(json!({"migration": {"extractConnections": connections}}));
        let out = env.migrate(&["--phase", "extract", "--quiet"]);
        assert!(out.status.success(), "{}", text(&out));
        let mut per_entity = Vec::new();
        for e in ["buyers", "producers", "sales"] {
            let manifest = env.report(&format!("extracted/{e}.jsonl.manifest.json"));
            let rows = env.jsonl(&format!("extracted/{e}.jsonl"));
            assert_eq!(manifest["records"].as_u64(), Some(rows.len() as u64), "{e}");
            let ids: Vec<i64> = rows
                .iter()
                .map(|r| r["first_id"].as_i64().unwrap())
                .collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "{e}: rows in first_id order"
            );
            per_entity.push((e, manifest["sha256"].clone(), rows.len()));
        }
        digests.push(per_entity);
        // No spill file is left behind.
        let leftovers: Vec<_> = support::files_under(&env.data_dir().join("extracted"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".part"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    let sales_rows = env.sql("SELECT count(*) FROM msg WHERE enabled");
    assert_eq!(digests[1][2].2.to_string(), sales_rows.trim());
    assert_eq!(
        digests[0], digests[1],
        "one connection and three write the same bytes"
    );
}
