//! The report page's load section: per entity, what was written, a sync's
//! difference or an S3 import's outcome, the write rate and the throttles
//! over time, and the backup taken before it.

use std::fmt::Write as _;

use super::files::{ImportInfo, Reports};
use super::svg::{self, escape};
use crate::progress::thousands;

pub(super) fn section(h: &mut String, reports: &Reports) {
    let Some(load) = &reports.load else { return };
    h.push_str("<h2>The load over time</h2>");
    for (entity, l) in &load.entities {
        let _ = write!(
            h,
            "<div class=\"card\"><h3>{} → <code>{}</code></h3><p class=\"meta\">{} written, {} failed, {} requests, \
             {} throttled, {} server errors, {} retries ({} ms waited), {:.1}s</p>",
            escape(entity),
            escape(&l.table),
            thousands(l.written.unwrap_or(0)),
            thousands(l.failed.unwrap_or(0)),
            thousands(l.requests.unwrap_or(0)),
            thousands(l.throttled.unwrap_or(0)),
            thousands(l.server_errors.unwrap_or(0)),
            thousands(l.retries.unwrap_or(0)),
            thousands(l.retry_wait_ms.unwrap_or(0)),
            l.seconds
        );
        if let Some(c) = &l.sync {
            let _ = write!(
                h,
                "<p class=\"meta\">Sync: {} new, {} changed, {} unchanged, {} deleted; {} foreign items left alone</p>",
                thousands(c.new),
                thousands(c.changed),
                thousands(c.unchanged),
                thousands(c.deleted),
                thousands(c.foreign)
            );
        }
        if let Some(i) = &l.import {
            import_line(h, i);
        }
        match l.series.as_ref().filter(|s| !s.points.is_empty()) {
            Some(s) => {
                let per_sec = |f: fn(&super::series::Point) -> u64| {
                    s.points
                        .iter()
                        .map(|p| {
                            (
                                p.at,
                                if p.secs > 0.0 {
                                    f(p) as f64 / p.secs
                                } else {
                                    0.0
                                },
                            )
                        })
                        .collect::<Vec<_>>()
                };
                h.push_str(&svg::lines(
                    &format!("{entity}: items written per second"),
                    "items/s",
                    &[svg::Line {
                        name: "items/s".into(),
                        color: "#2457a6",
                        points: per_sec(|p| p.items),
                    }],
                ));
                h.push_str(&svg::lines(
                    &format!("{entity}: throttles and retries per second"),
                    "per s",
                    &[
                        svg::Line {
                            name: "throttled/s".into(),
                            color: "#c62828",
                            points: per_sec(|p| p.throttled),
                        },
                        svg::Line {
                            name: "retries/s".into(),
                            color: "#d68a00",
                            points: per_sec(|p| p.retries),
                        },
                    ],
                ));
                let _ = write!(
                    h,
                    "<p class=\"meta\">{} points, each {} s</p>",
                    s.points.len(),
                    s.samples_per_point
                );
            }
            None => h.push_str("<p class=\"meta\">No time series was recorded.</p>"),
        }
        if let Some(b) = &l.backup {
            let _ = write!(
                h,
                "<p class=\"meta\">Backup before the load: {} items of <code>{}</code>, SHA-256 <code>{}</code></p>",
                thousands(b.items),
                escape(&b.table),
                escape(&b.sha256)
            );
        }
        h.push_str("</div>");
    }
}

/// An S3 import: what was uploaded, what DynamoDB imported, where its log is.
fn import_line(h: &mut String, i: &ImportInfo) {
    let _ = write!(
        h,
        "<p class=\"meta\">Loaded by S3 import <code>{}</code>: {}; {} objects, {} bytes; {} processed, \
         {} imported, {} errors{}</p>",
        escape(i.arn.as_deref().unwrap_or("(not started)")),
        escape(i.status.as_deref().unwrap_or("unknown")),
        thousands(i.objects),
        thousands(i.bytes),
        thousands(i.processed_items.unwrap_or(0)),
        thousands(i.imported_items.unwrap_or(0)),
        thousands(i.errors.unwrap_or(0)),
        match &i.log_group {
            Some(g) => format!(" (CloudWatch log group <code>{}</code>)", escape(g)),
            None => String::new(),
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_and_an_import_are_shown() {
        let load = serde_json::from_value(serde_json::json!({
            "runId": "r",
            "entities": {
                "buyers": {"runId": "r", "table": "B", "items": 6, "written": 4, "seconds": 1.0,
                           "mode": "sync",
                           "sync": {"new": 1, "changed": 2, "unchanged": 1200, "deleted": 1, "foreign": 3}},
                "sales": {"runId": "r", "table": "S<1>", "items": 5, "seconds": 2.0,
                          "import": {"arn": "arn:aws:dynamodb:x:import/1", "status": "COMPLETED",
                                     "objects": 2, "bytes": 1234, "processedItems": 5,
                                     "importedItems": 5, "errors": 0, "logGroup": "/aws-dynamodb/imports"}}
            }
        }))
        .unwrap();
        let reports = Reports {
            validation: None,
            load: Some(load),
            verification: None,
        };
        let mut h = String::new();
        section(&mut h, &reports);
        assert!(
            h.contains("Sync: 1 new, 2 changed, 1,200 unchanged, 1 deleted; 3 foreign"),
            "{h}"
        );
        assert!(
            h.contains("<code>arn:aws:dynamodb:x:import/1</code>: COMPLETED"),
            "{h}"
        );
        assert!(h.contains("5 imported, 0 errors"), "{h}");
        assert!(h.contains("<code>/aws-dynamodb/imports</code>"), "{h}");
        assert!(h.contains("S&lt;1&gt;"), "escaped: {h}");
    }
}
