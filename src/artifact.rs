//! JSON Lines artifacts: atomic, owner-only writes with a manifest beside each
//! file, and reads that refuse a truncated or edited artifact before use.
//!
//! A writer streams records into `<name>.jsonl.tmp`, hashing as it goes; on
//! [`ArtifactWriter::finish`] the file is flushed, fsynced and renamed into
//! place, and `<name>.jsonl.manifest.json` (record count, byte count, SHA-256,
//! run id, phase, entity) is written the same way. [`ArtifactReader::open`]
//! re-hashes the file against its manifest before handing out a single line.
//!
//! In an encrypted data directory ([`crate::crypt`]) the file is an age
//! stream: the manifest's bytes and SHA-256 are the stored (encrypted)
//! file's, its record count the plain lines', and `encrypted` says so.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypt::{self, Key, Opened, Sealed};
use crate::error::{Error, Result};

/// What is known about a finished artifact; stored beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub file: String,
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
    pub run_id: String,
    pub phase: String,
    pub entity: String,
    pub created_at: String,
    /// An age file ([`crate::crypt`]); `bytes` and `sha256` are then the
    /// encrypted file's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

/// The manifest path of an artifact.
pub fn manifest_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    path.with_file_name(name)
}

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Opens a new file readable and writable by the owner only.
pub fn create_private_file(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

fn sync_dir(path: &Path) {
    // Best effort: makes the rename itself durable on filesystems that need it.
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename), owner-only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut file = create_private_file(&tmp)?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path);
    Ok(())
}

/// Serializes `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("report values serialize");
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file written by [`write_json_atomic`].
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::artifact(path, format!("not valid JSON: {e}")))
}

struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams records into a new artifact; nothing is visible until `finish`.
pub struct ArtifactWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Sealed<Hashing<BufWriter<File>>>,
    records: u64,
    run_id: String,
    phase: String,
    entity: String,
}

impl ArtifactWriter {
    /// Starts an artifact at `path` for `phase` of `entity` in run `run_id`.
    /// Encrypted when the data directory is ([`crypt::current`]).
    pub fn create(path: &Path, run_id: &str, phase: &str, entity: &str) -> Result<Self> {
        Self::create_with_key(path, run_id, phase, entity, crypt::current())
    }

    /// [`ArtifactWriter::create`] with the key given: encrypted if `Some`.
    pub fn create_with_key(
        path: &Path,
        run_id: &str,
        phase: &str,
        entity: &str,
        key: Option<&Key>,
    ) -> Result<Self> {
        let tmp = tmp_path(path);
        let file = create_private_file(&tmp)?;
        let hashing = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        Ok(ArtifactWriter {
            path: path.to_path_buf(),
            out: Sealed::new(hashing, key).map_err(|e| Error::io(&tmp, e))?,
            tmp,
            records: 0,
            run_id: run_id.into(),
            phase: phase.into(),
            entity: entity.into(),
        })
    }

