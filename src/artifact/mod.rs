//! JSON Lines artifacts: atomic, owner-only writes with a manifest beside each
//! file, and reads that refuse a truncated or edited artifact.
//!
//! A writer ([`writer`]) streams records into `<name>.jsonl.tmp`, hashing as
//! it goes; on [`ArtifactWriter::finish`] the file is flushed, fsynced and
//! renamed into place, and `<name>.jsonl.manifest.json` (record count, byte
//! count, SHA-256, run id, phase, entity) is written the same way. A reader
//! ([`reader`]) checks the file against its manifest before the first line,
//! or, for a phase whose own output is atomic, while it reads, refusing at
//! the end (docs/design.md, "Artifacts").
//!
//! In an encrypted data directory ([`crate::crypt`]) the file is an age
//! stream, which authenticates every chunk and its end itself: the
//! manifest's `bytes` are the stored file's, its `sha256` that of the
//! file's first [`HEAD_BYTES`] (the age header, whose random file key makes
//! it one file's and no other's), its record count the plain lines', and
//! `encrypted` says so (docs/encryption.md).

mod reader;
mod writer;

pub use reader::ArtifactReader;
pub use writer::ArtifactWriter;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The bytes at the start of an encrypted artifact that its manifest's
/// `sha256` covers (see above).
pub const HEAD_BYTES: u64 = 4096;

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
    /// How many bytes at the start of the file `sha256` covers, when not the
    /// whole file: an age file's head ([`HEAD_BYTES`]). Absent in the
    /// manifests of age files written before this, which cover it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_covers: Option<u64>,
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

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
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

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        // An edit is caught before any line is read: in the head by the
        // manifest's SHA-256, further on by age's authentication.
        let stored = fs::read(&p).unwrap();
        let mut bytes = stored.clone();
        bytes[30] ^= 1;
        fs::write(&p, &bytes).unwrap();
        let err = ArtifactReader::open_with_key(&p, Some(key))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHA-256"), "{err}");
        let mut bytes = stored.clone();
        let i = bytes.len() / 2;
        bytes[i] ^= 1;
        fs::write(&p, &bytes).unwrap();
        let err = ArtifactReader::open_with_key(&p, Some(key))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not decrypt"), "{err}");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn an_encrypted_manifest_covering_the_whole_file_still_reads() {
        use sha2::{Digest, Sha256};
        let d = dir();
        let p = d.join("x.jsonl");
        let key = crate::crypt::test_key("k");
        let mut w =
            ArtifactWriter::create_with_key(&p, "run", "extract", "buyers", Some(key)).unwrap();
        for i in 0..3000 {
            w.write(&json!({"name": format!("Verdi {i}")})).unwrap();
        }
        let m = w.finish().unwrap();
        assert_eq!(m.sha256_covers, Some(HEAD_BYTES));
        // As written before manifests covered heads: the whole file's SHA-256.
        let old = Manifest {
            sha256: hex(&Sha256::digest(fs::read(&p).unwrap())),
            sha256_covers: None,
            ..m
        };
        write_json_atomic(&manifest_path(&p), &old).unwrap();
        for mut r in [
            ArtifactReader::open_with_key(&p, Some(key)).unwrap(),
            ArtifactReader::open_streamed_with_key(&p, Some(key)).unwrap(),
        ] {
            let mut buf = String::new();
            while r.next_line(&mut buf).unwrap() {}
            assert_eq!(r.line_no(), 3000);
        }
        fs::remove_dir_all(d).unwrap();
    }

    /// Reads every line of a streamed open; the error if the end refuses.
    fn read_streamed(p: &Path) -> Result<u64> {
        let mut r = ArtifactReader::open_streamed(p)?;
        let mut buf = String::new();
        while r.next_line(&mut buf)? {}
        Ok(r.line_no())
    }

    #[test]
    fn a_streamed_open_refuses_at_the_end() {
        let d = dir();
        let p = d.join("x.jsonl");
        let mut w = ArtifactWriter::create(&p, "run", "extract", "buyers").unwrap();
        for i in 0..10 {
            w.write(&json!({"i": i})).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(read_streamed(&p).unwrap(), 10);
        let full = fs::read(&p).unwrap();
        // Another size is refused at once, an edit of the same size at the end.
        fs::write(&p, &full[..full.len() - 5]).unwrap();
        let err = ArtifactReader::open_streamed(&p).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let mut edited = full.clone();
        edited[3] = b'j';
        fs::write(&p, &edited).unwrap();
        let mut r = ArtifactReader::open_streamed(&p).unwrap();
        let mut buf = String::new();
        for _ in 0..10 {
            assert!(r.next_line(&mut buf).unwrap());
        }
        let err = r.next_line(&mut buf).unwrap_err().to_string();
        assert!(err.contains("SHA-256"), "{err}");
        // Two lines made one, same size: the count tells.
        let mut joined = full.clone();
        let nl = joined.iter().position(|b| *b == b'\n').unwrap();
        joined[nl] = b' ';
        fs::write(&p, &joined).unwrap();
        let err = read_streamed(&p).unwrap_err().to_string();
        assert!(err.contains("9 lines"), "{err}");
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
