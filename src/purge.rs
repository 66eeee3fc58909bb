//! `migrate purge`: after the migration, deletes everything under the data
//! directory that holds personal data — the artifacts, spill and temporary
//! files, backups and ledgers, the record-level reports — and keeps the
//! checkpoint, the summary reports, the HTML report and the log. What was
//! deleted is written to `reports/purge.json` (README "After the migration").

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::artifact::write_json_atomic;
use crate::error::{Error, Result};

/// Folders under the data directory whose every file holds source records.
const PERSONAL_DIRS: [&str; 5] = [
    "extracted",
    "transformed",
    "validated",
    "changes",
    "backups",
];

/// Folders under `reports/` that list records (rejects, warnings, quarantine,
/// failed writes), as against the summary reports beside them.
const RECORD_REPORTS: [&str; 4] = ["rejected", "warnings", "quarantine", "failed"];

/// What the operator asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct PurgeRequest {
    /// Do not ask for confirmation.
    pub yes: bool,
    /// Delete the backups and ledgers too, although a rollback may need them.
    pub even_backups: bool,
}

/// `reports/purge.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeReport {
    pub purged_at: DateTime<Utc>,
    pub command: String,
    pub data_dir: PathBuf,
    /// Paths relative to the data directory.
    pub deleted: Vec<PathBuf>,
    pub bytes: u64,
}

/// The files purge deletes, relative to `data_dir`, sorted.
pub fn personal_files(data_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for dir in PERSONAL_DIRS {
        walk(data_dir, &data_dir.join(dir), &mut found)?;
    }
    for dir in RECORD_REPORTS {
        walk(data_dir, &data_dir.join("reports").join(dir), &mut found)?;
    }
    // Temporary and spill files a crash may have left anywhere.
    let mut all = Vec::new();
    walk(data_dir, data_dir, &mut all)?;
    found.extend(all.into_iter().filter(|p| is_leftover(p)));
    found.sort();
    found.dedup();
    Ok(found)
}

/// A temporary or spill file a crash left ([`crate::lock::is_leftover`]).
fn is_leftover(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| crate::lock::is_leftover(&n.to_string_lossy()))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// Deletes the personal data under `data_dir` and writes `reports/purge.json`.
pub fn purge(data_dir: &Path, request: PurgeRequest, command: &str) -> Result<PurgeReport> {
    let files = personal_files(data_dir)?;
    let backups: Vec<&PathBuf> = files.iter().filter(|p| p.starts_with("backups")).collect();
    let backups_allowed = request.yes && request.even_backups;
    if !backups.is_empty() && !backups_allowed {
        return Err(Error::Usage(format!(
            "{} holds {} backup file(s) that `migrate rollback` may still need (e.g. {}): purge refuses to delete \
             them; when the migration is accepted, run `migrate purge --yes --even-backups`",
            data_dir.display(),
            backups.len(),
            data_dir.join(backups[0]).display()
        )));
    }
    if files.is_empty() {
        tracing::info!("nothing to purge under {}", data_dir.display());
    }
    let bytes: u64 = files
        .iter()
        .map(|p| std::fs::metadata(data_dir.join(p)).map(|m| m.len()))
        .collect::<std::io::Result<Vec<u64>>>()
        .map_err(|e| Error::io(data_dir, e))?
        .iter()
        .sum();
    if !request.yes && !files.is_empty() {
        confirm(data_dir, files.len(), bytes)?;
    }
    for p in &files {
        let path = data_dir.join(p);
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    }
    let report = PurgeReport {
        purged_at: Utc::now(),
        command: command.to_string(),
        data_dir: data_dir.to_path_buf(),
        deleted: files,
        bytes,
    };
    write_json_atomic(&data_dir.join("reports").join("purge.json"), &report)?;
    Ok(report)
}

fn confirm(data_dir: &Path, files: usize, bytes: u64) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "purge deletes files: confirm on a terminal, or pass --yes".into(),
        ));
    }
    eprint!(
        "Delete {files} file(s), {bytes} bytes of personal data under {}? Type 'yes' to go on: ",
        data_dir.display()
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::io("stdin", e))?;
    if answer.trim() != "yes" {
        return Err(Error::Usage("purge not confirmed; nothing deleted".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x\n").unwrap();
    }

    #[test]
    fn lists_exactly_the_files_that_hold_records() {
        let dir = std::env::temp_dir().join(format!("purge-unit-{}", uuid::Uuid::new_v4()));
        for f in [
            "extracted/buyers.jsonl",
            "extracted/buyers.jsonl.manifest.json",
            "extracted/.sales.jsonl.part1",
            "validated/sales.jsonl",
            "reports/rejected/sales.jsonl",
            "reports/failed/sales.jsonl",
            "reports/checkpoint.json.tmp.123",
        ] {
            touch(&dir, f);
        }
        for kept in [
            "checkpoint.json",
            "reports/validation_report.json",
            "reports/report.html",
            "reports/migration.log",
        ] {
            touch(&dir, kept);
        }
        let files = personal_files(&dir).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "extracted/.sales.jsonl.part1",
                "extracted/buyers.jsonl",
                "extracted/buyers.jsonl.manifest.json",
                "reports/checkpoint.json.tmp.123",
                "reports/failed/sales.jsonl",
                "reports/rejected/sales.jsonl",
                "validated/sales.jsonl",
            ]
        );
        // Backups make purge refuse unless both flags are given.
        touch(&dir, "backups/buyers-run.jsonl");
        let refused = purge(
            &dir,
            PurgeRequest {
                yes: true,
                even_backups: false,
            },
            "t",
        );
        assert!(matches!(refused, Err(Error::Usage(m)) if m.contains("--even-backups")));
        assert!(
            dir.join("validated/sales.jsonl").exists(),
            "refused: nothing deleted"
        );
        let report = purge(
            &dir,
            PurgeRequest {
                yes: true,
                even_backups: true,
            },
            "t",
        )
        .unwrap();
        assert_eq!(report.deleted.len(), 8);
        assert!(personal_files(&dir).unwrap().is_empty());
        assert!(dir.join("reports/report.html").exists());
        assert!(dir.join("reports/purge.json").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