    /// Appends one record, serialized as one JSON line.
    pub fn write<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)
            .map_err(|e| Error::io(&self.tmp, io::Error::other(e)))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| Error::io(&self.tmp, e))?;
        self.records += 1;
        Ok(())
    }

    /// Appends one line that is already JSON (without its newline).
    pub fn write_raw_line(&mut self, line: &[u8]) -> Result<()> {
        self.out
            .write_all(line)
            .map_err(|e| Error::io(&self.tmp, e))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| Error::io(&self.tmp, e))?;
        self.records += 1;
        Ok(())
    }

    /// Appends bytes that hold whole lines, each already JSON and ending in
    /// a newline (a spilled part of the same artifact); counts the lines.
    pub fn write_lines(&mut self, lines: &[u8]) -> Result<()> {
        self.out
            .write_all(lines)
            .map_err(|e| Error::io(&self.tmp, e))?;
        self.records += lines.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes, fsyncs and renames the artifact into place, then its manifest.
    pub fn finish(self) -> Result<Manifest> {
        let ArtifactWriter {
            path,
            tmp,
            out,
            records,
            run_id,
            phase,
            entity,
        } = self;
        let encrypted = matches!(out, Sealed::Age(_));
        let Hashing {
            inner,
            hasher,
            bytes,
        } = out.finish().map_err(|e| Error::io(&tmp, e))?;
        let file = inner
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        let manifest = Manifest {
            file: path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            records,
            bytes,
            sha256: hex(&hasher.finalize()),
            run_id,
            phase,
            entity,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            encrypted,
        };
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        write_json_atomic(&manifest_path(&path), &manifest)?;
        Ok(manifest)
    }

    /// Abandons the artifact: the temp file is removed, nothing replaced.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a verified artifact line by line.
#[derive(Debug)]
pub struct ArtifactReader {
    path: PathBuf,
    reader: BufReader<Opened>,
    line_no: u64,
    manifest: Manifest,
    modified: Option<std::time::SystemTime>,
    key: Option<&'static Key>,
}

impl ArtifactReader {
    /// Checks the artifact at `path` against its manifest (size, line count,
    /// SHA-256) and opens it for reading. Refuses a missing manifest, a
    /// truncated, extended or edited file.
    /// Decrypted when the data directory is encrypted ([`crypt::current`]).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_key(path, crypt::current())
    }

    /// [`ArtifactReader::open`] with the key given.
    pub fn open_with_key(path: &Path, key: Option<&'static Key>) -> Result<Self> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let manifest = Self::verify(path)?;
        crypt::check_form(path, manifest.encrypted, key)?;
        Ok(ArtifactReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, crypt::open_file(path, key)?),
            line_no: 0,
            manifest,
            modified,
            key,
        })
    }

    /// Opens an artifact verified moments ago (same manifest, same size and
    /// modification time) without hashing it again: a second pass over it.
    pub fn reopen(&self) -> Result<Self> {
        let meta = std::fs::metadata(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let current: Manifest = read_json(&manifest_path(&self.path))?;
        if meta.len() != self.manifest.bytes
            || current != self.manifest
            || meta.modified().ok() != self.modified
        {
            return Err(Error::artifact(
                &self.path,
                "changed while it was being read; run the phase again",
            ));
        }
        Ok(ArtifactReader {
            path: self.path.clone(),
            reader: BufReader::with_capacity(1 << 20, crypt::open_file(&self.path, self.key)?),
            line_no: 0,
            manifest: self.manifest.clone(),
            modified: self.modified,
            key: self.key,
        })
    }

    /// Verifies `path` against its manifest and returns the manifest.
    pub fn verify(path: &Path) -> Result<Manifest> {
        let mpath = manifest_path(path);
        if !path.exists() {
            return Err(Error::artifact(
                path,
                "does not exist (has the phase that writes it run?)",
            ));
        }
        let manifest: Manifest = read_json(&mpath).map_err(|_| {
            Error::artifact(
                path,
                format!("its manifest {} is missing or unreadable", mpath.display()),
            )
        })?;
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let (mut bytes, mut lines, mut last) = (0u64, 0u64, b'\n');
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            last = buf[n - 1];
        }
        // An encrypted file's lines are counted when it is read; its bytes
        // and SHA-256 (and age's own authentication) stand for them here.
        let lines_ok = manifest.encrypted || (lines == manifest.records && last == b'\n');
        if bytes != manifest.bytes || !lines_ok {
            return Err(Error::artifact(
                path,
                format!(
                    "has {bytes} bytes in {lines} lines but its manifest says {} bytes in {} records: \
                     it was truncated or changed after it was written; run its phase again",
                    manifest.bytes, manifest.records
                ),
            ));
        }
        let sha = hex(&hasher.finalize());
        if sha != manifest.sha256 {
            return Err(Error::artifact(
                path,
                format!(
                    "SHA-256 {sha} does not match its manifest ({}): it was edited after it was \
                     written; run its phase again",
                    manifest.sha256
                ),
            ));
        }
        Ok(manifest)
    }

    /// Refuses to resume `what` (a load, an import) over an artifact that
    /// changed since it started; `started` is the SHA-256 the step recorded.
    pub fn check_unchanged(&self, started: Option<&str>, what: &str) -> Result<()> {
        if started == Some(self.manifest.sha256.as_str()) {
            return Ok(());
        }
        Err(Error::Checkpoint(format!(
            "{} changed since this {what} started (SHA-256 {} now, {} then): refusing to resume over \
             it; start a new run instead",
            self.path.display(),
            self.manifest.sha256,
            started.unwrap_or("unknown")
        )))
    }

    /// The manifest the file was checked against.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Reads the next line into `buf` (without its newline); false at the end.
    pub fn next_line(&mut self, buf: &mut String) -> Result<bool> {
        buf.clear();
        let n = self
            .reader
            .read_line(buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(false);
        }
        if buf.ends_with('\n') {
            buf.pop();
        }
        self.line_no += 1;
        Ok(true)
    }

    /// Reads and parses the next record; `None` at the end.
    pub fn next_record<T: for<'de> Deserialize<'de>>(
        &mut self,
        buf: &mut String,
    ) -> Result<Option<T>> {
        if !self.next_line(buf)? {
            return Ok(None);
        }
        serde_json::from_str(buf).map(Some).map_err(|e| {
            Error::artifact(
                &self.path,
                format!("line {}: not a valid record: {e}", self.line_no),
            )
        })
    }

    /// The line number of the last line read (1-based).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The artifact's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("migrate-artifact-{}", uuid::Uuid::new_v4()));
        create_private_dir(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_permissions() {
        let d = dir();
        let p = d.join("x.jsonl");
        let mut w = ArtifactWriter::create(&p, "run", "extract", "buyers").unwrap();
        w.write(&json!({"a": 1})).unwrap();
        w.write_raw_line(br#"{"b":2}"#).unwrap();
        let m = w.finish().unwrap();
        assert_eq!(m.records, 2);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut r = ArtifactReader::open(&p).unwrap();
        let mut buf = String::new();
        let v: serde_json::Value = r.next_record(&mut buf).unwrap().unwrap();
        assert_eq!(v, json!({"a": 1}));
        assert!(r.next_line(&mut buf).unwrap());
        assert!(!r.next_line(&mut buf).unwrap());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn encrypted_round_trip_holds_no_plain_text_and_is_checked() {
        let d = dir();
        let p = d.join("x.jsonl");
        let key = crate::crypt::test_key("k");
        let mut w =
            ArtifactWriter::create_with_key(&p, "run", "extract", "buyers", Some(key)).unwrap();
        for i in 0..5000 {
            w.write(&json!({"name": format!("Bianchi {i}")})).unwrap();
        }
        let m = w.finish().unwrap();
        assert!(m.encrypted);
        assert_eq!(m.records, 5000);
        assert_eq!(m.bytes, fs::metadata(&p).unwrap().len());
        assert!(!String::from_utf8_lossy(&fs::read(&p).unwrap()).contains("Bianchi"));
        let r = ArtifactReader::open_with_key(&p, Some(key)).unwrap();
        let mut again = r.reopen().unwrap();
        let mut buf = String::new();
        let mut n = 0;
        while let Some(v) = again.next_record::<serde_json::Value>(&mut buf).unwrap() {
            assert_eq!(v["name"], format!("Bianchi {n}"));
            n += 1;
        }
        assert_eq!(n, 5000);
        let err = ArtifactReader::open_with_key(&p, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is encrypted"), "{err}");
        // An edit is caught by the manifest before any line is read.
        let mut bytes = fs::read(&p).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 1;
        fs::write(&p, &bytes).unwrap();
        let err = ArtifactReader::open_with_key(&p, Some(key))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHA-256"), "{err}");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn truncated_and_edited_are_refused() {
        let d = dir();
        let p = d.join("x.jsonl");
        let mut w = ArtifactWriter::create(&p, "run", "extract", "buyers").unwrap();
        for i in 0..10 {
            w.write(&json!({"i": i})).unwrap();
        }
        w.finish().unwrap();
        let full = fs::read(&p).unwrap();
        fs::write(&p, &full[..full.len() - 5]).unwrap();
        assert!(
            ArtifactReader::open(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        let mut edited = full.clone();
        edited[3] = b'j';
        fs::write(&p, &edited).unwrap();
        assert!(
            ArtifactReader::open(&p)
                .unwrap_err()
                .to_string()
                .contains("SHA-256")
        );
        fs::remove_file(manifest_path(&p)).unwrap();
        assert!(
            ArtifactReader::open(&p)
                .unwrap_err()
                .to_string()
                .contains("manifest")
        );
        fs::remove_dir_all(d).unwrap();
    }
}
