//! An ordered parallel map over the lines of an artifact: a reader thread
//! cuts the file into chunks of lines, worker threads map each chunk, and the
//! caller receives the results chunk by chunk in file order. Memory is
//! bounded by the number of chunks in flight, never by the artifact's size.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::artifact::ArtifactReader;
use crate::error::{Error, Result};

/// A chunk of lines: its sequence number, first line number, and lines.
type Job = (u64, u64, Vec<String>);

/// Lines per chunk handed to a worker.
const CHUNK_LINES: usize = 1024;

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
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (rx, tx, f) = (work_rx.clone(), done_tx.clone(), f.clone());
        handles.push(std::thread::spawn(move || worker(rx, tx, f)));
    }
    drop(done_tx);
    let reader_handle = std::thread::spawn(move || -> Result<()> {
        let mut seq = 0;
        let mut line_no = 1;
        loop {
            if credit_rx.recv().is_err() {
                return Ok(()); // the consumer stopped
            }
            let mut chunk = Vec::with_capacity(CHUNK_LINES);
            let mut buf = String::new();
            while chunk.len() < CHUNK_LINES && reader.next_line(&mut buf)? {
                chunk.push(std::mem::take(&mut buf));
            }
            if chunk.is_empty() {
                return Ok(());
            }
            let n = chunk.len() as u64;
            if work_tx.send((seq, line_no, chunk)).is_err() {
                return Ok(()); // the consumer stopped
            }
            seq += 1;
            line_no += n;
        }
    });
    let result = collect(done_rx, credit_tx, &mut sink);
    // Unblock and join everything whatever happened.
    let read = reader_handle
        .join()
        .unwrap_or_else(|_| Err(Error::Incomplete("reader thread panicked".into())));
    for h in handles {
        let _ = h.join();
    }
    result.and(read)
}

fn worker<T, F>(
    rx: Arc<Mutex<Receiver<Job>>>,
    tx: SyncSender<(u64, u64, Result<Vec<T>>)>,
    f: Arc<F>,
) where
    F: Fn(&str) -> Result<T>,
{
    loop {
        let job = rx.lock().expect("work queue").recv();
        let Ok((seq, line_no, lines)) = job else {
            return;
        };
        let out: Result<Vec<T>> = lines.iter().map(|l| f(l)).collect();
        if tx.send((seq, line_no, out)).is_err() {
            return;
        }
    }
}

fn collect<T, S>(
    done_rx: Receiver<(u64, u64, Result<Vec<T>>)>,
    credits: SyncSender<()>,
    sink: &mut S,
) -> Result<()>
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
    Ok(())
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
        std::fs::remove_dir_all(dir).unwrap();
    }
}
