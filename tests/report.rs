//! The HTML report, `status --json` and the metrics, after full runs on the
//! generated sample database: the page is owner-only, holds none of the
//! source's names, e-mails or VAT numbers, shows the JSON reports' numbers,
//! is regenerated identically by `migrate report`, and renders in a real
//! browser (headless Chromium, when installed). CloudWatch (the moto server)
//! and the Prometheus text file carry the reports' counts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{Env, text};

const ENTITIES: [&str; 3] = ["buyers", "producers", "sales"];

fn thousands(n: u64) -> String {
    migrate::progress::thousands(n)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// A full run on generated data; the page's text.
fn full_run(env: &Env, args: &[&str]) -> String {
    let out = env.migrate(&[&["--full", "--quiet"], args].concat());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("report.html"),
        "the summary points at the page: {stdout}"
    );
    std::fs::read_to_string(report_path(env)).unwrap()
}

fn report_path(env: &Env) -> PathBuf {
    env.data_dir().join("reports/report.html")
}

#[test]
fn full_run_writes_a_private_self_contained_report_with_the_reports_numbers() {
    let env = Env::new("report");
    env.generate(200, 80, 1200, 11);
    env.config(json!({}));
    let page = full_run(&env, &[]);
    let path = report_path(&env);

    // Owner-only, self-contained, no script.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "report.html mode {mode:o}");
    for banned in ["<script", "<link", "src=", "url(", "@import", "https://"] {
        assert!(!page.contains(banned), "the page has {banned:?}");
    }
    assert_eq!(
        page.matches("http://").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
            + page.matches(&env.endpoint).count(),
        "nothing but the SVG namespace and the configured endpoint is a URL"
    );
    assert!(page.contains("Migrated and verified"), "verdict at the top");
    assert!(page.contains("source.password</th><td><code>***</code>"));

    // No personal data from the source: names, e-mails, VAT numbers.
    let mut personal = BTreeSet::new();
    for line in env
        .sql("SELECT concat_ws(E'\\x1f', name, email, vat_number) FROM msg_anag")
        .lines()
    {
        for v in line.split('\u{1f}') {
            let v = v.trim();
            if v.chars().count() >= 6 {
                personal.insert(v.to_string());
                personal.insert(v.to_lowercase());
                personal.insert(migrate::report::html::escape(v));
            }
        }
    }
    assert!(
        personal.len() > 300,
        "the source has personal data to look for"
    );
    let leaked: Vec<&String> = personal
        .iter()
        .filter(|v| page.contains(v.as_str()))
        .collect();
    assert!(leaked.is_empty(), "personal data in the page: {leaked:?}");

    // The numbers are the JSON reports'.
    let validation = env.report("reports/validation_report.json");
    let load = env.report("reports/load_report.json");
    let verification = env.report("reports/verification_report.json");
    let mut rejects_seen = 0;
    for e in ENTITIES {
        let v = &validation["entities"][e];
        for (kind, key) in [
            ("rejected", "rejectsByReason"),
            ("warning", "warningsByReason"),
        ] {
            for (code, n) in v[key].as_object().unwrap() {
                let row = format!(
                    "<tr><td><code>{code}</code></td><td>{kind}</td><td class=\"n\">{}</td>",
                    thousands(u(n))
                );
                assert!(page.contains(&row), "{e}: no row {row}");
                rejects_seen += 1;
            }
        }
        let l = &load["entities"][e];
        assert!(
            page.contains(&format!(
                "{} written, {} failed, {} requests",
                thousands(u(&l["written"])),
                thousands(u(&l["failed"])),
                thousands(u(&l["requests"]))
            )),
            "{e}: load numbers"
        );
        // The time series covers every item written by this (fresh) load.
        let points = l["series"]["points"].as_array().expect("a time series");
        assert!(!points.is_empty() && points.len() <= 600);
        let sampled: u64 = points.iter().map(|p| u(&p["items"])).sum();
        assert_eq!(sampled, u(&l["written"]) + u(&l["failed"]), "{e}: series");
        let r = &verification["entities"][e];
        let cells: String = [
            "expected",
            "found",
            "matched",
            "missing",
            "different",
            "extra",
            "orphanReferences",
            "countByScan",
        ]
        .iter()
        .map(|k| format!("<td class=\"n\">{}</td>", thousands(u(&r[k]))))
        .collect();
        assert!(page.contains(&cells), "{e}: verification row {cells}");
    }
    assert!(rejects_seen > 3, "the sample data has rejects and warnings");
    assert!(page.contains("<title>sales: records at each step</title>"));
    // The load over time: a line, or a single point when the load took
    // less than the one-second sampling interval.
    assert!(
        page.contains("<title>sales: items written per second</title>")
            && (page.contains("<polyline") || page.contains("<circle cx=")),
        "the load's line chart"
    );

    // Every artifact and report file is linked, relatively.
    for link in [
        "../extracted/sales.jsonl",
        "../validated/buyers.jsonl",
        "validation_report.json",
        "rejected/sales.jsonl",
        "migration.log",
    ] {
        assert!(
            page.contains(&format!("<a href=\"{link}\">")),
            "link {link}"
        );
    }

    // `migrate report` writes the same page again.
    std::fs::remove_file(&path).unwrap();
    let out = env.migrate(&["report"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), page);

    // `status --json`: the checkpoint per entity and phase.
    let out = env.migrate(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(status["version"], 1);
    assert_eq!(status["finished"], true);
    assert_eq!(status["resumable"], false);
    assert_eq!(status["runId"], load["runId"]);
    for e in ENTITIES {
        let s = &status["entities"][e];
        for p in ["extract", "transform", "validate", "load", "verify"] {
            assert_eq!(s[p]["state"], "done", "{e} {p}");
            assert_eq!(s[p]["thisRun"], true);
        }
        assert_eq!(s["load"]["written"], load["entities"][e]["written"]);
        assert_eq!(
            s["validate"]["rejected"],
            validation["entities"][e]["rejected"]
        );
    }
}

#[test]
fn an_unreadable_json_report_stops_migrate_report() {
    let env = Env::new("reportbad");
    env.generate(30, 10, 60, 3);
    env.config(json!({}));
    full_run(&env, &[]);
    let p = env.data_dir().join("reports/verification_report.json");
    std::fs::write(&p, "{\"runId\": ").unwrap();
    let out = env.migrate(&["report"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verification_report.json"),
        "{}",
        text(&out)
    );
}

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

/// The `(width, height)` attributes of every `<svg` element of `dom`.
fn svg_sizes(dom: &str) -> Vec<(f64, f64)> {
    let attr = |tag: &str, name: &str| -> f64 {
        let key = format!(" {name}=\"");
        let start = tag.find(&key).map(|i| i + key.len()).unwrap_or(0);
        tag[start..]
            .split('"')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    dom.split("<svg")
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find('>').unwrap()];
            (attr(tag, "width"), attr(tag, "height"))
        })
        .collect()
}

