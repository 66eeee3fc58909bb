//! Fault-injecting HTTP/1.1 proxy for the DynamoDB JSON protocol (test support);
//! S3 requests pass through it too, named `S3.<METHOD>` for [`Faults::only_ops`].
//!
//! Sits between a DynamoDB client (the `migrate` binary, or an SDK client in a
//! test) and a DynamoDB-compatible server on loopback (e.g. moto server), and
//! injects, at seeded-random, throttling errors, 5xx errors, delays, and
//! partial `BatchWriteItem` results (held-back items returned in
//! `UnprocessedItems` and never forwarded), and `ValidationException`s for
//! every `BatchWriteItem` that holds a chosen item (as DynamoDB refuses a
//! whole batch for one item it cannot take).
//!
//! The proxy always runs on its own thread with its own tokio runtime, so a
//! test may start it synchronously ([`FaultProxy::start_blocking`]) and then run
//! a child process with `std::process::Command`, or start it from async code
//! ([`FaultProxy::start`]) without depending on the caller's runtime flavour.
//! Dropping the [`FaultProxy`] stops it and closes its port.
//!
//! Include it from an integration test with
//! `#[path = "support/fault_proxy.rs"] mod fault_proxy;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};

const TARGET_PREFIX: &str = "DynamoDB_20120810.";
const AMZ_JSON: &str = "application/x-amz-json-1.0";
const BATCH_WRITE: &str = "BatchWriteItem";

/// Which throttling error an injected throttle answers with (all HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThrottleKind {
    /// `ProvisionedThroughputExceededException`
    #[default]
    ProvisionedThroughputExceeded,
    /// `ThrottlingException`
    Throttling,
    /// `RequestLimitExceeded`
    RequestLimitExceeded,
    /// A seeded-random choice among the three, per injected throttle.
    Mixed,
}

/// Which server error an injected 5xx answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerErrorKind {
    /// 500 `InternalServerError`
    #[default]
    Internal500,
    /// 503 `ServiceUnavailableException`
    Unavailable503,
    /// A seeded-random choice between the two, per injected error.
    Mixed,
}

/// Fault configuration. Rates are probabilities in `0.0..=1.0`, rolled per
/// request to which faults apply (see [`Faults::only_ops`]); in order:
/// throttle, then server error, then (BatchWriteItem only) partial batch, then
/// delay. `Faults::default()` injects nothing.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Share of requests answered 400 with a throttling error (never forwarded).
    pub throttle_rate: f64,
    pub throttle_kind: ThrottleKind,
    /// Share of requests answered 500/503 (never forwarded).
    pub server_error_rate: f64,
    pub server_error_kind: ServerErrorKind,
    /// Share of BatchWriteItem requests where some items are held back: not
    /// forwarded, but returned in `UnprocessedItems`.
    pub unprocessed_rate: f64,
    /// How many items a partial batch holds back, out of the n non-poison
    /// items in the request: `None` = uniformly random in `1..=n-1` (1 if
    /// n == 1); `Some(f)` = `round(f * n)` clamped to `1..=n`.
    pub unprocessed_fraction: Option<f64>,
    /// A BatchWriteItem write request (Put item or Delete key) whose attribute
    /// [`Faults::poison_attr`] (S or N) equals this is never forwarded: it is
    /// always returned in `UnprocessedItems`. Applies to every BatchWriteItem,
    /// regardless of `only_ops` and `max_faults`.
    pub poison_pk: Option<String>,
    /// Attribute name checked for `poison_pk` and `refuse_pk` (default `"PK"`).
    pub poison_attr: String,
    /// A BatchWriteItem holding a write request whose attribute
    /// [`Faults::poison_attr`] equals this is answered 400
    /// `ValidationException` as a whole, and nothing of it is forwarded.
    /// Applies regardless of `only_ops` and `max_faults`.
    pub refuse_pk: Option<String>,
    /// Share of requests delayed by `delay` before being forwarded (the request
    /// is still executed upstream, as after a client-side timeout).
    pub delay_rate: f64,
    pub delay: Duration,
    /// Operations (e.g. `"BatchWriteItem"`, `"Scan"`) the random faults apply
    /// to; `"*"` means all. `None` = BatchWriteItem only.
    pub only_ops: Option<Vec<String>>,
    /// Stop injecting random faults (throttles, 5xx, partial batches, delays)
    /// after this many; `None` = unlimited. Poison is not limited.
    pub max_faults: Option<u64>,
    /// PRNG seed (the whole fault sequence is a function of it and of the
    /// order in which requests arrive).
    pub seed: u64,
    /// Keep every `BatchWriteItem` body with the time it arrived
    /// ([`FaultProxy::batch_writes`]).
    pub record_writes: bool,
    /// Operations answered `UnknownOperationException`, as an endpoint
    /// that does not implement them does (dynalite and
    /// `DescribeContinuousBackups`).
    pub unknown_ops: Vec<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            throttle_rate: 0.0,
            throttle_kind: ThrottleKind::default(),
            server_error_rate: 0.0,
            server_error_kind: ServerErrorKind::default(),
            unprocessed_rate: 0.0,
            unprocessed_fraction: None,
            poison_pk: None,
            poison_attr: "PK".to_string(),
            refuse_pk: None,
            delay_rate: 0.0,
            delay: Duration::from_millis(0),
            only_ops: None,
            max_faults: None,
            seed: 0x5eed,
            record_writes: false,
            unknown_ops: Vec::new(),
        }
    }
}

