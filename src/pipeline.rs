//! The write pipeline shared by load and rollback: a reader thread streams
//! batches (at most 25 writes each), a chunk of batches at a time, through a
//! bounded channel, up to
//! `concurrency` BatchWriteItem requests are in flight on the one client, and
//! each finished batch is handed back in completion order. The caller decides
//! what a finished batch means (checkpoint, failed file) and whether to go on.
//!
//! A batch DynamoDB refuses as a whole for the sake of one item in it
//! (`ValidationException`) is split in halves until that item is alone: it
//! alone fails, with the server's message, and the others are written
//! (docs/safety.md, "Poison items").

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use crate::dynamo::{
    BatchError, BatchOutcome, CallStats, RetryPolicy, Target, Terminal, Write, write_batch,
};

/// A batch of writes; `first` is the artifact index of its first entry.
pub struct Batch {
    pub first: u64,
    pub writes: Vec<(u64, Write)>,
}

/// Batches that cross the channel together. Against a server slower than
/// the reader the channel is full, and every message taken off it wakes the
/// reader thread again: a chunk of 8 wakes it once per 200 items, not per 25.
pub const CHUNK_BATCHES: usize = 8;

/// The channel from a reader thread to [`run`], holding about `batches`
/// batches.
pub fn channel(batches: usize) -> (mpsc::Sender<Vec<Batch>>, mpsc::Receiver<Vec<Batch>>) {
    mpsc::channel(batches.div_ceil(CHUNK_BATCHES).max(1))
}

/// Called with each chunk before it is sent; an error stops the reader
/// before the chunk's writes are sent (the load's ledger, backup::ledger).
pub type BeforeSend = Box<dyn FnMut(&[Batch]) -> crate::error::Result<()>>;

/// The reader's side: groups writes (with their artifact indexes) into
/// batches of `batch_size`, batches into chunks, and sends full chunks.
pub struct Batcher {
    tx: mpsc::Sender<Vec<Batch>>,
    batch_size: usize,
    batch: Batch,
    chunk: Vec<Batch>,
    before_send: Option<BeforeSend>,
    error: Option<crate::error::Error>,
}

impl Batcher {
    pub fn new(tx: mpsc::Sender<Vec<Batch>>, batch_size: usize) -> Batcher {
        Batcher {
            tx,
            batch_size,
            batch: Batch {
                first: 0,
                writes: Vec::with_capacity(batch_size),
            },
            chunk: Vec::with_capacity(CHUNK_BATCHES),
            before_send: None,
            error: None,
        }
    }

    /// Runs `hook` on every chunk before it is sent.
    pub fn before_send(mut self, hook: BeforeSend) -> Batcher {
        self.before_send = Some(hook);
        self
    }

    /// The hook's error, when that is why [`Batcher::push`] said stop.
    pub fn take_error(&mut self) -> Option<crate::error::Error> {
        self.error.take()
    }

    /// Adds one write; `false` once the pipeline has stopped taking batches
    /// (the reader should stop).
    pub fn push(&mut self, index: u64, write: Write) -> bool {
        if self.batch.writes.is_empty() {
            self.batch.first = index;
        }
        self.batch.writes.push((index, write));
        if self.batch.writes.len() < self.batch_size {
            return true;
        }
        let full = std::mem::replace(
            &mut self.batch,
            Batch {
                first: 0,
                writes: Vec::with_capacity(self.batch_size),
            },
        );
        self.chunk.push(full);
        self.chunk.len() < CHUNK_BATCHES || self.send()
    }

    fn send(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BATCHES));
        if let Some(hook) = &mut self.before_send
            && let Err(e) = hook(&chunk)
        {
            self.error = Some(e);
            return false;
        }
        self.tx.blocking_send(chunk).is_ok()
    }

    /// Sends what is left (a short last batch, a short last chunk); the
    /// hook's error, if it refused the last chunk.
    pub fn finish(mut self) -> crate::error::Result<()> {
        if !self.batch.writes.is_empty() {
            let last = std::mem::replace(
                &mut self.batch,
                Batch {
                    first: 0,
                    writes: Vec::new(),
                },
            );
            self.chunk.push(last);
        }
        if !self.chunk.is_empty() {
            self.send();
        }
        self.error.map_or(Ok(()), Err)
    }
}

/// A batch that is settled: every entry written or failed.
pub struct Done {
    pub first: u64,
    pub len: u64,
    pub outcome: BatchOutcome,
}

/// What the caller wants after a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop sending new batches; let the ones in flight finish.
    Stop,
}

/// Why the pipeline ended early.
pub enum Ended {
    /// All batches settled.
    Complete,
    /// The caller said stop (or cancellation), in-flight batches settled.
    Stopped,
    /// A terminal error; in-flight batches settled.
    Terminal(Terminal),
}

