//! An ordered parallel map over the lines of an artifact: a reader thread
//! cuts the file into chunks of lines, worker threads map each chunk, and the
//! caller receives the results chunk by chunk in file order. Memory is
//! bounded by the number of chunks in flight, never by the artifact's size.
//!
//! Nothing is lost quietly: a panic while mapping a line fails the whole map
//! with an error naming the line, and a map that delivered fewer chunks than
//! were read fails too (docs/safety.md, "No silent truncation").

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::artifact::ArtifactReader;
use crate::error::{Error, Result};

/// A chunk of lines: its sequence number, first line number, and lines.
type Job = (u64, u64, Vec<String>);

/// Test hook (docs/safety.md): `MIGRATE_TEST_PANIC_AT=<entity>:<line>` makes
/// the worker mapping that line of an artifact named `<entity>.jsonl` panic,
/// as a bug in a mapping would. Unset, it costs one lookup per map.
pub const PANIC_HOOK_VAR: &str = "MIGRATE_TEST_PANIC_AT";

/// The line of `path` the test hook asks to panic at, if any.
fn panic_hook(path: &Path) -> Option<u64> {
    let value = std::env::var(PANIC_HOOK_VAR).ok()?;
    let (entity, line) = value.rsplit_once(':')?;
    let stem = path.file_name()?.to_str()?.strip_suffix(".jsonl")?;
    (stem == entity).then(|| line.parse().ok())?
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Names the entity and phase in an error of [`map_lines`] (a lost line or
/// a panic), which knows only the artifact.
pub fn in_step(e: Error, phase: &str, entity: &str) -> Error {
    match e {
        Error::Incomplete(m) => Error::Incomplete(format!("{phase} of {entity}: {m}")),
        other => other,
    }
}

/// Lines per chunk handed to a worker. With the chunks in flight below this
/// sets the map's memory: at 1,024 lines validate of a million sales peaked at
/// 71-74 MB and transform at 55-58 MB, at 256 lines 53 MB and 45 MB, with the
/// same CPU time (docs/performance.md, "Run h").
const CHUNK_LINES: usize = 256;

/// Chunks in flight per worker: read, mapped or waiting for their turn.
/// Bounds the reorder buffer too, so a worker that falls behind stops the
/// reader instead of letting finished chunks pile up.
const CHUNKS_PER_WORKER: usize = 4;

/// How many workers to run: the machine's cores (at least 1).
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Maps every line of `reader` with `f` on `workers` threads; `sink` gets
/// each chunk's results in order, with the 1-based line number of its first
/// line. Stops at the first error from the reader, `f` or `sink`.
pub fn map_lines<T, F, S>(
    mut reader: ArtifactReader,
    workers: usize,
    f: F,
    mut sink: S,
) -> Result<()>
where
    T: Send + 'static,
    F: Fn(&str) -> Result<T> + Send + Sync + 'static,
    S: FnMut(u64, Vec<T>) -> Result<()>,
{
    let workers = workers.max(1);
    let (work_tx, work_rx) = sync_channel::<Job>(workers * 2);
    let (done_tx, done_rx) = sync_channel::<(u64, u64, Result<Vec<T>>)>(workers * 2);
    let work_rx = Arc::new(Mutex::new(work_rx));
    // One credit per chunk in flight: the reader takes one before reading a
    // chunk, the collector gives it back once the sink has taken the chunk.
    let in_flight = workers * CHUNKS_PER_WORKER;
    let (credit_tx, credit_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        credit_tx.send(()).expect("room for every credit");
    }
    let f = Arc::new(f);
    let path: Arc<PathBuf> = Arc::new(reader.path().to_path_buf());
    let hook = panic_hook(&path);
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (rx, tx, f, path) = (work_rx.clone(), done_tx.clone(), f.clone(), path.clone());
        handles.push(std::thread::spawn(move || worker(rx, tx, f, &path, hook)));
    }
    // Only the workers may keep the two channels open: once they have
    // stopped (the collector gone after an error), a reader blocked on a full
    // work channel must see it closed, not wait forever.
    drop(work_rx);
    drop(done_tx);
    // Returns how many chunks it handed to the workers.
    let reader_handle = std::thread::spawn(move || -> Result<u64> {
        let mut seq = 0;
        let mut line_no = 1;
        loop {
            if credit_rx.recv().is_err() {
                return Ok(seq); // the consumer stopped
            }
            let mut chunk = Vec::with_capacity(CHUNK_LINES);
            let mut buf = String::new();
            while chunk.len() < CHUNK_LINES && reader.next_line(&mut buf)? {
                chunk.push(std::mem::take(&mut buf));
            }
            if chunk.is_empty() {
                return Ok(seq);
            }
            let n = chunk.len() as u64;
            if work_tx.send((seq, line_no, chunk)).is_err() {
                return Ok(seq); // the consumer stopped
            }
            seq += 1;
            line_no += n;
        }
    });
    let result = collect(done_rx, credit_tx, &mut sink);
    // Unblock and join everything whatever happened.
    let read = reader_handle.join().unwrap_or_else(|p| {
        Err(Error::Incomplete(format!(
            "the thread reading {} panicked: {}",
            path.display(),
            panic_text(p.as_ref())
        )))
    });
    let mut died = None;
    for h in handles {
        if let Err(p) = h.join() {
            died.get_or_insert(panic_text(p.as_ref()));
        }
    }
    let collected = result?;
    let sent = read?;
    if let Some(message) = died {
        return Err(Error::Incomplete(format!(
            "a worker mapping {} panicked: {message}; nothing was kept",
            path.display()
        )));
    }
    if collected != sent {
        return Err(Error::Incomplete(format!(
            "{} chunk(s) of {} read but never mapped; nothing was kept",
            sent - collected.min(sent),
            path.display()
        )));
    }
    Ok(())
}

fn worker<T, F>(
    rx: Arc<Mutex<Receiver<Job>>>,
    tx: SyncSender<(u64, u64, Result<Vec<T>>)>,
    f: Arc<F>,
    path: &Path,
    hook: Option<u64>,
) where
    F: Fn(&str) -> Result<T>,
{
    loop {
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((seq, line_no, lines)) = job else {
            return;
        };
        let mut out = Ok(Vec::with_capacity(lines.len()));
        for (i, line) in lines.iter().enumerate() {
            let n = line_no + i as u64;
            let mapped = catch_unwind(AssertUnwindSafe(|| {
                if hook == Some(n) {
                    panic!("{PANIC_HOOK_VAR} asked for a panic here");
                }
                f(line)
            }));
            match (mapped, &mut out) {
                (Ok(Ok(v)), Ok(values)) => values.push(v),
                (Ok(Err(e)), _) => {
                    out = Err(e);
                    break;
                }
                (Err(p), _) => {
                    out = Err(Error::Incomplete(format!(
                        "mapping line {n} of {} panicked: {}; nothing was kept",
                        path.display(),
                        panic_text(p.as_ref())
                    )));
                    break;
                }
                (Ok(Ok(_)), Err(_)) => unreachable!("stopped at the first error"),
            }
        }
        if tx.send((seq, line_no, out)).is_err() {
            return;
        }
    }
}

/// Hands the chunks to `sink` in order; returns how many it handed.
fn collect<T, S>(
    done_rx: Receiver<(u64, u64, Result<Vec<T>>)>,
    credits: SyncSender<()>,
    sink: &mut S,
) -> Result<u64>
where
    S: FnMut(u64, Vec<T>) -> Result<()>,
{
    let mut pending: BTreeMap<u64, (u64, Result<Vec<T>>)> = BTreeMap::new();
    let mut next = 0u64;
    for (seq, line_no, out) in done_rx.iter() {
        pending.insert(seq, (line_no, out));
        while let Some((line_no, out)) = pending.remove(&next) {
            sink(line_no, out?)?;
            next += 1;
            // Never blocks: at most as many credits as the channel holds exist.
            let _ = credits.try_send(());
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::ArtifactWriter;

    #[test]
    fn keeps_order_and_stops_on_error() {
        let dir = std::env::temp_dir().join(format!("migrate-par-{}", uuid::Uuid::new_v4()));
        crate::artifact::create_private_dir(&dir).unwrap();
        let p = dir.join("n.jsonl");
        let mut w = ArtifactWriter::create(&p, "r", "x", "y").unwrap();
        for i in 0..10_000u64 {
            w.write(&i).unwrap();
        }
        w.finish().unwrap();
        let mut seen = Vec::new();
        map_lines(
            ArtifactReader::open(&p).unwrap(),
            3,
            |l| Ok(l.parse::<u64>().unwrap() * 2),
            |_, v| {
                seen.extend(v);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..10_000u64).map(|i| i * 2).collect::<Vec<_>>());
        let err = map_lines(
            ArtifactReader::open(&p).unwrap(),
            2,
            |l| {
                if l == "5000" {
                    Err(Error::Incomplete("bad".into()))
                } else {
                    Ok(())
                }
            },
            |_, _| Ok(()),
        );
        assert!(err.is_err());
        // A panic on one line fails the map, naming the line; nothing after
        // it reaches the sink.
        let mut seen = 0u64;
        let err = map_lines(
            ArtifactReader::open(&p).unwrap(),
            3,
            |l| {
                if l == "9000" {
                    panic!("bug in a mapping");
                }
                Ok(())
            },
            |_, v| {
                seen += v.len() as u64;
                Ok(())
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 9001 of") && err.contains("bug in a mapping"),
            "{err}"
        );
        assert!(seen <= 9000, "{seen}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