#[test]
fn the_report_renders_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED the_report_renders_in_headless_chromium: {CHROMIUM} is not installed \
             (scripts/services.sh --browser installs it)"
        );
        return;
    }
    let env = Env::new("reportbrowser");
    env.generate(60, 30, 300, 5);
    env.config(json!({}));
    full_run(&env, &[]);
    let page = report_path(&env);
    let url = format!("file://{}", page.display());
    let shots = env.data_dir().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let shot = shots.join("report.png");
    let out = chromium(
        &env.dir.join("chromium-1"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
            &url,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert_eq!(&png[1..4], b"PNG");

    // The same window on an empty page: the report's screenshot is not blank.
    let blank = shots.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_shot = shots.join("blank.png");
    let out = chromium(
        &env.dir.join("chromium-2"),
        &[
            &format!("--screenshot={}", blank_shot.display()),
            "--window-size=1200,2400",
            &format!("file://{}", blank.display()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let blank_len = std::fs::metadata(&blank_shot).unwrap().len() as usize;
    assert!(
        png.len() > 5 * blank_len,
        "the report's screenshot ({} bytes) looks blank (an empty page's: {blank_len})",
        png.len()
    );

    // The DOM the browser built: every chart has a size.
    let out = chromium(&env.dir.join("chromium-3"), &["--dump-dom", &url]);
    assert!(out.status.success(), "{}", text(&out));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("Migrated and verified"), "{dom}");
    let sizes = svg_sizes(&dom);
    assert!(
        sizes.len() >= 3 + 3 * 2,
        "funnels and load charts: {sizes:?}"
    );
    assert!(sizes.iter().all(|(w, h)| *w > 0.0 && *h > 0.0), "{sizes:?}");
    eprintln!("screenshot kept at {}", shot.display());
}

/// Parses a Prometheus text-format file: every line a comment (`# HELP`,
/// `# TYPE`) or a sample `name{labels} value`; the samples by name and labels.
fn parse_prometheus(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "comment {line:?}");
            let name = parts.next().expect("a metric name");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if kind == "TYPE" {
                assert!(["gauge", "counter"].contains(&parts.next().unwrap()));
            }
            continue;
        }
        let open = line.find('{').unwrap_or_else(|| panic!("sample {line:?}"));
        let close = line.rfind('}').unwrap();
        let name = &line[..open];
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let mut labels = BTreeMap::new();
        for pair in line[open + 1..close].split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once("=\"")
                .unwrap_or_else(|| panic!("label {pair:?}"));
            labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        let value: f64 = line[close + 1..]
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("value {line:?}"));
        out.insert((name.to_string(), labels), value);
    }
    out
}

