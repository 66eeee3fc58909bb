//! Writing an artifact: records streamed into a temp file, counted and
//! hashed on the way, then fsynced, renamed into place and described by
//! its manifest (see the module's head).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    HEAD_BYTES, Manifest, create_private_file, hex, manifest_path, tmp_path, write_json_atomic,
};
use crate::crypt::{self, Key, Sealed};
use crate::error::{Error, Result};

/// Counts and hashes what is written below it: every byte of a plain file,
/// the first `limit` bytes of an age file (see the module's head).
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
    limit: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let hashed = (n as u64).min(self.limit.saturating_sub(self.bytes)) as usize;
        if hashed > 0 {
            self.hasher.update(&buf[..hashed]);
        }
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
            limit: if key.is_some() { HEAD_BYTES } else { u64::MAX },
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
            ..
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
            sha256_covers: encrypted.then_some(HEAD_BYTES),
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