impl Faults {
    /// No faults: a transparent proxy.
    pub fn none() -> Self {
        Self::default()
    }

    fn applies_to(&self, op: &str) -> bool {
        match &self.only_ops {
            None => op == BATCH_WRITE,
            Some(ops) => ops.iter().any(|o| o == "*" || o == op),
        }
    }
}

/// Snapshot of the proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests received from clients.
    pub requests: u64,
    /// Client TCP connections accepted (less than `requests` under keep-alive).
    pub connections: u64,
    /// BatchWriteItem requests received.
    pub batch_write_requests: u64,
    /// Requests answered with an injected throttling error.
    pub throttled: u64,
    /// Requests answered with an injected 500/503.
    pub server_errors: u64,
    /// Requests delayed before forwarding.
    pub delayed: u64,
    /// BatchWriteItem requests with at least one item held back (poison or random).
    pub partial_batches: u64,
    /// Write requests held back in total (poisoned ones included).
    pub items_held_back: u64,
    /// Of `items_held_back`, those held back because of `poison_pk`.
    pub items_poisoned: u64,
    /// BatchWriteItem requests answered `ValidationException` (`refuse_pk`).
    pub refused_batches: u64,
    /// Requests forwarded to the upstream (whole or reduced).
    pub forwarded: u64,
    /// Forwarded requests that failed at the transport level (answered 502).
    pub upstream_errors: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    connections: AtomicU64,
    batch_write_requests: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    delayed: AtomicU64,
    partial_batches: AtomicU64,
    items_held_back: AtomicU64,
    items_poisoned: AtomicU64,
    refused_batches: AtomicU64,
    forwarded: AtomicU64,
    upstream_errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Stats {
            requests: g(&self.requests),
            connections: g(&self.connections),
            batch_write_requests: g(&self.batch_write_requests),
            throttled: g(&self.throttled),
            server_errors: g(&self.server_errors),
            delayed: g(&self.delayed),
            partial_batches: g(&self.partial_batches),
            items_held_back: g(&self.items_held_back),
            items_poisoned: g(&self.items_poisoned),
            refused_batches: g(&self.refused_batches),
            forwarded: g(&self.forwarded),
            upstream_errors: g(&self.upstream_errors),
        }
    }

    fn reset(&self) {
        for a in [
            &self.requests,
            &self.connections,
            &self.batch_write_requests,
            &self.throttled,
            &self.server_errors,
            &self.delayed,
            &self.partial_batches,
            &self.items_held_back,
            &self.items_poisoned,
            &self.refused_batches,
            &self.forwarded,
            &self.upstream_errors,
        ] {
            a.store(0, Ordering::SeqCst);
        }
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::SeqCst);
}

