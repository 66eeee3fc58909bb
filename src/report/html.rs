//! `data/reports/report.html`: one self-contained page (inline CSS and SVG,
//! no script, nothing fetched) built from the checkpoint and the JSON
//! reports, written owner-only at the end of every run and by `migrate
//! report`. It holds counts, reason codes, legacy ids and item keys, never
//! the records' contents (docs/report.md). Everything is HTML-escaped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::config_view;
use super::files::{self, Kind, Reasons, Reports};
pub use super::svg::escape;
use super::svg::{self, Bar};
use super::verdict::{self, Verdict};
use crate::artifact::write_atomic;
use crate::checkpoint::{Checkpoint, Phase, State, Step};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::{rate, thousands};

/// The page's file name under `data/reports/`.
pub const FILE: &str = "report.html";

/// Builds the page for `data_dir` and writes it atomically, owner-only.
/// `failure` is the error the run ended with, when there is one.
pub fn write(data_dir: &Path, config: Option<&Config>, failure: Option<&str>) -> Result<PathBuf> {
    let page = render(data_dir, config, failure)?;
    let path = data_dir.join("reports").join(FILE);
    crate::artifact::create_private_dir(&data_dir.join("reports"))?;
    write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

/// The page, as text.
pub fn render(data_dir: &Path, config: Option<&Config>, failure: Option<&str>) -> Result<String> {
    let cp = Checkpoint::load(data_dir)?.ok_or_else(|| {
        Error::Checkpoint(format!(
            "no run to report on: {} has no checkpoint",
            data_dir.display()
        ))
    })?;
    let reports_dir = data_dir.join("reports");
    let reports = Reports::read(&reports_dir)?;
    let mut reasons: Vec<(String, Reasons)> = Vec::new();
    for (entity, steps) in &cp.entities {
        let done = |p: Phase| steps.get(&p).is_some_and(|s| s.state == State::Done);
        let mut r = Reasons::new();
        if done(Phase::Transform) {
            let p = reports_dir.join(format!("quarantine/{entity}.jsonl"));
            files::read_reasons(&p, Kind::Quarantined, &mut r)?;
        }
        if done(Phase::Validate) {
            let p = reports_dir.join(format!("rejected/{entity}.jsonl"));
            files::read_reasons(&p, Kind::Rejected, &mut r)?;
            let p = reports_dir.join(format!("warnings/{entity}.jsonl"));
            files::read_reasons(&p, Kind::Warning, &mut r)?;
        }
        if steps.contains_key(&Phase::Load) {
            files::read_failed(&reports_dir.join(format!("failed/{entity}.jsonl")), &mut r)?;
        }
        reasons.push((entity.clone(), r));
    }
    let listed = files::list(data_dir)?;
    let verdict = verdict::decide(&cp, failure);

    let mut h = String::with_capacity(64 * 1024);
    head(&mut h, &cp);
    banner(&mut h, &cp, &verdict);
    funnels(&mut h, &cp);
    reason_section(&mut h, &reasons);
    super::load_view::section(&mut h, &reports);
    phase_section(&mut h, &cp);
    verify_section(&mut h, &reports);
    run_section(&mut h, &cp, config);
    files_section(&mut h, &listed);
    h.push_str("</main></body></html>\n");
    Ok(h)
}

const CSS: &str = "
:root{--ok:#1a7f37;--warn:#b25e00;--bad:#c62828;--info:#2457a6;--mute:#666}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.meta{color:var(--mute);font-size:13px}
.verdict{border-radius:8px;padding:14px 18px;margin:16px 0;color:#fff}
.verdict h2{border:0;margin:0;padding:0;font-size:20px}.verdict p{margin:6px 0 0}
.verdict.ok{background:var(--ok)}.verdict.warn{background:var(--warn)}.verdict.bad{background:var(--bad)}.verdict.info{background:var(--info)}
code{font:13px ui-monospace,Menlo,Consolas,monospace;background:#eef;padding:1px 4px;border-radius:3px}
.verdict code{background:rgba(255,255,255,.2);color:#fff}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0 12px;font-size:13.5px}
th,td{border:1px solid #e2e2e2;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:10px 14px;margin:10px 0}
svg.chart{max-width:100%;height:auto;display:block}
svg .lbl{font:12px system-ui,sans-serif;fill:#333}svg .val{font:12px system-ui,sans-serif;fill:#222}
svg .tick{font:11px system-ui,sans-serif;fill:#666}
.ids{font:12px ui-monospace,Menlo,Consolas,monospace;color:#444}
.state-done{color:var(--ok)}.state-failed,.state-interrupted,.state-running{color:var(--bad);font-weight:600}
@media print{body{background:#fff}main{max-width:none;padding:0}.card,table{break-inside:avoid}
.verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}a{color:#000}}
";

fn head(h: &mut String, cp: &Checkpoint) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Migration report {}</title><style>{CSS}</style></head><body><main>\
         <h1>Migration report</h1><div class=\"meta\">run <code>{}</code> · started {} · \
         entities {} · phases {}</div>",
        escape(&cp.run_id),
        escape(&cp.run_id),
        cp.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        escape(&cp.plan.entities.join(", ")),
        escape(
            &cp.plan
                .phases
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
}

fn banner(h: &mut String, cp: &Checkpoint, v: &Verdict) {
    let _ = write!(
        h,
        "<section class=\"verdict {}\"><h2>{}</h2>",
        v.class(),
        escape(&v.title())
    );
    for line in v.detail() {
        // `commands` in backticks become code.
        let mut parts = escape(&line)
            .split('`')
            .enumerate()
            .map(|(i, p)| {
                if i % 2 == 1 {
                    format!("<code>{p}</code>")
                } else {
                    p.to_string()
                }
            })
            .collect::<String>();
        if parts.is_empty() {
            parts.push(' ');
        }
        let _ = write!(h, "<p>{parts}</p>");
    }
    if !cp.finished {
        let _ = write!(h, "<p>The run is not finished.</p>");
    }
    h.push_str("</section>");
}

fn step<'a>(cp: &'a Checkpoint, entity: &str, p: Phase) -> Option<&'a Step> {
    cp.step(entity, p)
}

fn funnels(h: &mut String, cp: &Checkpoint) {
    h.push_str("<h2>Per entity: from the source to the table</h2>");
    for entity in cp.entities.keys() {
        let get = |p: Phase| step(cp, entity, p);
        let mut bars = Vec::new();
        let mut push = |label: &str, value: Option<u64>, note: String, color: &'static str| {
            if let Some(value) = value {
                bars.push(Bar {
                    label: label.into(),
                    value,
                    note,
                    color,
                });
            }
        };
        let dropped = |n: u64, what: &str| {
            if n > 0 {
                format!("({} {what})", thousands(n))
            } else {
                String::new()
            }
        };
        push(
            "extracted",
            get(Phase::Extract).map(|s| s.records_out),
            String::new(),
            "#5b7db1",
        );
        push(
            "transformed",
            get(Phase::Transform).map(|s| s.records_out),
            get(Phase::Transform)
                .map(|s| dropped(s.rejected, "quarantined"))
                .unwrap_or_default(),
            "#4f8fb8",
        );
        push(
            "valid",
            get(Phase::Validate).map(|s| s.records_out),
            get(Phase::Validate)
                .map(|s| {
                    let mut n = dropped(s.rejected, "rejected");
                    if s.warnings > 0 {
                        let _ = write!(n, " ({} with warnings)", thousands(s.warnings));
                    }
                    n
                })
                .unwrap_or_default(),
            "#3f9f9a",
        );
        push(
            "loaded",
            get(Phase::Load).map(|s| s.written.unwrap_or(s.records_out)),
            get(Phase::Load)
                .map(|s| dropped(s.failed.unwrap_or(0), "failed"))
                .unwrap_or_default(),
            "#3c9a5f",
        );
        push(
            "verified",
            get(Phase::Verify).map(|s| s.records_out),
            get(Phase::Verify)
                .map(|s| dropped(s.rejected, "different, missing, extra or orphan"))
                .unwrap_or_default(),
            "#1a7f37",
        );
        let _ = write!(h, "<div class=\"card\"><h3>{}</h3>", escape(entity));
        h.push_str(&svg::bars(
            &format!("{entity}: records at each step"),
            &bars,
        ));
        h.push_str("</div>");
    }
}

fn reason_section(h: &mut String, all: &[(String, Reasons)]) {
    h.push_str("<h2>Rejects and warnings by reason</h2>");
    if all.iter().all(|(_, r)| r.is_empty()) {
        h.push_str("<p>No record was quarantined, rejected, warned about or failed.</p>");
        return;
    }
    for (entity, reasons) in all.iter().filter(|(_, r)| !r.is_empty()) {
        let bars: Vec<Bar> = reasons
            .iter()
            .map(|((kind, code), r)| Bar {
                label: format!("{code} ({})", kind.as_str()),
                value: r.count,
                note: String::new(),
                color: match kind {
                    Kind::Quarantined => "#7b4fb0",
                    Kind::Rejected => "#c62828",
                    Kind::Warning => "#d68a00",
                    Kind::Failed => "#7a1010",
                },
            })
            .collect();
        let _ = write!(h, "<div class=\"card\"><h3>{}</h3>", escape(entity));
        h.push_str(&svg::bars(&format!("{entity}: records by reason"), &bars));
        h.push_str(
            "<table><tr><th>reason</th><th>kind</th><th>records</th><th>first legacy ids</th></tr>",
        );
        for ((kind, code), r) in reasons {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td class=\"ids\">{}</td></tr>",
                escape(code),
                kind.as_str(),
                thousands(r.count),
                escape(&r.first_ids.join(", "))
            );
        }
        h.push_str("</table></div>");
    }
}

fn phase_section(h: &mut String, cp: &Checkpoint) {
    h.push_str(
        "<h2>Phases</h2><table><tr><th>entity</th><th>phase</th><th>state</th><th>run</th>\
         <th>started (UTC)</th><th>duration</th><th>in</th><th>out</th><th>rejected</th>\
         <th>warnings</th><th>items/s</th></tr>",
    );
    for (entity, steps) in &cp.entities {
        for (phase, s) in steps {
            let state = format!("{:?}", s.state).to_lowercase();
            let (duration, per_sec) = match s.finished_at {
                Some(end) => {
                    let secs = (end - s.started_at).num_milliseconds() as f64 / 1000.0;
                    let r = if secs > 0.0 {
                        rate(s.records_in as f64 / secs)
                    } else {
                        "—".into()
                    };
                    (format!("{secs:.1}s"), r)
                }
                None => ("—".into(), "—".into()),
            };
            let run = if s.run_id == cp.run_id {
                "this run".to_string()
            } else {
                format!("<code>{}</code>", escape(&s.run_id))
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{phase}</td><td class=\"state-{state}\">{state}</td><td>{run}</td><td>{}</td>\
                 <td class=\"n\">{duration}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{per_sec}</td></tr>",
                escape(entity),
                s.started_at.format("%Y-%m-%d %H:%M:%S"),
                thousands(s.records_in),
                thousands(s.records_out),
                thousands(s.rejected),
                thousands(s.warnings),
            );
            if let Some(e) = &s.error {
                let _ = write!(
                    h,
                    "<tr><td></td><td colspan=\"10\">error: {}</td></tr>",
                    escape(e)
                );
            }
        }
    }
    h.push_str("</table>");
}

fn verify_section(h: &mut String, reports: &Reports) {
    let Some(v) = &reports.verification else {
        return;
    };
    h.push_str(
        "<h2>Verification</h2><table><tr><th>entity</th><th>table</th><th>method</th><th>expected</th>\
         <th>found</th><th>matched</th><th>missing</th><th>different</th><th>extra</th>\
         <th>orphan references</th><th>counted by scan</th><th>result</th></tr>",
    );
    for (entity, r) in &v.entities {
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td>",
            escape(entity),
            escape(&r.table),
            escape(&r.method)
        );
        for n in [
            r.expected,
            r.found,
            r.matched,
            r.missing,
            r.different,
            r.extra,
            r.orphan_references,
            r.count_by_scan,
        ] {
            let _ = write!(h, "<td class=\"n\">{}</td>", thousands(n));
        }
        let _ = write!(
            h,
            "<td class=\"{}\">{}</td></tr>",
            if r.ok { "state-done" } else { "state-failed" },
            if r.ok { "ok" } else { "differences" }
        );
    }
    h.push_str("</table>");
    for (entity, r) in &v.entities {
        let ex = &r.examples;
        let kinds = [
            ("missing", &ex.missing),
            ("different", &ex.different),
            ("extra", &ex.extra),
            ("orphan references", &ex.orphan_references),
        ];
        if kinds.iter().all(|(_, e)| e.is_empty()) {
            continue;
        }
        let _ = write!(
            h,
            "<div class=\"card\"><h3>{}: first examples</h3><table><tr><th>kind</th><th>PK</th><th>SK</th><th>attributes</th></tr>",
            escape(entity)
        );
        for (kind, examples) in kinds {
            for e in examples.iter().take(files::FIRST_IDS) {
                let attrs = match (&e.attribute, &e.table) {
                    (Some(a), Some(t)) => format!("{a} → {t}"),
                    (Some(a), None) => a.clone(),
                    _ => e
                        .attributes
                        .iter()
                        .map(|a| a.attribute.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let _ = write!(
                    h,
                    "<tr><td>{kind}</td><td class=\"ids\">{}</td><td class=\"ids\">{}</td><td>{}</td></tr>",
                    escape(&e.pk),
                    escape(&e.sk),
                    escape(&attrs)
                );
            }
        }
        h.push_str("</table></div>");
    }
}

fn run_section(h: &mut String, cp: &Checkpoint, config: Option<&Config>) {
    h.push_str("<h2>The run</h2><table>");
    let _ = write!(
        h,
        "<tr><th>run id</th><td><code>{}</code></td></tr><tr><th>started</th><td>{}</td></tr>\
         <tr><th>finished</th><td>{}</td></tr>",
        escape(&cp.run_id),
        cp.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        if cp.finished { "yes" } else { "no" }
    );
    let snapshots: Vec<String> = cp
        .entities
        .values()
        .filter_map(|s| s.get(&Phase::Extract)?.snapshot.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let _ = write!(
        h,
        "<tr><th>PostgreSQL snapshot</th><td><code>{}</code></td></tr></table>",
        escape(&snapshots.join(", "))
    );
    h.push_str("<h3>Configuration (secrets shown as ***)</h3>");
    match config {
        Some(c) => {
            h.push_str("<table>");
            for (k, v) in config_view::rows(c) {
                let _ = write!(
                    h,
                    "<tr><th>{}</th><td><code>{}</code></td></tr>",
                    escape(&k),
                    escape(&v)
                );
            }
            h.push_str("</table>");
        }
        None => h.push_str("<p>Not shown: no configuration file was given.</p>"),
    }
}

fn files_section(h: &mut String, listed: &[files::Listed]) {
    h.push_str(
        "<h2>Files</h2><p class=\"meta\">Links are relative to this page, inside the data directory.</p>\
         <table><tr><th>file</th><th>records</th><th>SHA-256</th></tr>",
    );
    for f in listed {
        let rel = f.path.to_string_lossy();
        let href = match rel.strip_prefix("reports/") {
            Some(r) => r.to_string(),
            None => format!("../{rel}"),
        };
        let (records, sha) = match &f.manifest {
            Some(m) => (thousands(m.records), m.sha256.chars().take(16).collect()),
            None => (String::new(), String::new()),
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"n\">{records}</td><td class=\"ids\">{}</td></tr>",
            escape(&href),
            escape(&rel),
            escape(&sha)
        );
    }
    h.push_str("</table>");
}
