//! The parts of an S3 import: the validated artifact's items as DynamoDB JSON
//! lines (`{"Item":{…}}`, the very wire JSON the BatchWriteItem path sends),
//! GZIP-compressed, cut every `part_bytes` uncompressed bytes. Each part is
//! written to one local file while it is made, hashed (SHA-256) on the way,
//! and handed on; the uploader deletes it once S3 holds it, so at most a
//! few parts are ever on disk (docs/import.md).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::artifact::ArtifactReader;
use crate::dynamo;
use crate::error::{Error, Result};

/// DynamoDB imports at most this many S3 objects.
pub const MAX_IMPORT_OBJECTS: u32 = 50_000;

/// One finished part, on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFile {
    /// 1-based; the object is `part-<number>.json.gz`.
    pub number: u32,
    pub path: PathBuf,
    /// The artifact entry of its first item, and how many it holds.
    pub first: u64,
    pub items: u64,
    /// DynamoDB JSON before compression, and the file's size.
    pub raw_bytes: u64,
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// The object name of part `number`.
pub fn object_name(number: u32) -> String {
    format!("part-{number:05}.json.gz")
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The part being written.
struct Open {
    number: u32,
    path: PathBuf,
    first: u64,
    items: u64,
    raw_bytes: u64,
    gz: GzEncoder<Hashing<BufWriter<File>>>,
}

impl Open {
    fn create(dir: &Path, number: u32, first: u64) -> Result<Open> {
        let path = dir.join(object_name(number));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let sink = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        Ok(Open {
            number,
            path,
            first,
            items: 0,
            raw_bytes: 0,
            // Level 1: a part is written once and read once by the import;
            // the higher levels cost more CPU than they save in upload
            // (docs/performance.md "The S3 import path").
            gz: GzEncoder::new(sink, Compression::fast()),
        })
    }

    fn finish(self) -> Result<PartFile> {
        let path = self.path;
        let mut sink = self.gz.finish().map_err(|e| Error::io(&path, e))?;
        sink.flush().map_err(|e| Error::io(&path, e))?;
        Ok(PartFile {
            number: self.number,
            first: self.first,
            items: self.items,
            raw_bytes: self.raw_bytes,
            bytes: sink.bytes,
            sha256: sink.hash.finalize().into(),
            path,
        })
    }
}

/// Writes the parts of `reader`'s entries from `start` on, numbering them
/// from `first_number`, into `dir`, each cut once it holds `part_bytes` of
/// DynamoDB JSON. Each finished part goes to `emit`; `emit` returning false
/// stops the writing (the upload stopped). An artifact with no entries
/// from `start` still gives one (empty) part when `first_number` is 1, so
/// the import has an object to read.
pub fn write_parts(
    mut reader: ArtifactReader,
    start: u64,
    first_number: u32,
    part_bytes: u64,
    dir: &Path,
    mut emit: impl FnMut(PartFile) -> bool,
) -> Result<()> {
    let artifact = reader.path().to_path_buf();
    let mut buf = String::new();
    let mut line = Vec::with_capacity(4096);
    let mut index = 0u64;
    let mut number = first_number;
    let mut open: Option<Open> = None;
    while reader.next_line(&mut buf)? {
        if index < start {
            index += 1;
            continue;
        }
        line.clear();
        line.extend_from_slice(br#"{"Item":"#);
        dynamo::item_wire_json(&buf, &mut line)
            .map_err(|e| Error::artifact(&artifact, format!("line {}: {e}", index + 1)))?;
        line.extend_from_slice(b"}\n");
        if open.is_none() {
            if number > MAX_IMPORT_OBJECTS {
                return Err(too_many_parts(part_bytes));
            }
            open = Some(Open::create(dir, number, index)?);
            number += 1;
        }
        let part = open.as_mut().expect("opened above");
        part.gz
            .write_all(&line)
            .map_err(|e| Error::io(&part.path, e))?;
        part.items += 1;
        part.raw_bytes += line.len() as u64;
        if part.raw_bytes >= part_bytes && !emit(open.take().expect("open").finish()?) {
            return Ok(());
        }
        index += 1;
    }
    if open.is_none() && first_number == 1 && number == 1 {
        open = Some(Open::create(dir, number, index)?);
    }
    if let Some(part) = open {
        emit(part.finish()?);
    }
    Ok(())
}

fn too_many_parts(part_bytes: u64) -> Error {
    Error::Incomplete(format!(
        "the import would need more than {MAX_IMPORT_OBJECTS} S3 objects, the most one import reads: \
         raise target.importPartBytes (now {part_bytes})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::ArtifactWriter;
    use std::io::Read;

    fn artifact(dir: &Path, n: u64) -> PathBuf {
        let path = dir.join("sales.jsonl");
        let mut w = ArtifactWriter::create(&path, "r1", "validate", "sales").unwrap();
        for i in 0..n {
            w.write(&serde_json::json!({
                "PK": format!("SALE#{i}"), "SK": "METADATA", "amount": 12.5,
                "tags": ["a", "b"], "note": null, "ok": true
            }))
            .unwrap();
        }
        w.finish().unwrap();
        path
    }

    fn gunzip(path: &Path) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn parts_hold_every_item_once_as_dynamodb_json() {
        let dir = std::env::temp_dir().join(format!("migrate-parts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = artifact(&dir, 100);
        let mut parts = Vec::new();
        write_parts(
            ArtifactReader::open(&path).unwrap(),
            0,
            1,
            2_000,
            &dir,
            |p| {
                parts.push(p);
                true
            },
        )
        .unwrap();
        assert!(parts.len() > 2, "cut by size: {} parts", parts.len());
        let mut lines = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.number, i as u32 + 1);
            let bytes = std::fs::read(&p.path).unwrap();
            assert_eq!(p.bytes, bytes.len() as u64);
            assert_eq!(p.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
            let text = gunzip(&p.path);
            assert_eq!(p.raw_bytes, text.len() as u64);
            assert_eq!(p.items, text.lines().count() as u64);
            lines.extend(text.lines().map(str::to_string));
        }
        assert_eq!(lines.len(), 100);
        assert_eq!(
            lines[7],
            r#"{"Item":{"PK":{"S":"SALE#7"},"SK":{"S":"METADATA"},"amount":{"N":"12.5"},"note":{"NULL":true},"ok":{"BOOL":true},"tags":{"L":[{"S":"a"},{"S":"b"}]}}}"#
        );
        // Resuming after part 2 writes the same parts 3.. again.
        let skip = parts[0].items + parts[1].items;
        let mut again = Vec::new();
        write_parts(
            ArtifactReader::open(&path).unwrap(),
            skip,
            3,
            2_000,
            &dir,
            |p| {
                again.push(p);
                true
            },
        )
        .unwrap();
        assert_eq!(again, parts[2..].to_vec());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_artifact_gives_one_empty_part() {
        let dir = std::env::temp_dir().join(format!("migrate-parts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = artifact(&dir, 0);
        let mut parts = Vec::new();
        write_parts(
            ArtifactReader::open(&path).unwrap(),
            0,
            1,
            2_000,
            &dir,
            |p| {
                parts.push(p);
                true
            },
        )
        .unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].items, gunzip(&parts[0].path)), (0, String::new()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