struct FaultState {
    faults: Faults,
    rng: fastrand::Rng,
    injected: u64,
}

struct Shared {
    upstream: Uri,
    state: Mutex<FaultState>,
    counters: Counters,
    client: Client<HttpConnector, Full<Bytes>>,
    started: Instant,
    writes: Mutex<Vec<(Duration, Bytes)>>,
}

/// A running proxy. `endpoint` is what to give the client as endpoint URL.
pub struct FaultProxy {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Start the proxy on `127.0.0.1:0` in a background thread with its own
    /// runtime; returns once it is listening. Panics if `upstream` is not an
    /// `http://` URL on a loopback address.
    pub async fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut proxy = Self::spawn(upstream, faults, move |addr| {
            let _ = tx.send(addr);
        });
        let addr = rx.await.expect("fault proxy thread failed to start");
        proxy.set_addr(addr);
        proxy
    }

    /// Like [`FaultProxy::start`], for synchronous code: blocks (briefly) until
    /// the proxy is listening. In async code prefer `start`.
    pub fn start_blocking(upstream: &str, faults: Faults) -> FaultProxy {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut proxy = Self::spawn(upstream, faults, move |addr| {
            let _ = tx.send(addr);
        });
        let addr = rx.recv().expect("fault proxy thread failed to start");
        proxy.set_addr(addr);
        proxy
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
    }

    /// Replace the fault configuration (re-seeds the PRNG from `faults.seed`
    /// and restarts the `max_faults` budget).
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.shared.state.lock().unwrap();
        st.rng = fastrand::Rng::with_seed(faults.seed);
        st.faults = faults;
        st.injected = 0;
    }

    /// The current fault configuration.
    pub fn faults(&self) -> Faults {
        self.shared.state.lock().unwrap().faults.clone()
    }

    /// Every `BatchWriteItem` request that arrived while
    /// `Faults::record_writes` was on: when (since the proxy started) and
    /// its body.
    pub fn batch_writes(&self) -> Vec<(Duration, Value)> {
        self.shared
            .writes
            .lock()
            .unwrap()
            .iter()
            .map(|(t, b)| (*t, serde_json::from_slice(b).expect("a JSON body")))
            .collect()
    }

    /// The upstream URL the proxy forwards to.
    pub fn upstream(&self) -> String {
        self.shared.upstream.to_string()
    }

    fn set_addr(&mut self, addr: SocketAddr) {
        self.addr = addr;
        self.endpoint = format!("http://{addr}");
    }

    fn spawn(
        upstream: &str,
        faults: Faults,
        on_bound: impl FnOnce(SocketAddr) + Send + 'static,
    ) -> FaultProxy {
        let upstream_uri = check_upstream(upstream);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let shared = Arc::new(Shared {
            upstream: upstream_uri,
            state: Mutex::new(FaultState {
                rng: fastrand::Rng::with_seed(faults.seed),
                faults,
                injected: 0,
            }),
            counters: Counters::default(),
            client,
            started: Instant::now(),
            writes: Mutex::new(Vec::new()),
        });
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fault-proxy-rt")
                    .enable_all()
                    .build()
                    .expect("fault proxy: cannot build tokio runtime");
                rt.block_on(serve(thread_shared, shutdown_rx, on_bound));
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("fault proxy: cannot spawn thread");
        FaultProxy {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            endpoint: String::new(),
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The proxy only ever talks to a loopback upstream over plain HTTP.
fn check_upstream(upstream: &str) -> Uri {
    let uri: Uri = upstream
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("fault proxy: bad upstream URL {upstream:?}: {e}"));
    assert_eq!(
        uri.scheme_str(),
        Some("http"),
        "fault proxy: upstream must be http://, got {upstream:?}"
    );
    let host = uri.host().unwrap_or("");
    let host_trimmed = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host_trimmed == "localhost"
        || host_trimmed
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    assert!(
        loopback,
        "fault proxy: upstream must be on loopback, got {upstream:?}"
    );
    uri
}

async fn serve(
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
    on_bound: impl FnOnce(SocketAddr),
) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("fault proxy: cannot bind 127.0.0.1:0");
    on_bound(listener.local_addr().expect("fault proxy: local_addr"));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                inc(&shared.counters.connections);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// What to do with one request, decided under the state lock.
enum Decision {
    Refuse,
    Unknown,
    Throttle(ThrottleKind),
    ServerError(ServerErrorKind),
    Forward {
        delay: Option<Duration>,
        /// Replacement body and held-back items (BatchWriteItem only).
        batch: Option<HeldBack>,
    },
}

struct HeldBack {
    /// Reduced request body; `None` when nothing remains to forward.
    body: Option<Bytes>,
    /// Held-back write requests per table, in request order.
    held: BTreeMap<String, Vec<Value>>,
    /// How many of them are poison items.
    poisoned: usize,
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let c = &shared.counters;
    inc(&c.requests);
    // DynamoDB names its operation in a header; an S3 request (no such
    // header) is named `S3.<METHOD>`, e.g. `S3.PUT` for PutObject and UploadPart.
    let op = match req.headers().get("x-amz-target") {
        Some(t) => t
            .to_str()
            .ok()
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .unwrap_or("")
            .to_string(),
        None => format!("S3.{}", req.method()),
    };
    if op == BATCH_WRITE {
        inc(&c.batch_write_requests);
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return plain_error(
                StatusCode::BAD_REQUEST,
                &format!("fault proxy: cannot read request body: {e}"),
            );
        }
    };

    if op == BATCH_WRITE && shared.state.lock().unwrap().faults.record_writes {
        let at = shared.started.elapsed();
        shared.writes.lock().unwrap().push((at, body.clone()));
    }
    let decision = decide(&shared, &op, &body);
    let (delay, batch) = match decision {
        Decision::Unknown => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "com.amazon.coral.service#UnknownOperationException",
                "",
            );
        }
        Decision::Refuse => {
            inc(&c.refused_batches);
            return aws_error(
                StatusCode::BAD_REQUEST,
                "com.amazon.coral.validate#ValidationException",
                "One or more parameter values were invalid: an item of the batch is refused (injected by fault proxy)",
            );
        }
        Decision::Throttle(kind) => {
            inc(&c.throttled);
            return throttle_response(kind);
        }
        Decision::ServerError(kind) => {
            inc(&c.server_errors);
            return server_error_response(kind);
        }
        Decision::Forward { delay, batch } => (delay, batch),
    };
    if let Some(d) = delay {
        inc(&c.delayed);
        tokio::time::sleep(d).await;
    }

    let forward_body = match &batch {
        Some(hb) => {
            let n: usize = hb.held.values().map(Vec::len).sum();
            if n > 0 {
                inc(&c.partial_batches);
                c.items_held_back.fetch_add(n as u64, Ordering::SeqCst);
                c.items_poisoned
                    .fetch_add(hb.poisoned as u64, Ordering::SeqCst);
            }
            match &hb.body {
                Some(b) => b.clone(),
                None => {
                    // Nothing left to write: answer as DynamoDB would with
                    // everything unprocessed.
                    let out = json!({ "UnprocessedItems": held_to_json(&hb.held) });
                    return json_response(StatusCode::OK, out.to_string().into());
                }
            }
        }
        None => body,
    };

    inc(&c.forwarded);
    let (rparts, rbody) = match forward(&shared, &parts, forward_body).await {
        Ok(r) => r,
        Err(msg) => {
            inc(&c.upstream_errors);
            return plain_error(StatusCode::BAD_GATEWAY, &msg);
        }
    };

    match batch {
        Some(hb) if !hb.held.is_empty() => merge_unprocessed(rparts, rbody, hb.held),
        _ => Response::from_parts(rparts, Full::new(rbody)),
    }
}

