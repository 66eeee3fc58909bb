//! Test support: each test gets its own PostgreSQL database, its own
//! DynamoDB tables and its own data directory, so tests run in parallel.
//! The `migrate` binary runs as a child process, as a user would run it.
#![allow(dead_code)]

pub mod fault_proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value, json};

/// The PostgreSQL server tests use (`MIGRATE_TEST_PG`, libpq key=value).
pub fn pg_params() -> BTreeMap<String, String> {
    let raw = std::env::var("MIGRATE_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into());
    raw.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The DynamoDB endpoint tests use (`MIGRATE_TEST_DYNAMODB`).
pub fn dynamodb_endpoint() -> String {
    std::env::var("MIGRATE_TEST_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// The binary under test: this build's, or `MIGRATE_TEST_BIN` (how the
/// safety tests are shown to fail on an older build, docs/safety.md).
pub fn migrate_bin() -> std::ffi::OsString {
    std::env::var_os("MIGRATE_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_migrate").into())
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One test's world.
pub struct Env {
    pub name: String,
    pub db: String,
    pub dir: PathBuf,
    pub tables: BTreeMap<String, String>,
    pub endpoint: String,
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
}

impl Env {
    /// A fresh, empty database with the S9 schema, fresh tables (made by
    /// `migrate tables create`, as a user makes them), a fresh data dir.
    pub fn new(tag: &str) -> Env {
        let env = Env::without_tables(tag);
        env.create_tables();
        env
    }

    /// Like [`Env::new`], but the tables are only named (in the config), not
    /// created; they are still deleted at the end if the test creates them.
    pub fn without_tables(tag: &str) -> Env {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let name = format!("{tag}_{suffix}");
        let db = format!("mt_{name}");
        let dir = std::env::temp_dir().join(format!("migrate-test-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let endpoint = dynamodb_endpoint();
        let client = rt.block_on(make_client(&endpoint));
        let tables: BTreeMap<String, String> = ["buyers", "producers", "sales"]
            .iter()
            .map(|e| (e.to_string(), format!("{e}-{name}")))
            .collect();
        let env = Env {
            name,
            db,
            dir,
            tables,
            endpoint,
            rt,
            client,
        };
        env.psql("postgres", &format!("CREATE DATABASE \"{}\"", env.db));
        env.sql(include_str!("s9_schema.sql"));
        env.config(json!({}));
        env
    }

    /// `migrate tables create --quiet` with this env's current config
    /// (written by [`Env::new`]; a test's own `config()` replaces it).
    /// Creates the config's tables with this tree's binary, whatever
    /// `MIGRATE_TEST_BIN` says: the tables are the test's setup, not what
    /// an older build is being tried on.
    pub fn create_tables(&self) {
        let out = self
            .command(
                env!("CARGO_BIN_EXE_migrate").into(),
                &["tables", "create", "--quiet"],
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "migrate tables create: {}",
            text(&out)
        );
    }

    /// Fills the database with the sample generator (replacing it).
    pub fn generate(&self, buyers: u32, producers: u32, sales: u32, seed: u32) {
        let p = pg_params();
        let out = Command::new("bash")
            .arg(project_root().join("scripts/gen_s9.sh"))
            .args(["--db", &self.db, "--quiet", "--no-role"])
            .args([
                "--buyers",
                &buyers.to_string(),
                "--producers",
                &producers.to_string(),
            ])
            .args(["--sales", &sales.to_string(), "--seed", &seed.to_string()])
            .args([
                "--host",
                p.get("host").map(String::as_str).unwrap_or("127.0.0.1"),
            ])
            .args([
                "--port",
                p.get("port").map(String::as_str).unwrap_or("5432"),
            ])
            .args([
                "--user",
                p.get("user").map(String::as_str).unwrap_or("postgres"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gen_s9 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let out = psql_cmd(db)
            .args(["-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-c")
            .arg(sql)
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed: {}\n{sql}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs SQL in the test database; returns psql's unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        self.psql(&self.db, sql)
    }

    /// Writes `config.json` for this env, with `overrides` merged (objects deep).
    pub fn config(&self, overrides: Value) -> PathBuf {
        let p = pg_params();
        let mut target = json!({"region": "us-east-1", "endpoint": self.endpoint});
        for (e, t) in &self.tables {
            target[format!("{e}Table")] = json!(t);
        }
        let mut cfg = json!({
            "source": {"type": "postgresql", "host": p.get("host").cloned().unwrap_or("127.0.0.1".into()),
                       "port": p.get("port").map(|x| x.parse::<u16>().unwrap()).unwrap_or(5432),
                       "database": self.db, "username": p.get("user").cloned().unwrap_or("postgres".into()),
                       "password": "${MIGRATE_TEST_PGPASSWORD}", "ssl": false, "schema": "public"},
            "target": target,
            "migration": {"batchSize": 25, "concurrency": 8, "maxRetries": 8, "retryDelay": 0.02,
                          "exponentialBackoff": true, "continueOnError": false, "backupBeforeLoad": true,
                          "validateAfterLoad": true, "batchDelay": 0, "dryRun": false}
        });
        merge(&mut cfg, overrides);
        let path = self.dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        path
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `migrate` with this env's config and data dir plus `args`.
    pub fn migrate(&self, args: &[&str]) -> Output {
        self.migrate_cmd(args).output().unwrap()
    }

    pub fn migrate_cmd(&self, args: &[&str]) -> Command {
        self.command(migrate_bin(), args)
    }

    /// Starts `migrate` in the background with no terminal and its output
    /// discarded: a run to kill or to race against.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.migrate_cmd(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The data directory's checkpoint, if there is one that parses.
    pub fn checkpoint(&self) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(self.data_dir().join("checkpoint.json")).ok()?).ok()
    }

    fn command(&self, program: std::ffi::OsString, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.dir)
            .arg("--config")
            .arg(self.dir.join("config.json"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env(
                "MIGRATE_TEST_PGPASSWORD",
                pg_params().get("password").cloned().unwrap_or_default(),
            )
            .env_remove("AWS_PROFILE");
        c
    }

    pub fn table(&self, entity: &str) -> &str {
        &self.tables[entity]
    }

    /// Every item of a table as JSON (numbers exact), keyed by PK.
    pub fn scan(&self, entity: &str) -> BTreeMap<String, Map<String, Value>> {
        let table = self.table(entity).to_string();
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let mut start = None;
            loop {
                let page = self
                    .client
                    .scan()
                    .table_name(&table)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .unwrap();
                for item in page.items() {
                    let json = migrate::dynamo::item_from_av(item);
                    out.insert(json["PK"].as_str().unwrap().to_string(), json);
                }
                start = page.last_evaluated_key().cloned();
                if start.is_none() {
                    return out;
                }
            }
        })
    }

    /// Puts a JSON item into an entity's table.
    pub fn put(&self, entity: &str, item: &Map<String, Value>) {
        let table = self.table(entity).to_string();
        self.rt.block_on(async {
            self.client
                .put_item()
                .table_name(table)
                .set_item(Some(migrate::dynamo::item_to_av(item)))
                .send()
                .await
                .unwrap();
        });
    }

    /// Deletes an item by PK (SK `METADATA`).
    pub fn delete(&self, entity: &str, pk: &str) {
        let table = self.table(entity).to_string();
        self.rt.block_on(async {
            self.client
                .delete_item()
                .table_name(table)
                .key("PK", AttributeValue::S(pk.into()))
                .key("SK", AttributeValue::S("METADATA".into()))
                .send()
                .await
                .unwrap();
        });
    }

    /// Reads a JSON Lines file of the data dir.
    pub fn jsonl(&self, rel: &str) -> Vec<Value> {
        let path = self.data_dir().join(rel);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Reads a JSON report of the data dir.
    pub fn report(&self, rel: &str) -> Value {
        let path = self.data_dir().join(rel);
        serde_json::from_slice(
            &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::env::var_os("MIGRATE_TEST_KEEP").is_some() {
            eprintln!(
                "kept: db {}, dir {}, tables {:?}",
                self.db,
                self.dir.display(),
                self.tables
            );
            return;
        }
        for t in self.tables.values() {
            let _ = self
                .rt
                .block_on(self.client.delete_table().table_name(t).send());
        }
        let _ = psql_cmd("postgres")
            .arg("-c")
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.db
            ))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `psql` connected to `db` on the test server (`MIGRATE_TEST_PG`).
fn psql_cmd(db: &str) -> Command {
    let p = pg_params();
    let get = |k: &str, default: &str| p.get(k).cloned().unwrap_or_else(|| default.to_string());
    let mut c = Command::new("psql");
    c.args(["-X", "-q"])
        .args(["-h", &get("host", "127.0.0.1")])
        .args(["-p", &get("port", "5432")])
        .args(["-U", &get("user", "postgres")])
        .args(["-d", db]);
    c
}

pub async fn make_client(endpoint: &str) -> Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    Client::new(&conf)
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// stdout + stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Files under `dir`, recursively (for "nothing was written" checks).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every name, e-mail, VAT number, fiscal code, phone and street of the
/// source long enough not to match by chance, as stored and as mapped.
pub fn personal_values(env: &Env) -> Vec<String> {
    let rows = env.sql(
        "SELECT concat_ws(E'\\x1f', name, email, vat_number, fiscal_code, phone, address) FROM msg_anag",
    );
    let mut values: Vec<String> = rows
        .lines()
        .flat_map(|l| l.split('\u{1f}').map(str::to_string).collect::<Vec<_>>())
        .flat_map(|v| {
            let folded = v.split_whitespace().collect::<Vec<_>>().join(" ");
            let squeezed: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            [
                folded.clone(),
                folded.to_lowercase(),
                squeezed.to_uppercase(),
            ]
        })
        .filter(|v| v.chars().count() >= 8)
        .collect();
    values.sort();
    values.dedup();
    assert!(
        values.len() > 100,
        "the sample has personal values: {}",
        values.len()
    );
    values
}

pub fn holding(files: &[PathBuf], values: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        let content = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        if let Some(v) = values.iter().find(|v| content.contains(v.as_str())) {
            found.push(format!("{} holds {v:?}", f.display()));
        }
    }
    found
}
