//! Reading an artifact back, checked against its manifest in one of two ways:
//!
//! - [`ArtifactReader::open`] checks the whole file before the first line is
//!   handed out: for readers whose work cannot be taken back (a load, a
//!   rollback), so a damaged file stops them before they act.
//! - [`ArtifactReader::open_streamed`] checks while the lines are read and
//!   refuses at the end: for phases whose own output is atomic (transform,
//!   validate), which then keep nothing; the file is read once instead of
//!   twice (docs/design.md, "Artifacts").
//!
//! A plain file is checked by its size, line count and SHA-256; an age file
//! by its size and the SHA-256 of its head, age authenticating the rest
//! chunk by chunk (see the module's head).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{HEAD_BYTES, Manifest, hex, manifest_path, read_json};
use crate::crypt::{self, Key, Opened};
use crate::error::{Error, Result};

/// The stream under the line reader: the opened file, hashed and counted as
/// it is read when a streamed open owes the check at the end.
struct Counted {
    inner: Opened,
    hasher: Option<Sha256>,
    bytes: u64,
    last: u8,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
            self.bytes += n as u64;
            self.last = buf[n - 1];
        }
        Ok(n)
    }
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// Reads a checked artifact line by line.
#[derive(Debug)]
pub struct ArtifactReader {
    path: PathBuf,
    reader: BufReader<Counted>,
    line_no: u64,
    manifest: Manifest,
    modified: Option<std::time::SystemTime>,
    key: Option<&'static Key>,
    /// A streamed open: the check against the manifest is still owed and is
    /// made when the end is reached.
    owed: bool,
}