fn decide(shared: &Shared, op: &str, body: &Bytes) -> Decision {
    let mut guard = shared.state.lock().unwrap();
    let st = &mut *guard;
    let f = &st.faults;
    if f.unknown_ops.iter().any(|o| o == op) {
        return Decision::Unknown;
    }
    if op == BATCH_WRITE
        && let Some(refuse) = &f.refuse_pk
        && batch_holds(body, &f.poison_attr, refuse)
    {
        return Decision::Refuse;
    }
    let budget_left = f.max_faults.is_none_or(|m| st.injected < m);
    let random_faults = budget_left && f.applies_to(op);

    if random_faults && f.throttle_rate > 0.0 && st.rng.f64() < f.throttle_rate {
        st.injected += 1;
        let kind = match f.throttle_kind {
            ThrottleKind::Mixed => match st.rng.u8(0..3) {
                0 => ThrottleKind::ProvisionedThroughputExceeded,
                1 => ThrottleKind::Throttling,
                _ => ThrottleKind::RequestLimitExceeded,
            },
            k => k,
        };
        return Decision::Throttle(kind);
    }
    if random_faults && f.server_error_rate > 0.0 && st.rng.f64() < f.server_error_rate {
        st.injected += 1;
        let kind = match f.server_error_kind {
            ServerErrorKind::Mixed => {
                if st.rng.bool() {
                    ServerErrorKind::Internal500
                } else {
                    ServerErrorKind::Unavailable503
                }
            }
            k => k,
        };
        return Decision::ServerError(kind);
    }

    let mut batch = None;
    if op == BATCH_WRITE {
        let partial =
            random_faults && f.unprocessed_rate > 0.0 && st.rng.f64() < f.unprocessed_rate;
        let fraction = f.unprocessed_fraction;
        let poison = f
            .poison_pk
            .as_ref()
            .map(|p| (f.poison_attr.clone(), p.clone()));
        if partial || poison.is_some() {
            let hb = split_batch(body, poison.as_ref(), partial, fraction, &mut st.rng);
            if let Some(hb) = hb {
                if partial && hb.random_held > 0 {
                    st.injected += 1;
                }
                batch = Some(hb.held_back);
            }
        }
    }

    let f = &st.faults;
    let delay = if random_faults
        && f.delay_rate > 0.0
        && st.injected < f.max_faults.unwrap_or(u64::MAX)
        && st.rng.f64() < f.delay_rate
    {
        st.injected += 1;
        Some(f.delay)
    } else {
        None
    };
    Decision::Forward { delay, batch }
}

