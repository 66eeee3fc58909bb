//! One writer per data directory and what a crash leaves behind
//! (docs/safety.md), with the real binary against real PostgreSQL and a real
//! DynamoDB API: while a load runs, every other writing command exits 2 at
//! once naming the holder, `status` still answers; after `kill -9` the next
//! command runs (no stale lock), removes the temporary files the crash left
//! and makes the directories private again. Paths: `status` and the
//! checkpoint honour `migration.dataDir`, and record absolute paths.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fault_proxy::{FaultProxy, Faults};
use support::{Env, pg_params, text};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn one_writer_per_data_directory_and_no_stale_lock_after_kill_9() {
    let env = Env::new("lock");
    env.generate(100, 30, 1500, 31);
    // Every BatchWriteItem waits at the proxy: the load takes seconds.
    let proxy = FaultProxy::start_blocking(
        &env.endpoint,
        Faults {
            delay_rate: 1.0,
            delay: Duration::from_millis(100),
            ..Faults::default()
        },
    );
    env.config(json!({"target": {"endpoint": proxy.endpoint}, "migration": {"concurrency": 2}}));
    let mut first = env.spawn(&["--full", "--quiet"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let run_id = loop {
        if let Some(cp) = env.checkpoint()
            && cp["entities"]["sales"]["load"]["confirmed"]
                .as_u64()
                .is_some_and(|c| c > 0)
        {
            break cp["runId"].clone();
        }
        assert!(first.try_wait().unwrap().is_none(), "the load ended early");
        assert!(Instant::now() < deadline, "the sales load never started");
        std::thread::sleep(Duration::from_millis(20));
    };

    // Every writing command is refused at once, naming the holder.
    let expected = format!(
        "data directory {} is in use by pid {} (migrate ",
        env.data_dir().display(),
        first.id()
    );
    for args in [
        &["--phase", "load", "--entity", "buyers"][..],
        &["--dry-run"],
        &["--resume"],
        &["--full"],
        &["rollback", "--entity", "buyers", "--yes"],
    ] {
        let t = Instant::now();
        let out = env.migrate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(err.contains(&expected), "{args:?}: {}", text(&out));
        assert!(err.contains("--full --quiet)"), "the command: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "at once: {:?}",
            t.elapsed()
        );
    }
    // Nothing of theirs reached the checkpoint: still the first run's.
    assert_eq!(env.checkpoint().unwrap()["runId"], run_id);
    // Reading is allowed.
    let out = env.migrate(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("not finished"), "{}", text(&out));

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    proxy.set_faults(Faults::none());

    // What a crash leaves: temporary files and a directory made readable.
    let leftovers = [
        env.data_dir().join("checkpoint.json.tmp.4194000"),
        env.data_dir().join("extracted/.sales.jsonl.part1"),
        env.data_dir().join("transformed/sales.jsonl.tmp.4194001"),
    ];
    for p in &leftovers {
        std::fs::write(p, "personal data").unwrap();
    }
    let extracted = env.data_dir().join("extracted");
    std::fs::set_permissions(&extracted, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The kernel released the lock with the process: the next command runs.
    let out = env.migrate(&["--resume", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    for p in &leftovers {
        assert!(!p.exists(), "{} removed", p.display());
    }
    assert_eq!(mode(&extracted), 0o700);
    assert_eq!(mode(&env.data_dir()), 0o700);
    let cp = env.checkpoint().unwrap();
    assert_eq!(cp["runId"], run_id, "the first run, resumed");
    assert_eq!(cp["entities"]["sales"]["load"]["state"], "done");
    let validated = env.jsonl("validated/sales.jsonl").len();
    assert_eq!(env.scan("sales").len(), validated);
}

/// `migrate` run from `cwd` with `args` and no `--data-dir`.
fn migrate_in(env: &Env, cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(support::migrate_bin())
        .current_dir(cwd)
        .arg("--config")
        .arg(env.dir.join("config.json"))
        .args(args)
        .env(
            "MIGRATE_TEST_PGPASSWORD",
            pg_params().get("password").cloned().unwrap_or_default(),
        )
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

#[test]
fn the_configured_data_dir_is_honoured_and_recorded_absolute() {
    let env = Env::new("datadir");
    env.generate(40, 10, 10, 32);
    // A relative dataDir: relative to where the command runs.
    env.config(json!({"migration": {"dataDir": "night-1"}}));
    let data = env.dir.join("night-1");
    let out = migrate_in(&env, &env.dir, &["--full", "--entity", "buyers", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(data.join("checkpoint.json").exists());
    assert!(!env.dir.join("data").exists(), "nothing under ./data");

    // status reads the configured directory, not ./data.
    let out = migrate_in(&env, &env.dir, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("last run"), "{}", text(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("buyers") && l.contains(" load ") && l.contains(" done ")),
        "{}",
        text(&out)
    );

    // Every path the checkpoint and the reports record is absolute.
    let cp: Value =
        serde_json::from_slice(&std::fs::read(data.join("checkpoint.json")).unwrap()).unwrap();
    let backup = cp["entities"]["buyers"]["load"]["backup"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("a backup path: {cp}"));
    assert!(backup.starts_with('/'), "{backup}");
    assert!(std::path::Path::new(backup).exists(), "{backup}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(data.join("reports/load_report.json")).unwrap())
            .unwrap();
    let failed_file = report["entities"]["buyers"]["failedFile"].as_str().unwrap();
    assert!(
        failed_file.starts_with(&data.display().to_string()),
        "{failed_file}"
    );

    // The rollback message names the report where it is.
    let out = migrate_in(&env, &env.dir, &["rollback", "--entity", "buyers", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = data.join("reports/rollback_report.json");
    assert!(
        stdout(&out).contains(&expected.display().to_string()),
        "{}",
        text(&out)
    );
    assert!(expected.exists());
}