#[test]
fn metrics_reach_cloudwatch_and_the_prometheus_file_with_the_reports_counts() {
    let env = Env::new("reportmetrics");
    env.generate(60, 30, 300, 9);
    let namespace = format!("MigrationTest/{}", env.name);
    let prom = env.dir.join("migrate.prom");
    env.config(json!({"metrics": {"cloudwatch": {"namespace": namespace},
                                  "prometheus": {"textfile": prom}}}));
    full_run(&env, &[]);
    let validation = env.report("reports/validation_report.json");
    let load = env.report("reports/load_report.json");
    let run_id = load["runId"].as_str().unwrap().to_string();
    let expected = |e: &str, phase: &str, metric: &str| -> u64 {
        match (phase, metric) {
            ("load", "RecordsProcessed") => {
                u(&load["entities"][e]["written"]) + u(&load["entities"][e]["failed"])
            }
            ("load", "Errors") => u(&load["entities"][e]["failed"]),
            ("load", "RetryCount") => u(&load["entities"][e]["retries"]),
            ("load", "Throttles") => u(&load["entities"][e]["throttled"]),
            ("validate", "RecordsProcessed") => u(&validation["entities"][e]["input"]),
            ("validate", "Errors") => u(&validation["entities"][e]["rejected"]),
            _ => unreachable!(),
        }
    };

    // Prometheus: every line parses; the values are the reports'.
    let mode = std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let samples = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    let prom_name = |m: &str| match m {
        "RecordsProcessed" => "migrate_records_processed",
        "Errors" => "migrate_errors",
        "RetryCount" => "migrate_retries",
        "Throttles" => "migrate_throttles",
        _ => unreachable!(),
    };
    for e in ENTITIES {
        for (phase, metric) in [
            ("load", "RecordsProcessed"),
            ("load", "Errors"),
            ("load", "RetryCount"),
            ("load", "Throttles"),
            ("validate", "RecordsProcessed"),
            ("validate", "Errors"),
        ] {
            let labels: BTreeMap<String, String> =
                [("entity", e), ("phase", phase), ("run_id", run_id.as_str())]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            let got = samples
                .get(&(prom_name(metric).to_string(), labels))
                .unwrap_or_else(|| panic!("no {metric} for {e} {phase}"));
            assert_eq!(
                *got,
                expected(e, phase, metric) as f64,
                "{e} {phase} {metric}"
            );
        }
    }

    // CloudWatch: the metrics are listed with their dimensions; sums are the counts.
    env.rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&env.endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await;
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
        let listed = cw
            .list_metrics()
            .namespace(&namespace)
            .send()
            .await
            .unwrap();
        let mut names = BTreeSet::new();
        for m in listed.metrics() {
            names.insert(m.metric_name().unwrap().to_string());
            let dims: BTreeSet<&str> = m.dimensions().iter().filter_map(|d| d.name()).collect();
            assert_eq!(dims, BTreeSet::from(["Entity", "Phase", "RunId"]), "{m:?}");
        }
        assert_eq!(
            names,
            [
                "Duration",
                "Errors",
                "RecordsProcessed",
                "RetryCount",
                "Throttles"
            ]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
        );
        let now = std::time::SystemTime::now();
        let hour = std::time::Duration::from_secs(3600);
        for e in ENTITIES {
            for (phase, metric) in [
                ("load", "RecordsProcessed"),
                ("load", "Errors"),
                ("load", "RetryCount"),
                ("validate", "RecordsProcessed"),
                ("validate", "Errors"),
            ] {
                let dim = |k: &str, v: &str| {
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name(k)
                        .value(v)
                        .build()
                };
                let stats = cw
                    .get_metric_statistics()
                    .namespace(&namespace)
                    .metric_name(metric)
                    .dimensions(dim("Entity", e))
                    .dimensions(dim("Phase", phase))
                    .dimensions(dim("RunId", &run_id))
                    .start_time((now - hour).into())
                    .end_time((now + hour).into())
                    .period(7200)
                    .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
                    .send()
                    .await
                    .unwrap();
                let sum: f64 = stats.datapoints().iter().filter_map(|d| d.sum()).sum();
                assert_eq!(
                    sum,
                    expected(e, phase, metric) as f64,
                    "{e} {phase} {metric}"
                );
            }
        }
    });
}