struct Split {
    held_back: HeldBack,
    random_held: usize,
}

/// Decide which write requests of a BatchWriteItem body are held back.
/// Returns `None` if the body cannot be parsed or nothing is held back.
fn split_batch(
    body: &Bytes,
    poison: Option<&(String, String)>,
    partial: bool,
    fraction: Option<f64>,
    rng: &mut fastrand::Rng,
) -> Option<Split> {
    let mut doc: Value = serde_json::from_slice(body).ok()?;
    let items = doc.get_mut("RequestItems")?.as_object_mut()?;

    // Flatten (table, index) in a stable order.
    let mut all: Vec<(String, usize)> = Vec::new();
    let mut poisoned: HashSet<(String, usize)> = HashSet::new();
    for (table, reqs) in items.iter() {
        let reqs = reqs.as_array()?;
        for (i, wr) in reqs.iter().enumerate() {
            let key = (table.clone(), i);
            if poison.is_some_and(|(attr, val)| is_poison(wr, attr, val)) {
                poisoned.insert(key);
            } else {
                all.push(key);
            }
        }
    }

    let mut held: HashSet<(String, usize)> = poisoned.clone();
    let mut random_held = 0;
    if partial && !all.is_empty() {
        let n = all.len();
        let k = match fraction {
            Some(fr) => ((fr * n as f64).round() as usize).clamp(1, n),
            None if n >= 2 => rng.usize(1..n),
            None => 1,
        };
        // Partial Fisher-Yates: the first k entries are a uniform sample.
        for i in 0..k {
            let j = rng.usize(i..n);
            all.swap(i, j);
        }
        held.extend(all[..k].iter().cloned());
        random_held = k;
    }
    if held.is_empty() {
        return None;
    }

    let mut held_map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut remaining = Map::new();
    for (table, reqs) in std::mem::take(items) {
        let reqs = match reqs {
            Value::Array(a) => a,
            _ => unreachable!("checked above"),
        };
        let mut keep = Vec::new();
        for (i, wr) in reqs.into_iter().enumerate() {
            if held.contains(&(table.clone(), i)) {
                held_map.entry(table.clone()).or_default().push(wr);
            } else {
                keep.push(wr);
            }
        }
        if !keep.is_empty() {
            remaining.insert(table, Value::Array(keep));
        }
    }
    let body = if remaining.is_empty() {
        None
    } else {
        *items = remaining;
        Some(Bytes::from(serde_json::to_vec(&doc).ok()?))
    };
    Some(Split {
        held_back: HeldBack {
            body,
            held: held_map,
            poisoned: poisoned.len(),
        },
        random_held,
    })
}

