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

/// Raw DynamoDB JSON of a part, from the encoder to the compressor of
/// that part.
struct Block {
    number: u32,
    first: u64,
    data: Vec<u8>,
    items: u64,
    last: bool,
}

/// Raw bytes handed to a compressor at a time.
const BLOCK_BYTES: usize = 1 << 20;
/// Parts compressed at once: GZIP is most of the CPU of this path
/// (docs/performance.md "The S3 import path").
const COMPRESSORS: u32 = 2;

/// Writes the parts of `reader`'s entries from `start` on, numbering them
/// from `first_number`, into `dir`, each cut once it holds `part_bytes` of
/// DynamoDB JSON. This thread reads and encodes; consecutive parts are
/// compressed by [`COMPRESSORS`] threads at once, and handed to `emit` in
/// order; `emit` returning false stops the writing (the upload stopped).
/// The cuts depend on the data only, so a resumed upload writes the same
/// parts. An artifact with no entries from `start` still gives one (empty)
/// part when `first_number` is 1, so the import has an object to read.
pub fn write_parts(
    mut reader: ArtifactReader,
    start: u64,
    first_number: u32,
    part_bytes: u64,
    dir: &Path,
    emit: impl FnMut(PartFile) -> bool + Send,
) -> Result<()> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
    // The next part to hand on: no part is begun more than
    // `COMPRESSORS + 1` ahead of it, so few part files are ever on disk.
    let handed = (
        std::sync::Mutex::new(first_number),
        std::sync::Condvar::new(),
    );
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<PartFile>>();
        let mut workers = Vec::new();
        let mut senders = Vec::new();
        for _ in 0..COMPRESSORS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(2);
            senders.push(tx);
            let done = done_tx.clone();
            workers.push(scope.spawn(move || compress(rx, dir, done)));
        }
        drop(done_tx);
        let (stop, handed) = (&stop, &handed);
        let collector = scope.spawn(move || collect(done_rx, first_number, emit, stop, handed));

        let encoded = (|| -> Result<()> {
            let artifact = reader.path().to_path_buf();
            let mut buf = String::new();
            let mut block: Vec<u8> = Vec::with_capacity(BLOCK_BYTES + 64 * 1024);
            let mut index = 0u64;
            let mut number = first_number;
            // The open part: its number, first entry, raw bytes so far, and
            // the items of the block being filled.
            let mut open: Option<(u32, u64, u64, u64)> = None;
            let send = |b: Block| senders[(b.number % COMPRESSORS) as usize].send(b).is_ok();
            while reader.next_line(&mut buf)? {
                if index < start {
                    index += 1;
                    continue;
                }
                if stopped() {
                    return Ok(());
                }
                let (n, first, raw, items) = match open {
                    Some(o) => o,
                    None => {
                        if number > MAX_IMPORT_OBJECTS {
                            return Err(too_many_parts(part_bytes));
                        }
                        let (next, turned) = handed;
                        let mut next = next.lock().expect("not poisoned");
                        while number > *next + COMPRESSORS && !stopped() {
                            next = turned.wait(next).expect("not poisoned");
                        }
                        drop(next);
                        if stopped() {
                            return Ok(());
                        }
                        number += 1;
                        (number - 1, index, 0, 0)
                    }
                };
                let before = block.len();
                block.extend_from_slice(br#"{"Item":"#);
                dynamo::item_wire_json(&buf, &mut block)
                    .map_err(|e| Error::artifact(&artifact, format!("line {}: {e}", index + 1)))?;
                block.extend_from_slice(b"}\n");
                let raw = raw + (block.len() - before) as u64;
                let items = items + 1;
                index += 1;
                let last = raw >= part_bytes;
                if last || block.len() >= BLOCK_BYTES {
                    let data =
                        std::mem::replace(&mut block, Vec::with_capacity(BLOCK_BYTES + 64 * 1024));
                    if !send(Block {
                        number: n,
                        first,
                        data,
                        items,
                        last,
                    }) {
                        return Ok(());
                    }
                    open = (!last).then_some((n, first, raw, 0));
                } else {
                    open = Some((n, first, raw, items));
                }
            }
            match open {
                Some((n, first, _, items)) => {
                    send(Block {
                        number: n,
                        first,
                        data: block,
                        items,
                        last: true,
                    });
                }
                None if first_number == 1 && number == 1 => {
                    send(Block {
                        number: 1,
                        first: index,
                        data: Vec::new(),
                        items: 0,
                        last: true,
                    });
                }
                None => {}
            }
            Ok(())
        })();
        drop(senders);
        let compressed = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Incomplete("a part compressor panicked".into())))
            })
            .collect::<Result<Vec<()>>>();
        let collected = collector
            .join()
            .unwrap_or_else(|_| Err(Error::Incomplete("the part collector panicked".into())));
        encoded.and(compressed.map(|_| ())).and(collected)
    })
}

