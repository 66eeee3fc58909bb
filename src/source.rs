//! The PostgreSQL side: connecting (plain, TLS `require`, TLS `verify-full`),
//! one read-only repeatable-read snapshot for all extracts of a command, and
//! streaming rows out as JSON lines with `COPY … TO STDOUT`.
//!
//! Two ways to get the JSON lines (docs/extract.md): `COPY … (FORMAT
//! binary)` decoded here ([`binary`], the default), or PostgreSQL rendering
//! each row with `row_to_json`. Both write the same bytes: numerics keep
//! their exact text and timestamps their wall-clock form. The rows reach the
//! artifact chunk by chunk: nothing holds a whole table.

pub mod binary;
mod pgtext;

use std::sync::Arc;

use futures_util::{StreamExt, pin_mut};
use tokio_postgres::{Client, NoTls};

use crate::config::{SourceConfig, SslMode};
use crate::error::{Error, Result};
use binary::{CopyDecoder, RowPlan};

/// An open connection with its snapshot transaction begun.
pub struct Snapshot {
    client: Client,
    /// `pg_current_snapshot()` as text, recorded in the checkpoint.
    pub id: String,
    /// The name other connections import it by (`pg_export_snapshot()`),
    /// when the server could export it.
    exported: Option<String>,
}

/// Connects to the source, or says in one line why it could not.
pub async fn connect(cfg: &SourceConfig) -> Result<Client> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.username)
        .dbname(&cfg.database)
        .application_name("migrate")
        .connect_timeout(cfg.connect_timeout);
    if !cfg.password.expose().is_empty() {
        pg.password(cfg.password.expose());
    }
    let target = format!(
        "{}@{}:{}/{}",
        cfg.username, cfg.host, cfg.port, cfg.database
    );
    let fail = |e: tokio_postgres::Error| {
        Error::Source(format!("cannot connect to {target}: {}", describe(&e)))
    };
    let client = match cfg.ssl {
        SslMode::Disable => {
            let (client, conn) = pg.connect(NoTls).await.map_err(fail)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::error!("PostgreSQL connection lost: {}", describe(&e));
                }
            });
            client
        }
        mode => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(mode, cfg)?);
            let (client, conn) = pg.connect(tls).await.map_err(fail)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::error!("PostgreSQL connection lost: {}", describe(&e));
                }
            });
            client
        }
    };
    Ok(client)
}

/// One line for a tokio-postgres error: the server's message for database
/// errors, the innermost cause for I/O errors.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