impl ArtifactReader {
    /// Checks the artifact at `path` against its manifest and opens it for
    /// reading. Refuses a missing manifest, a truncated, extended or edited
    /// file before a single line is read. Decrypted when the data directory
    /// is encrypted ([`crypt::current`]).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_key(path, crypt::current())
    }

    /// [`ArtifactReader::open`] with the key given.
    pub fn open_with_key(path: &Path, key: Option<&'static Key>) -> Result<Self> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let manifest = Self::verify(path)?;
        crypt::check_form(path, manifest.encrypted, key)?;
        if manifest.sha256_covers.is_some() {
            authenticate(path, key, manifest.records)?;
        }
        Self::start(path, manifest, modified, key, false)
    }

    /// Opens the artifact at `path` with only the checks that cost nothing
    /// (manifest present, size, an age file's head); the rest is made while
    /// it is read, and the read of the last line fails if the file differs
    /// from its manifest. For phases that keep nothing unless they read to
    /// the end without an error.
    pub fn open_streamed(path: &Path) -> Result<Self> {
        Self::open_streamed_with_key(path, crypt::current())
    }

    /// [`ArtifactReader::open_streamed`] with the key given.
    pub fn open_streamed_with_key(path: &Path, key: Option<&'static Key>) -> Result<Self> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let manifest = manifest_of(path)?;
        check_size(path, &manifest)?;
        if manifest.encrypted {
            let Some(head) = manifest.sha256_covers else {
                // An age file whose manifest covers it whole: checked first.
                return Self::open_with_key(path, key);
            };
            check_head(path, &manifest, head)?;
        }
        crypt::check_form(path, manifest.encrypted, key)?;
        Self::start(path, manifest, modified, key, true)
    }

    fn start(
        path: &Path,
        manifest: Manifest,
        modified: Option<std::time::SystemTime>,
        key: Option<&'static Key>,
        owed: bool,
    ) -> Result<Self> {
        let counted = Counted {
            inner: crypt::open_file(path, key)?,
            hasher: (owed && !manifest.encrypted).then(Sha256::new),
            bytes: 0,
            last: b'\n',
        };
        Ok(ArtifactReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, counted),
            line_no: 0,
            manifest,
            modified,
            key,
            owed,
        })
    }

    /// Opens an artifact checked moments ago (same manifest, same size and
    /// modification time) without checking it again: a second pass over it.
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
        Self::start(
            &self.path,
            self.manifest.clone(),
            self.modified,
            self.key,
            false,
        )
    }

    /// Verifies `path` against its manifest and returns the manifest: a
    /// plain file's size, lines and SHA-256, an age file's size and head.
    pub fn verify(path: &Path) -> Result<Manifest> {
        let manifest = manifest_of(path)?;
        if let Some(head) = manifest.sha256_covers {
            check_size(path, &manifest)?;
            check_head(path, &manifest, head)?;
            return Ok(manifest);
        }
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
        let sha = hex(&hasher.finalize());
        if manifest.encrypted {
            // An age file whose manifest covers it whole (written before
            // manifests covered heads): its lines are counted when it is read.
            compare(path, &manifest, bytes, manifest.records, b'\n', &sha)?;
        } else {
            compare(path, &manifest, bytes, lines, last, &sha)?;
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

    /// The manifest the file is checked against.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Reads the next line into `buf` (without its newline); false at the
    /// end, or an error there if a streamed open's check fails.
    pub fn next_line(&mut self, buf: &mut String) -> Result<bool> {
        buf.clear();
        let n = self
            .reader
            .read_line(buf)
            .map_err(|e| read_error(&self.path, self.manifest.encrypted, e))?;
        if n == 0 {
            if self.owed {
                self.owed = false;
                self.settle()?;
            }
            return Ok(false);
        }
        if buf.ends_with('\n') {
            buf.pop();
        }
        self.line_no += 1;
        Ok(true)
    }

    /// The check a streamed open owes, made at the end of the file.
    fn settle(&mut self) -> Result<()> {
        let counted = self.reader.get_mut();
        if self.manifest.encrypted {
            // age has authenticated every chunk and the end; the lines remain.
            let bytes = self.manifest.bytes;
            return compare(&self.path, &self.manifest, bytes, self.line_no, b'\n', "");
        }
        let sha = hex(&counted.hasher.take().unwrap_or_default().finalize());
        let (bytes, last) = (counted.bytes, counted.last);
        compare(&self.path, &self.manifest, bytes, self.line_no, last, &sha)
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

/// The manifest beside `path`, refusing a missing file or manifest.
fn manifest_of(path: &Path) -> Result<Manifest> {
    let mpath = manifest_path(path);
    if !path.exists() {
        return Err(Error::artifact(
            path,
            "does not exist (has the phase that writes it run?)",
        ));
    }
    read_json(&mpath).map_err(|_| {
        Error::artifact(
            path,
            format!("its manifest {} is missing or unreadable", mpath.display()),
        )
    })
}

/// Refuses a file whose size is not its manifest's.
fn check_size(path: &Path, manifest: &Manifest) -> Result<()> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if bytes != manifest.bytes {
        return Err(Error::artifact(
            path,
            format!(
                "has {bytes} bytes but its manifest says {}: it was truncated or changed after \
                 it was written; run its phase again",
                manifest.bytes
            ),
        ));
    }
    Ok(())
}

/// Refuses an age file whose head is not the one its manifest names.
fn check_head(path: &Path, manifest: &Manifest, bytes: u64) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::with_capacity(bytes.min(HEAD_BYTES) as usize);
    file.take(bytes)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    let sha = hex(&Sha256::digest(&head));
    if sha != manifest.sha256 {
        return Err(Error::artifact(
            path,
            format!(
                "SHA-256 {sha} of its head does not match its manifest ({}): it is another file \
                 or was edited after it was written; run its phase again",
                manifest.sha256
            ),
        ));
    }
    Ok(())
}

/// Reads a whole age file through its authentication (every chunk and the
/// end) and counts its lines, before anything of it is used.
fn authenticate(path: &Path, key: Option<&'static Key>, records: u64) -> Result<()> {
    let mut opened = crypt::open_file(path, key)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = opened
            .read(&mut buf)
            .map_err(|e| read_error(path, true, e))?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    if lines != records {
        return Err(Error::artifact(
            path,
            format!(
                "has {lines} lines but its manifest says {records} records: it is another file \
                 or was changed after it was written; run its phase again"
            ),
        ));
    }
    Ok(())
}

/// A failed read: for an age file, a chunk that does not authenticate.
fn read_error(path: &Path, encrypted: bool, e: io::Error) -> Error {
    if encrypted
        && matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        )
    {
        Error::artifact(
            path,
            format!(
                "does not decrypt to what was written ({e}): it was cut short or altered after \
                 it was written; run its phase again"
            ),
        )
    } else {
        Error::io(path, e)
    }
}

/// Refuses what was read when it is not what the manifest says; `sha` is
/// empty for an age file (checked by age).
fn compare(
    path: &Path,
    manifest: &Manifest,
    bytes: u64,
    lines: u64,
    last: u8,
    sha: &str,
) -> Result<()> {
    if bytes != manifest.bytes || lines != manifest.records || last != b'\n' {
        return Err(Error::artifact(
            path,
            format!(
                "has {bytes} bytes in {lines} lines but its manifest says {} bytes in {} records: \
                 it was truncated or changed after it was written; run its phase again",
                manifest.bytes, manifest.records
            ),
        ));
    }
    if !sha.is_empty() && sha != manifest.sha256 {
        return Err(Error::artifact(
            path,
            format!(
                "SHA-256 {sha} does not match its manifest ({}): it was edited after it was \
                 written; run its phase again",
                manifest.sha256
            ),
        ));
    }
    Ok(())
}