/// A compressor: writes the parts whose blocks it is sent; its failure
/// goes to the collector, which stops everything.
fn compress(
    rx: std::sync::mpsc::Receiver<Block>,
    dir: &Path,
    done: std::sync::mpsc::Sender<Result<PartFile>>,
) -> Result<()> {
    if let Err(e) = compress_parts(rx, dir, &done) {
        let _ = done.send(Err(e));
    }
    Ok(())
}

fn compress_parts(
    rx: std::sync::mpsc::Receiver<Block>,
    dir: &Path,
    done: &std::sync::mpsc::Sender<Result<PartFile>>,
) -> Result<()> {
    let mut open: Option<Open> = None;
    for b in rx {
        let part = match &mut open {
            Some(p) if p.number == b.number => p,
            _ => open.insert(Open::create(dir, b.number, b.first)?),
        };
        part.gz
            .write_all(&b.data)
            .map_err(|e| Error::io(&part.path, e))?;
        part.items += b.items;
        part.raw_bytes += b.data.len() as u64;
        if b.last {
            let finished = open.take().expect("opened above").finish();
            let failed = finished.is_err();
            if done.send(finished).is_err() || failed {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Hands the finished parts to `emit` in order; stops everything at the
/// first error or when `emit` says so.
fn collect(
    done: std::sync::mpsc::Receiver<Result<PartFile>>,
    first_number: u32,
    mut emit: impl FnMut(PartFile) -> bool,
    stop: &std::sync::atomic::AtomicBool,
    handed: &(std::sync::Mutex<u32>, std::sync::Condvar),
) -> Result<()> {
    let halt = || {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        handed.1.notify_all();
    };
    let mut waiting = std::collections::BTreeMap::new();
    let mut next = first_number;
    for part in done {
        let part = part.inspect_err(|_| halt())?;
        waiting.insert(part.number, part);
        while let Some(p) = waiting.remove(&next) {
            next += 1;
            if !emit(p) {
                halt();
                return Ok(());
            }
            *handed.0.lock().expect("not poisoned") = next;
            handed.1.notify_all();
        }
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

    /// Every part `write_parts` hands on, from entry `start`, numbered from
    /// `first`, cut every 2,000 bytes.
    fn collect(path: &Path, start: u64, first: u32, dir: &Path) -> Vec<PartFile> {
        let mut parts = Vec::new();
        write_parts(
            ArtifactReader::open(path).unwrap(),
            start,
            first,
            2_000,
            dir,
            |p| {
                parts.push(p);
                true
            },
        )
        .unwrap();
        parts
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
        let parts = collect(&path, 0, 1, &dir);
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
        let again = collect(&path, skip, 3, &dir);
        assert_eq!(again, parts[2..].to_vec());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_artifact_gives_one_empty_part() {
        let dir = std::env::temp_dir().join(format!("migrate-parts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = artifact(&dir, 0);
        let parts = collect(&path, 0, 1, &dir);
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].items, gunzip(&parts[0].path)), (0, String::new()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
