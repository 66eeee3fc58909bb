//! The files of `data/reports/` read back, typed, for the HTML page: the
//! JSON reports the phases write (an unreadable one is an error, never an
//! empty section), the reason codes and first legacy ids of the quarantined,
//! rejected, warned and failed records (ids and codes only: the records'
//! contents are not read into the page), and the list of every artifact and
//! report file.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::series::Series;
use crate::artifact::{ArtifactReader, Manifest, read_json};
use crate::checkpoint::BackupInfo;
use crate::error::{Error, Result};

/// How many legacy ids the page lists per reason code.
pub const FIRST_IDS: usize = 10;

/// A JSON report: one section per entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportFile<T> {
    pub run_id: String,
    pub entities: BTreeMap<String, T>,
}

/// `validation_report.json`, one entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub run_id: String,
    pub input: u64,
    pub valid: u64,
    pub rejected: u64,
    pub records_with_warnings: u64,
    #[serde(default)]
    pub rejects_by_reason: BTreeMap<String, u64>,
    #[serde(default)]
    pub warnings_by_reason: BTreeMap<String, u64>,
}

/// `load_report.json`, one entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    pub run_id: String,
    pub table: String,
    pub items: u64,
    pub confirmed: Option<u64>,
    pub written: Option<u64>,
    pub failed: Option<u64>,
    pub requests: Option<u64>,
    pub throttled: Option<u64>,
    pub server_errors: Option<u64>,
    pub unprocessed_items: Option<u64>,
    pub retries: Option<u64>,
    pub retry_wait_ms: Option<u64>,
    pub seconds: f64,
    pub backup: Option<BackupInfo>,
    pub series: Option<Series>,
    /// `put` or `sync`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The difference a sync applied (docs/cutover.md).
    #[serde(default)]
    pub sync: Option<crate::checkpoint::SyncCounts>,
    /// The S3 import that made the table (docs/import.md).
    #[serde(default)]
    pub import: Option<ImportInfo>,
}

/// An S3 import's outcome, as `load_report.json` gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportInfo {
    pub arn: Option<String>,
    pub status: Option<String>,
    pub objects: u64,
    pub bytes: u64,
    pub processed_items: Option<u64>,
    pub imported_items: Option<u64>,
    pub errors: Option<u64>,
    pub log_group: Option<String>,
}

/// `verification_report.json`, one entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub run_id: String,
    pub table: String,
    pub method: String,
    pub ok: bool,
    pub expected: u64,
    pub found: u64,
    pub matched: u64,
    pub count_by_scan: u64,
    pub missing: u64,
    pub different: u64,
    pub extra: u64,
    pub orphan_references: u64,
    #[serde(default)]
    pub foreign: u64,
    #[serde(default)]
    pub examples: Examples,
    pub seconds: f64,
}

/// The first examples of each kind of difference (keys and attribute names;
/// the values the report file holds are not read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Examples {
    #[serde(default)]
    pub missing: Vec<KeyExample>,
    #[serde(default)]
    pub different: Vec<KeyExample>,
    #[serde(default)]
    pub extra: Vec<KeyExample>,
    #[serde(default)]
    pub orphan_references: Vec<KeyExample>,
}

/// One example: the item's key, and the attributes concerned.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyExample {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// Different: the attributes that differ.
    #[serde(default)]
    pub attributes: Vec<AttributeName>,
    /// Orphan reference: the referring attribute and the entity referred to.
    pub attribute: Option<String>,
    pub table: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AttributeName {
    pub attribute: String,
}

/// The JSON reports of a data directory (each absent until its phase ran).
#[derive(Debug, Clone, Default)]
pub struct Reports {
    pub validation: Option<ReportFile<Validation>>,
    pub load: Option<ReportFile<Load>>,
    pub verification: Option<ReportFile<Verification>>,
}

impl Reports {
    pub fn read(reports_dir: &Path) -> Result<Reports> {
        Ok(Reports {
            validation: read_report(&reports_dir.join("validation_report.json"))?,
            load: read_report(&reports_dir.join("load_report.json"))?,
            verification: read_report(&reports_dir.join("verification_report.json"))?,
        })
    }
}

fn read_report<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<ReportFile<T>>> {
    if !path.exists() {
        return Ok(None);
    }
    read_json(path).map(Some).map_err(|e| match e {
        Error::Artifact { path, message } => Error::Artifact {
            path,
            message: format!("cannot be read for the HTML report: {message}"),
        },
        other => other,
    })
}

/// What kind of record a reason code counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Transform could not map the row.
    Quarantined,
    /// Validate rejected the record.
    Rejected,
    /// Validate kept the record with a warning.
    Warning,
    /// Load could not write the item.
    Failed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Quarantined => "quarantined",
            Kind::Rejected => "rejected",
            Kind::Warning => "warning",
            Kind::Failed => "failed",
        }
    }
}

/// One reason code: how many records, and the first legacy ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reason {
    pub count: u64,
    pub first_ids: Vec<String>,
}

