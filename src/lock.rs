//! One writer per data directory (docs/safety.md, "One command at a time").
//!
//! Every command that writes to a data directory first takes an exclusive OS
//! file lock on `<data-dir>/.lock` with [`writer`]. The kernel releases the
//! lock when the process ends, however it ends, so a `kill -9` never leaves a
//! stale lock behind. The file records the holder's pid and command line,
//! which a refused command prints. Once the lock is held, what an interrupted
//! command left behind is tidied: half-written temporary files
//! (`*.tmp.<pid>`, `.<artifact>.partN`) are removed and every directory under
//! the data directory is made private (0700) again.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = ".lock";

/// How long a refused command waits for the holder to finish recording who
/// it is (it writes that right after taking the lock).
const HOLDER_WAIT: Duration = Duration::from_millis(500);

/// Who holds the lock, as recorded in the lock file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    pub since: String,
}

/// The exclusive lock on a data directory; released when dropped (or when
/// the process dies).
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
    tidied: Tidied,
}

/// What [`writer`] cleaned up after an interrupted command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tidied {
    /// Temporary files removed.
    pub removed: Vec<PathBuf>,
    /// Directories whose permissions were tightened to 0700.
    pub tightened: Vec<PathBuf>,
}

/// Takes the data directory for a writing command: creates it (0700) if
/// needed, takes the exclusive lock or fails at once with
/// [`Error::InUse`] (exit status 2), records this process in the lock file,
/// and tidies what an interrupted command left (see the module docs).
/// Hold the returned guard for as long as the command runs.
pub fn writer(data_dir: &Path) -> Result<DirLock> {
    crate::artifact::create_private_dir(data_dir)?;
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(in_use(data_dir, &path)),
        Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let holder = Holder {
        pid: std::process::id(),
        command: command_line(),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let mut text = serde_json::to_vec(&holder).expect("a holder serializes");
    text.push(b'\n');
    file.set_len(0)
        .and_then(|()| file.write_all_at(&text, 0))
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io(&path, e))?;
    let tidied = tidy(data_dir)?;
    Ok(DirLock { file, path, tidied })
}

impl DirLock {
    /// What was cleaned up when the lock was taken.
    pub fn tidied(&self) -> &Tidied {
        &self.tidied
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Forget the holder while still holding the lock; closing the file
        // releases it.
        let _ = self.file.set_len(0);
    }
}

/// The refusal, naming the holder.
fn in_use(data_dir: &Path, path: &Path) -> Error {
    let deadline = Instant::now() + HOLDER_WAIT;
    let holder = loop {
        if let Some(h) = read_holder(path) {
            break Some(h);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (pid, command) = match holder {
        Some(h) => (h.pid.to_string(), h.command),
        None => ("unknown".to_string(), "unknown command".to_string()),
    };
    Error::InUse(format!(
        "data directory {} is in use by pid {pid} ({command}); wait for it to end \
         (`migrate status` works meanwhile)",
        data_dir.display()
    ))
}

/// The holder recorded in a lock file, if it reads as one.
pub fn read_holder(path: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// This process's command line, program by its file name.
fn command_line() -> String {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .map(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "migrate".into());
    std::iter::once(program)
        .chain(args.map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a file name is a temporary file an interrupted command left:
/// `<name>.tmp.<pid>` (atomic writes) or `.<name>.part<N>` (extract spills).
pub fn is_leftover(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((_, pid)) = name.rsplit_once(".tmp.")
        && digits(pid)
    {
        return true;
    }
    name.starts_with('.')
        && name
            .rsplit_once(".part")
            .is_some_and(|(stem, n)| stem.len() > 1 && digits(n))
}

/// Removes leftovers and makes every directory under `data_dir` (itself
/// included) private. Symbolic links are neither followed nor touched.
pub fn tidy(data_dir: &Path) -> Result<Tidied> {
    let mut tidied = Tidied::default();
    let mut dirs = vec![data_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let meta = std::fs::symlink_metadata(&dir).map_err(|e| Error::io(&dir, e))?;
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(&dir, e))?;
            tidied.tightened.push(dir.clone());
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && is_leftover(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                tidied.removed.push(path);
            }
        }
    }
    tidied.removed.sort();
    tidied.tightened.sort();
    Ok(tidied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("migrate-lock-{tag}-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn leftovers_are_recognised() {
        for name in [
            "checkpoint.json.tmp.1234",
            "buyers.jsonl.tmp.9",
            ".sales.jsonl.part1",
            ".sales.jsonl.part12",
        ] {
            assert!(is_leftover(name), "{name}");
        }
        for name in [
            "checkpoint.json",
            "buyers.jsonl",
            "x.tmp.",
            "x.tmp.12a",
            "sales.jsonl.part1",
            ".part1",
            ".sales.jsonl.partx",
            "migration.log",
        ] {
            assert!(!is_leftover(name), "{name}");
        }
    }

    #[test]
    fn one_holder_at_a_time_and_tidy() {
        let dir = temp_dir("one");
        std::fs::create_dir_all(dir.join("extracted")).unwrap();
        std::fs::set_permissions(
            dir.join("extracted"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(dir.join("extracted/.sales.jsonl.part1"), "x").unwrap();
        std::fs::write(dir.join("checkpoint.json.tmp.77"), "x").unwrap();
        std::fs::write(dir.join("extracted/sales.jsonl"), "keep").unwrap();

        let lock = writer(&dir).unwrap();
        assert_eq!(
            lock.tidied().removed,
            [
                dir.join("checkpoint.json.tmp.77"),
                dir.join("extracted/.sales.jsonl.part1")
            ]
        );
        assert!(lock.tidied().tightened.contains(&dir.join("extracted")));
        assert!(dir.join("extracted/sales.jsonl").exists());
        let mode = std::fs::metadata(dir.join("extracted"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let holder = read_holder(lock.path()).unwrap();
        assert_eq!(holder.pid, std::process::id());

        // A second open file description is refused while the first holds it.
        let err = writer(&dir).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "data directory {} is in use by pid {} (",
                dir.display(),
                std::process::id()
            )),
            "{msg}"
        );
        drop(lock);
        let again = writer(&dir).unwrap();
        assert!(again.tidied().removed.is_empty());
        drop(again);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
