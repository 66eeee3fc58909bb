//! The metrics as a Prometheus text file (exposition format 0.0.4) for
//! node_exporter's textfile collector: the run's totals per entity and
//! phase, labelled `entity`, `phase`, `run_id`. Written atomically (temp
//! file, fsync, rename) and readable by others (0644: node_exporter usually
//! runs as its own user; the file holds counts only).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Key, Values};
use crate::error::{Error, Result};

/// One metric: its name, its help text, and how to read it from the values.
type Metric = (&'static str, &'static str, fn(&Values) -> f64);

/// Every metric the file holds.
const METRICS: [Metric; 5] = [
    (
        "migrate_records_processed",
        "Records processed by the phase in the run.",
        |v| v.records as f64,
    ),
    (
        "migrate_errors",
        "Records rejected or failed by the phase in the run.",
        |v| v.errors as f64,
    ),
    (
        "migrate_duration_seconds",
        "Time the phase has taken, in seconds.",
        |v| v.seconds,
    ),
    ("migrate_retries", "Requests the phase retried.", |v| {
        v.retries as f64
    }),
    ("migrate_throttles", "Requests DynamoDB throttled.", |v| {
        v.throttles as f64
    }),
];

/// A label value escaped as the format wants: `\`, `"` and newlines.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text of the file.
pub fn render(values: &BTreeMap<Key, Values>) -> String {
    let mut out = String::new();
    for (name, help, get) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for ((run_id, entity, phase), v) in values {
            let _ = writeln!(
                out,
                "{name}{{entity=\"{}\",phase=\"{}\",run_id=\"{}\"}} {}",
                label(entity),
                phase.as_str(),
                label(run_id),
                get(v)
            );
        }
    }
    out
}

/// Writes the file at `path` atomically.
pub fn write(path: &Path, values: &BTreeMap<Key, Values>) -> Result<()> {
    let text = render(values);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Phase;

    #[test]
    fn samples_are_labelled_and_escaped() {
        let mut v = BTreeMap::new();
        v.insert(
            ("r\"1".to_string(), "buyers".to_string(), Phase::Load),
            Values {
                records: 7,
                errors: 1,
                seconds: 1.5,
                retries: 2,
                throttles: 3,
            },
        );
        let t = render(&v);
        assert!(t.contains(
            "migrate_records_processed{entity=\"buyers\",phase=\"load\",run_id=\"r\\\"1\"} 7\n"
        ));
        assert!(t.contains("migrate_duration_seconds{") && t.contains("} 1.5\n"));
        assert_eq!(t.lines().filter(|l| l.starts_with("# TYPE")).count(), 5);
    }
}