/// Sends every batch from `rx` to `table`, at most `concurrency` at a time.
#[allow(clippy::too_many_arguments)]
pub async fn run<F>(
    target: &dyn Target,
    table: &str,
    policy: &RetryPolicy,
    concurrency: usize,
    batch_delay: Duration,
    stats: Arc<CallStats>,
    mut rx: mpsc::Receiver<Vec<Batch>>,
    cancelled: &dyn Fn() -> bool,
    mut on_done: F,
) -> Ended
where
    F: FnMut(Done) -> Control,
{
    let mut in_flight = FuturesUnordered::new();
    let mut queue: VecDeque<Batch> = VecDeque::new();
    let mut stopping = false;
    let mut terminal = None;
    let mut exhausted = false;
    loop {
        while !stopping && !exhausted && in_flight.len() < concurrency {
            if cancelled() {
                stopping = true;
                break;
            }
            if queue.is_empty() {
                match rx.recv().await {
                    Some(chunk) => queue.extend(chunk),
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            match queue.pop_front() {
                Some(batch) => {
                    let stats = stats.clone();
                    in_flight.push(async move {
                        let len = batch.writes.len() as u64;
                        let r = write_isolating(target, table, batch.writes, policy, &stats).await;
                        (batch.first, len, r)
                    });
                    if !batch_delay.is_zero() {
                        tokio::time::sleep(batch_delay).await;
                    }
                }
                None => continue, // an empty chunk
            }
        }
        let Some((first, len, result)) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(outcome) => {
                if on_done(Done {
                    first,
                    len,
                    outcome,
                }) == Control::Stop
                {
                    stopping = true;
                }
            }
            Err(t) => {
                stopping = true;
                if terminal.is_none() {
                    terminal = Some(t);
                }
            }
        }
        if cancelled() {
            stopping = true;
        }
    }
    match terminal {
        Some(t) => Ended::Terminal(t),
        None if stopping => Ended::Stopped,
        None => Ended::Complete,
    }
}

/// Writes a batch with [`write_batch`]; when DynamoDB refuses it for the
/// sake of an item, writes each half of it the same way, until the refused
/// item is alone and fails with the server's message. A terminal error stops
/// at once (what was written so far is not confirmed, and is written again
/// on `--resume`).
pub async fn write_isolating(
    target: &dyn Target,
    table: &str,
    entries: Vec<(u64, Write)>,
    policy: &RetryPolicy,
    stats: &CallStats,
) -> Result<BatchOutcome, Terminal> {
    let mut outcome = BatchOutcome::default();
    // Parts still to write, the first in artifact order on top.
    let mut parts = vec![entries];
    while let Some(part) = parts.pop() {
        match write_batch(target, table, part, policy, stats).await {
            Ok(o) => {
                outcome.written += o.written;
                outcome.failed.extend(o.failed);
            }
            Err(BatchError::Terminal(t)) => return Err(t),
            Err(BatchError::Refused {
                written,
                mut entries,
                message,
            }) => {
                outcome.written += written;
                if entries.len() == 1 {
                    let (index, write) = entries.pop().expect("one entry");
                    stats
                        .refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        "table {table} refused item {index} ({}): {message}",
                        write.describe_key()
                    );
                    outcome.failed.push((index, message));
                } else {
                    let second = entries.split_off(entries.len() / 2);
                    parts.push(second);
                    parts.push(entries);
                }
            }
        }
    }
    outcome.failed.sort_by_key(|(i, _)| *i);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(i: u64) -> Write {
        Write::put_json(&format!(r#"{{"PK":"P#{i}","SK":"METADATA"}}"#)).unwrap()
    }

    #[test]
    fn batcher_sends_full_batches_in_chunks_and_the_rest_at_the_end() {
        let (tx, mut rx) = channel(1000);
        let mut b = Batcher::new(tx, 25);
        // Indexes as a resumed load gives them: from 10, contiguous.
        for i in 10..10 + 25 * 9 + 3 {
            assert!(b.push(i, write(i)));
        }
        b.finish().unwrap();
        let chunks: Vec<Vec<Batch>> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [CHUNK_BATCHES, 2],
            "8 full batches, then the 9th and the short one"
        );
        let batches: Vec<&Batch> = chunks.iter().flatten().collect();
        let lens: Vec<usize> = batches.iter().map(|b| b.writes.len()).collect();
        assert_eq!(lens, [25, 25, 25, 25, 25, 25, 25, 25, 25, 3]);
        let mut next = 10;
        for batch in batches {
            assert_eq!(batch.first, next, "first is the index of the first entry");
            for (i, _) in &batch.writes {
                assert_eq!(*i, next, "every entry once, in order");
                next += 1;
            }
        }
        assert_eq!(next, 10 + 25 * 9 + 3);
    }

    #[test]
    fn batcher_stops_when_the_pipeline_is_gone() {
        let (tx, rx) = channel(1000);
        drop(rx);
        let mut b = Batcher::new(tx, 2);
        let mut accepted = 0;
        while b.push(accepted, write(accepted)) {
            accepted += 1;
            assert!(accepted < 100, "push must report the closed channel");
        }
        assert_eq!(
            accepted as usize,
            2 * CHUNK_BATCHES - 1,
            "told at the first full chunk"
        );
    }
}