/// Whether a BatchWriteItem body holds a write request with `attr` = `val`.
fn batch_holds(body: &Bytes, attr: &str, val: &str) -> bool {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    doc.get("RequestItems")
        .and_then(Value::as_object)
        .is_some_and(|tables| {
            tables
                .values()
                .filter_map(Value::as_array)
                .any(|reqs| reqs.iter().any(|wr| is_poison(wr, attr, val)))
        })
}

fn is_poison(write_request: &Value, attr: &str, val: &str) -> bool {
    let attrs = write_request
        .pointer("/PutRequest/Item")
        .or_else(|| write_request.pointer("/DeleteRequest/Key"));
    let Some(av) = attrs.and_then(|a| a.get(attr)) else {
        return false;
    };
    ["S", "N"]
        .iter()
        .any(|t| av.get(*t).and_then(Value::as_str) == Some(val))
}

fn held_to_json(held: &BTreeMap<String, Vec<Value>>) -> Value {
    Value::Object(
        held.iter()
            .map(|(t, v)| (t.clone(), Value::Array(v.clone())))
            .collect(),
    )
}

/// Add held-back write requests to a successful upstream BatchWriteItem
/// response's `UnprocessedItems`. Error responses pass through unchanged
/// (nothing of the request was written then, and the client retries it all).
fn merge_unprocessed(
    mut parts: hyper::http::response::Parts,
    bytes: Bytes,
    held: BTreeMap<String, Vec<Value>>,
) -> Response<Full<Bytes>> {
    if parts.status != StatusCode::OK {
        return Response::from_parts(parts, Full::new(bytes));
    }
    let mut doc = match serde_json::from_slice::<Value>(&bytes) {
        Ok(d @ Value::Object(_)) => d,
        _ => return Response::from_parts(parts, Full::new(bytes)),
    };
    let obj = doc.as_object_mut().expect("object");
    let unprocessed = obj
        .entry("UnprocessedItems")
        .or_insert_with(|| Value::Object(Map::new()));
    if !unprocessed.is_object() {
        *unprocessed = Value::Object(Map::new());
    }
    let map = unprocessed.as_object_mut().expect("object");
    for (table, reqs) in held {
        let entry = map.entry(table).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = entry {
            a.extend(reqs);
        } else {
            *entry = Value::Array(reqs);
        }
    }
    let new_body = Bytes::from(doc.to_string());
    set_body_headers(&mut parts.headers, &new_body);
    Response::from_parts(parts, Full::new(new_body))
}

