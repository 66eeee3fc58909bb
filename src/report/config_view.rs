//! The configuration as the HTML report shows it: every setting as a
//! `path = value` row, with the password and any credentials shown as `***`.

use crate::config::{Config, SslMode, VerifyMethod};

/// Shown instead of a secret.
pub const HIDDEN: &str = "***";

/// `(JSON path, value)` rows of the configuration, secrets hidden.
pub fn rows(c: &Config) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    let s = &c.source;
    row("source.type", "postgresql".into());
    row("source.host", s.host.clone());
    row("source.port", s.port.to_string());
    row("source.database", s.database.clone());
    row("source.username", s.username.clone());
    row("source.password", HIDDEN.into());
    row(
        "source.ssl",
        match s.ssl {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
        .into(),
    );
    if let Some(p) = &s.ssl_root_cert {
        row("source.sslRootCert", p.display().to_string());
    }
    row("source.schema", s.schema.clone());
    row(
        "source.connectTimeout",
        format!("{}s", s.connect_timeout.as_secs_f64()),
    );
    let t = &c.target;
    row("target.region", t.region.clone());
    if let Some(e) = &t.endpoint {
        row("target.endpoint", without_userinfo(e));
    }
    if let Some(p) = &t.profile {
        row("target.profile", p.clone());
    }
    for (entity, table) in &t.tables {
        row(&format!("target.{entity}Table"), table.clone());
    }
    let m = &c.migration;
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs_f64());
    row("migration.batchSize", m.batch_size.to_string());
    row("migration.concurrency", m.concurrency.to_string());
    row("migration.maxRetries", m.max_retries.to_string());
    row("migration.retryDelay", secs(m.retry_delay));
    row("migration.maxRetryDelay", secs(m.max_retry_delay));
    row(
        "migration.exponentialBackoff",
        m.exponential_backoff.to_string(),
    );
    row("migration.continueOnError", m.continue_on_error.to_string());
    row(
        "migration.backupBeforeLoad",
        m.backup_before_load.to_string(),
    );
    row(
        "migration.validateAfterLoad",
        m.validate_after_load.to_string(),
    );
    row("migration.batchDelay", secs(m.batch_delay));
    row("migration.dryRun", m.dry_run.to_string());
    row("migration.scanSegments", m.scan_segments.to_string());
    row(
        "migration.extractConnections",
        m.extract_connections.to_string(),
    );
    row(
        "migration.verifyMethod",
        match m.verify_method {
            VerifyMethod::Scan => "scan",
            VerifyMethod::BatchGet => "batchGet",
        }
        .into(),
    );
    row("migration.requestTimeout", secs(m.request_timeout));
    row("migration.uuidNamespace", m.uuid_namespace.to_string());
    if m.artifact_key.is_some() {
        row("migration.artifactKey", HIDDEN.into());
    }
    if let Some(cw) = &c.metrics.cloudwatch {
        row("metrics.cloudwatch.namespace", cw.namespace.clone());
    }
    if let Some(p) = &c.metrics.prometheus {
        row(
            "metrics.prometheus.textfile",
            p.textfile.display().to_string(),
        );
    }
    out
}

/// A URL with any `user:password@` replaced by `***@`.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://{HIDDEN}{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden() {
        let text = r#"{"source": {"type": "postgresql", "host": "h", "database": "d",
            "username": "u", "password": "s3cret-pw"},
            "target": {"region": "r", "endpoint": "http://key:secretkey@host:4566/x", "buyersTable": "Buyers"}}"#;
        let c = Config::from_str(std::path::Path::new("c.json"), text, &|_| None).unwrap();
        let all = format!("{:?}", rows(&c));
        assert!(
            !all.contains("s3cret-pw") && !all.contains("secretkey"),
            "{all}"
        );
        assert!(all.contains("http://***@host:4566/x"), "{all}");
        assert!(all.contains("\"source.password\", \"***\""), "{all}");
    }
}
