//! The write pipeline shared by load and rollback: a reader thread streams
//! batches (at most 25 writes each) through a bounded channel, up to
//! `concurrency` BatchWriteItem requests are in flight on the one client, and
//! each finished batch is handed back in completion order. The caller decides
//! what a finished batch means (checkpoint, failed file) and whether to go on.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use crate::dynamo::{BatchOutcome, RetryPolicy, Terminal, Write, WriteStats, write_batch};

/// A batch of writes; `first` is the artifact index of its first entry.
pub struct Batch {
    pub first: u64,
    pub writes: Vec<(u64, Write)>,
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
    client: &Client,
    table: &str,
    policy: &RetryPolicy,
    concurrency: usize,
    batch_delay: Duration,
    stats: Arc<WriteStats>,
    mut rx: mpsc::Receiver<Batch>,
    cancelled: &dyn Fn() -> bool,
    mut on_done: F,
) -> Ended
where
    F: FnMut(Done) -> Control,
{
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;
    let mut terminal = None;
    let mut exhausted = false;
    loop {
        while !stopping && !exhausted && in_flight.len() < concurrency {
            if cancelled() {
                stopping = true;
                break;
            }
            match rx.recv().await {
                Some(batch) => {
                    let (client, table, policy, stats) = (
                        client.clone(),
                        table.to_string(),
                        policy.clone(),
                        stats.clone(),
                    );
                    in_flight.push(async move {
                        let len = batch.writes.len() as u64;
                        let r = write_batch(&client, &table, batch.writes, &policy, &stats).await;
                        (batch.first, len, r)
                    });
                    if !batch_delay.is_zero() {
                        tokio::time::sleep(batch_delay).await;
                    }
                }
                None => exhausted = true,
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