fn tls_config(mode: SslMode, cfg: &SourceConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Source(format!("TLS setup: {e}")))?;
    let config = if mode == SslMode::Require {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = &cfg.ssl_root_cert {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::Source(format!("sslRootCert {}: {e}", path.display())))?
            {
                let cert = cert
                    .map_err(|e| Error::Source(format!("sslRootCert {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Source(format!("sslRootCert {}: {e}", path.display())))?;
            }
        } else {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// libpq's `require`: encrypt, but do not check who answers.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Snapshot {
    /// Opens the read-only, repeatable-read transaction all extracts share,
    /// exported so that more connections can read the very same snapshot.
    pub async fn begin(client: Client) -> Result<Snapshot> {
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        let start = |e: tokio_postgres::Error| {
            Error::Source(format!("cannot start the snapshot: {}", describe(&e)))
        };
        client.batch_execute(begin).await.map_err(start)?;
        // Must be the first statement; a server that refuses it (e.g. a
        // standby of an old version) gets a fresh transaction, one connection.
        let exported = match client.query_one("SELECT pg_export_snapshot()", &[]).await {
            Ok(row) => Some(row.get::<_, String>(0)),
            Err(e) => {
                tracing::warn!(
                    "cannot export the snapshot ({}); extracting over one connection",
                    describe(&e)
                );
                client.batch_execute("ROLLBACK").await.map_err(start)?;
                client.batch_execute(begin).await.map_err(start)?;
                None
            }
        };
        let row = client
            .query_one("SELECT pg_current_snapshot()::text", &[])
            .await
            .map_err(|e| Error::Source(format!("cannot read the snapshot: {}", describe(&e))))?;
        Ok(Snapshot {
            id: row.get(0),
            client,
            exported,
        })
    }

    /// Another connection reading this snapshot (`SET TRANSACTION
    /// SNAPSHOT`); `None` when it was not exported.
    pub async fn join(&self, cfg: &SourceConfig) -> Result<Option<Snapshot>> {
        let Some(name) = &self.exported else {
            return Ok(None);
        };
        let client = connect(cfg).await?;
        // The name comes from the server: hex digits and dashes only.
        let name = name.replace('\'', "");
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{name}'"
            ))
            .await
            .map_err(|e| Error::Source(format!("cannot join the snapshot: {}", describe(&e))))?;
        Ok(Some(Snapshot {
            client,
            id: self.id.clone(),
            exported: None,
        }))
    }

    /// The smallest and largest value of the integer `column` among the
    /// rows of `query`, `None` when it has no rows.
    pub async fn bounds(&self, query: &str, column: &str) -> Result<Option<(i64, i64)>> {
        let sql =
            format!("SELECT min(t.\"{column}\")::int8, max(t.\"{column}\")::int8 FROM ({query}) t");
        let row = self
            .client
            .query_one(&sql, &[])
            .await
            .map_err(|e| Error::Source(format!("{}: {}", first_line(&sql), describe(&e))))?;
        Ok(
            match (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)) {
                (Some(lo), Some(hi)) => Some((lo, hi)),
                _ => None,
            },
        )
    }

    /// The rows of `sql` in the snapshot, every value as text.
    pub async fn text_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        text_rows(&self.client, sql).await
    }

    /// The planner's estimate of the rows `query` will return, for the
    /// progress bar: a `count(*)` would read the whole table once more.
    pub async fn estimate(&self, query: &str) -> Result<u64> {
        let sql = format!("EXPLAIN (FORMAT JSON) {query}");
        let messages = self
            .client
            .simple_query(&sql)
            .await
            .map_err(|e| Error::Source(format!("{}: {}", first_line(query), describe(&e))))?;
        let text = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        let plan: serde_json::Value = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok(plan[0]["Plan"]["Plan Rows"]
            .as_f64()
            .unwrap_or(0.0)
            .max(0.0) as u64)
    }

    /// Streams the rows of `query` as JSON lines: `on_chunk` gets bytes that
    /// end on a line boundary (one or more whole rows, newline-terminated).
    pub async fn copy_json<F>(&self, query: &str, mut on_chunk: F) -> Result<()>
    where
        F: FnMut(&[u8]) -> Result<()>,
    {
        // CSV with quote and delimiter set to control bytes that JSON text
        // never holds raw: PostgreSQL then emits each JSON document verbatim.
        let sql = format!(
            "COPY (SELECT row_to_json(t) FROM ({query}) t) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        );
        let stream = self
            .client
            .copy_out(&sql)
            .await
            .map_err(|e| Error::Source(format!("{}: {}", first_line(query), describe(&e))))?;
        pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| Error::Source(format!("reading rows: {}", describe(&e))))?;
            on_chunk(&chunk)?;
        }
        Ok(())
    }

    /// How the binary path would render the rows of `query`, from the
    /// query's own description (its columns' names and types);
    /// `Err(Unsupported)` names a column no binary decoder handles.
    pub async fn row_plan(
        &self,
        query: &str,
    ) -> Result<std::result::Result<RowPlan, binary::Unsupported>> {
        let statement = self
            .client
            .prepare(query)
            .await
            .map_err(|e| Error::Source(format!("{}: {}", first_line(query), describe(&e))))?;
        Ok(RowPlan::new(
            statement.columns().iter().map(|c| (c.name(), c.type_())),
        ))
    }

    /// Streams the rows of `query` with `COPY … (FORMAT binary)`, each
    /// rendered by `plan` as the JSON line `row_to_json` would write, to
    /// `on_line` (without its newline); `after_chunk` gets the number of
    /// rows of every chunk received (progress, cancellation).
    pub async fn copy_binary<F, G>(
        &self,
        query: &str,
        plan: &RowPlan,
        mut on_line: F,
        mut after_chunk: G,
    ) -> Result<u64>
    where
        F: FnMut(&[u8]) -> Result<()>,
        G: FnMut(u64) -> Result<()>,
    {
        let sql = format!("COPY ({query}) TO STDOUT (FORMAT binary)");
        let stream = self
            .client
            .copy_out(&sql)
            .await
            .map_err(|e| Error::Source(format!("{}: {}", first_line(query), describe(&e))))?;
        pin_mut!(stream);
        let mut decoder = CopyDecoder::new(plan);
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| Error::Source(format!("reading rows: {}", describe(&e))))?;
            // errors of on_line (I/O, interruption) pass through unchanged
            let rows = decoder.feed(&chunk, &mut on_line)?;
            after_chunk(rows)?;
        }
        decoder.finish()
    }

    /// Ends the read-only transaction.
    pub async fn finish(self) -> Result<()> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| Error::Source(describe(&e)))
    }
}

/// The rows of `sql`, every value as text (PostgreSQL's own rendering:
/// numerics keep their exact decimal text).
pub async fn text_rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| Error::Source(format!("{}: {}", first_line(sql), describe(&e))))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

fn first_line(query: &str) -> String {
    query.chars().take(80).collect()
}