/// Reasons of one entity, by kind and code.
pub type Reasons = BTreeMap<(Kind, String), Reason>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    legacy_id: Option<Value>,
    /// Quarantine: one code.
    reason: Option<String>,
    /// Rejected: its codes.
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    warnings: Vec<Code>,
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

fn note(reasons: &mut Reasons, kind: Kind, code: &str, id: &Option<Value>) {
    let r = reasons.entry((kind, code.to_string())).or_default();
    r.count += 1;
    if r.first_ids.len() < FIRST_IDS {
        r.first_ids.push(match id {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => "?".into(),
        });
    }
}

/// Reads the codes and ids of one artifact-backed reasons file (checked
/// against its manifest), if it exists.
pub fn read_reasons(path: &Path, file_kind: Kind, reasons: &mut Reasons) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut reader = ArtifactReader::open(path)?;
    let mut buf = String::new();
    while let Some(line) = reader.next_record::<Line>(&mut buf)? {
        match file_kind {
            Kind::Quarantined => note(
                reasons,
                Kind::Quarantined,
                line.reason.as_deref().unwrap_or("unmappable"),
                &line.legacy_id,
            ),
            _ => {
                for code in &line.reasons {
                    note(reasons, Kind::Rejected, code, &line.legacy_id);
                }
            }
        }
        for w in &line.warnings {
            note(reasons, Kind::Warning, &w.code, &line.legacy_id);
        }
    }
    Ok(())
}

/// Reads the load's failed file (JSON Lines, or encrypted segments), if it
/// exists.
pub fn read_failed(path: &Path, reasons: &mut Reasons) -> Result<()> {
    let Some(reader) = crate::crypt::log::reader(path, crate::crypt::current())? else {
        return Ok(());
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let entry: Line = serde_json::from_str(&line)
            .map_err(|e| Error::artifact(path, format!("line {}: {e}", i + 1)))?;
        note(reasons, Kind::Failed, "write_failed", &entry.legacy_id);
    }
    Ok(())
}

/// One file of the data directory the page links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Relative to the data directory.
    pub path: PathBuf,
    /// Its manifest, for artifacts that have one.
    pub manifest: Option<Manifest>,
}

/// The folders of the data directory that hold artifacts and reports.
const LISTED_DIRS: [&str; 9] = [
    "extracted",
    "transformed",
    "validated",
    "reports",
    "reports/quarantine",
    "reports/rejected",
    "reports/warnings",
    "reports/failed",
    "backups",
];

/// Every artifact and report file of `data_dir` (manifests, temporary files
/// and the page itself left out), in a stable order.
pub fn list(data_dir: &Path) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for dir in LISTED_DIRS {
        let full = data_dir.join(dir);
        let Ok(entries) = std::fs::read_dir(&full) else {
            continue;
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io(&full, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
            if is_file
                && !name.ends_with(".manifest.json")
                && !name.contains(".tmp.")
                && !name.starts_with("report.html")
            {
                names.push(name);
            }
        }
        names.sort();
        for name in names {
            let path = full.join(&name);
            let mpath = crate::artifact::manifest_path(&path);
            let manifest = if mpath.exists() {
                Some(read_json::<Manifest>(&mpath)?)
            } else {
                None
            };
            out.push(Listed {
                path: Path::new(dir).join(name),
                manifest,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::ArtifactWriter;

    #[test]
    fn reasons_keep_codes_and_first_ids_only() {
        let dir = std::env::temp_dir().join(format!("migrate-rf-{}", uuid::Uuid::new_v4()));
        crate::artifact::create_private_dir(&dir).unwrap();
        let p = dir.join("rejected.jsonl");
        let mut w = ArtifactWriter::create(&p, "r", "validate", "buyers").unwrap();
        for id in 0..15 {
            w.write(&serde_json::json!({"legacyId": id, "PK": "B#1", "SK": "M",
                "reasons": ["invalid_vat"], "findings": [],
                "warnings": [{"code": "invalid_email", "severity": "warning", "message": "x@y"}],
                "item": {"email": "secret@example.com"}}))
                .unwrap();
        }
        w.finish().unwrap();
        let mut r = Reasons::new();
        read_reasons(&p, Kind::Rejected, &mut r).unwrap();
        let vat = &r[&(Kind::Rejected, "invalid_vat".to_string())];
        assert_eq!(vat.count, 15);
        assert_eq!(vat.first_ids.len(), FIRST_IDS);
        assert_eq!(vat.first_ids[0], "0");
        assert_eq!(r[&(Kind::Warning, "invalid_email".to_string())].count, 15);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unreadable_report_is_an_error() {
        let dir = std::env::temp_dir().join(format!("migrate-rf-{}", uuid::Uuid::new_v4()));
        crate::artifact::create_private_dir(&dir).unwrap();
        std::fs::write(dir.join("load_report.json"), "{ not json").unwrap();
        let err = Reports::read(&dir).unwrap_err().to_string();
        assert!(err.contains("load_report.json"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