/// Forward a request to the upstream and collect the whole response.
async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(hyper::http::response::Parts, Bytes), String> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let base = shared.upstream.to_string();
    let uri: Uri = format!("{}{}", base.trim_end_matches('/'), path)
        .parse()
        .map_err(|e| format!("fault proxy: bad upstream URI: {e}"))?;

    let mut last_err = String::new();
    // One retry, only for failures to connect (the request was not sent).
    for _attempt in 0..2 {
        let mut req = Request::builder()
            .method(parts.method.clone())
            .uri(uri.clone())
            .body(Full::new(body.clone()))
            .map_err(|e| format!("fault proxy: cannot build request: {e}"))?;
        let headers = req.headers_mut();
        for (name, value) in parts.headers.iter() {
            if is_hop_by_hop(name)
                || name == header::HOST
                || name == header::CONTENT_LENGTH
                || name == header::ACCEPT_ENCODING
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));

        match shared.client.request(req).await {
            Ok(resp) => {
                let (mut rparts, rbody) = resp.into_parts();
                let bytes = rbody
                    .collect()
                    .await
                    .map_err(|e| format!("fault proxy: upstream body error: {e}"))?
                    .to_bytes();
                // A HEAD answer has no body but the object's Content-Length
                // (S3 HeadObject): kept as the server sent it.
                let head = parts.method == hyper::Method::HEAD;
                let names: Vec<HeaderName> = rparts
                    .headers
                    .keys()
                    .filter(|n| is_hop_by_hop(n) || (*n == header::CONTENT_LENGTH && !head))
                    .cloned()
                    .collect();
                for n in names {
                    rparts.headers.remove(n);
                }
                if !head {
                    rparts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                }
                return Ok((rparts, bytes));
            }
            Err(e) if e.is_connect() => {
                last_err = format!("fault proxy: cannot connect to upstream {base}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(format!("fault proxy: upstream request failed: {e}")),
        }
    }
    Err(last_err)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

fn set_body_headers(headers: &mut HeaderMap, body: &Bytes) {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(
        HeaderName::from_static("x-amz-crc32"),
        HeaderValue::from(crc32(body)),
    );
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    h.insert(
        HeaderName::from_static("x-amzn-requestid"),
        HeaderValue::from_str(&format!("faultproxy-{:016x}", fastrand::u64(..))).expect("ascii"),
    );
    set_body_headers(h, &body);
    *resp.body_mut() = Full::new(body);
    resp
}

fn aws_error(status: StatusCode, type_: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "__type": type_, "message": message }).to_string();
    json_response(status, body.into())
}

fn throttle_response(kind: ThrottleKind) -> Response<Full<Bytes>> {
    let (t, m) = match kind {
        ThrottleKind::ProvisionedThroughputExceeded | ThrottleKind::Mixed => (
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. (injected by fault proxy)",
        ),
        ThrottleKind::Throttling => (
            "com.amazon.coral.availability#ThrottlingException",
            "Rate of requests exceeds the allowed throughput. (injected by fault proxy)",
        ),
        ThrottleKind::RequestLimitExceeded => (
            "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
            "Throughput exceeds the current throughput limit for your account. (injected by fault proxy)",
        ),
    };
    aws_error(StatusCode::BAD_REQUEST, t, m)
}

fn server_error_response(kind: ServerErrorKind) -> Response<Full<Bytes>> {
    match kind {
        ServerErrorKind::Unavailable503 => aws_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException",
            "Service unavailable (injected by fault proxy)",
        ),
        _ => aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error (injected by fault proxy)",
        ),
    }
}

fn plain_error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(msg.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// CRC-32 (IEEE 802.3, as zlib), the checksum DynamoDB puts in `x-amz-crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}
