//! The load's time series: items written, throttles and retries, sampled
//! every second on a thread of its own while a load runs, and saved into the
//! entity's section of `load_report.json` as `series`. The series is bounded
//! whatever the run's length: when it holds [`MAX_POINTS`] points, neighbours
//! are merged in pairs and each point from then on covers twice the time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::dynamo::CallStats;
use crate::error::Result;

/// The most points a series holds.
pub const MAX_POINTS: usize = 600;

/// How often the sampler reads the counters.
const EVERY: Duration = Duration::from_secs(1);

/// One interval of the load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Seconds from the start of the load to the end of the interval.
    pub at: f64,
    /// How long the interval lasted, in seconds.
    pub secs: f64,
    /// Items settled (written or recorded as failed) in the interval.
    pub items: u64,
    /// Throttled requests in the interval.
    pub throttled: u64,
    /// Retried requests in the interval.
    pub retries: u64,
}

impl Point {
    /// Items per second over the interval.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.items as f64 / self.secs
        } else {
            0.0
        }
    }

    fn absorb(&mut self, later: &Point) {
        self.at = later.at;
        self.secs += later.secs;
        self.items += later.items;
        self.throttled += later.throttled;
        self.retries += later.retries;
    }
}

/// A bounded series of intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// How many samples one point covers (doubles at each merge).
    pub samples_per_point: u32,
    pub points: Vec<Point>,
    /// Samples in the last point so far.
    #[serde(default, skip_serializing)]
    filling: u32,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            samples_per_point: 1,
            points: Vec::new(),
            filling: 0,
        }
    }
}

impl Series {
    /// Adds one sample, merging neighbours when the series is full.
    pub fn push(&mut self, sample: Point) {
        if self.filling > 0
            && self.filling < self.samples_per_point
            && let Some(last) = self.points.last_mut()
        {
            last.absorb(&sample);
            self.filling += 1;
            return;
        }
        if self.points.len() >= MAX_POINTS {
            self.halve();
            // The last point may have room again after the merge.
            return self.push(sample);
        }
        self.points.push(sample);
        self.filling = 1;
    }

    /// Merges neighbours in pairs: half the points, each twice as long.
    fn halve(&mut self) {
        let mut merged = Vec::with_capacity(self.points.len() / 2 + 1);
        for pair in self.points.chunks(2) {
            let mut p = pair[0];
            if let Some(second) = pair.get(1) {
                p.absorb(second);
            }
            merged.push(p);
        }
        let odd = self.points.len() % 2 == 1;
        self.points = merged;
        // A lone last point holds fewer samples than the others: it keeps filling.
        self.filling = if odd {
            self.filling
        } else {
            self.filling + self.samples_per_point
        };
        self.samples_per_point *= 2;
    }

    /// Total items over the series.
    pub fn items(&self) -> u64 {
        self.points.iter().map(|p| p.items).sum()
    }
}

/// Samples a load's counters every second until [`Sampler::finish`].
pub struct Sampler {
    items: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Series>>,
}

impl Sampler {
    /// Starts sampling `stats` (throttles, retries) and the items counted
    /// with [`Sampler::add`].
    pub fn start(stats: Arc<CallStats>) -> Sampler {
        let items = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = mpsc::channel::<()>();
        let counted = items.clone();
        // The baseline is taken now, so nothing counted before the thread runs is lost.
        let c = stats.counts();
        let baseline = (0, c.throttled, c.retries);
        let thread = std::thread::Builder::new()
            .name("load-sampler".into())
            .spawn(move || sample(&counted, &stats, baseline, &stopped))
            .expect("spawn the load sampler");
        Sampler {
            items,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Counts `n` items settled.
    pub fn add(&self, n: u64) {
        self.items.fetch_add(n, Ordering::Relaxed);
    }

    /// Stops sampling; the series, its last partial second included.
    pub fn finish(mut self) -> Series {
        self.stop.take();
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sample(
    items: &AtomicU64,
    stats: &CallStats,
    baseline: (u64, u64, u64),
    stopped: &mpsc::Receiver<()>,
) -> Series {
    let started = Instant::now();
    let mut series = Series::default();
    let read = || {
        let c = stats.counts();
        (items.load(Ordering::Relaxed), c.throttled, c.retries)
    };
    let mut last = baseline;
    let mut last_at = 0.0f64;
    loop {
        let stop = !matches!(
            stopped.recv_timeout(EVERY),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let now = read();
        let at = started.elapsed().as_secs_f64();
        if at > last_at && (!stop || at - last_at >= 0.05 || now != last) {
            series.push(Point {
                at,
                secs: at - last_at,
                items: now.0 - last.0,
                throttled: now.1.saturating_sub(last.1),
                retries: now.2.saturating_sub(last.2),
            });
        }
        last = now;
        last_at = at;
        if stop {
            return series;
        }
    }
}

/// Saves `series` into `entity`'s section of the load report at `path`.
pub fn save(path: &Path, entity: &str, series: &Series) -> Result<()> {
    super::set_field(
        path,
        entity,
        "series",
        serde_json::to_value(series).expect("a series serializes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(i: u64) -> Point {
        Point {
            at: i as f64 + 1.0,
            secs: 1.0,
            items: 10,
            throttled: i % 2,
            retries: 1,
        }
    }

    #[test]
    fn stays_bounded_and_keeps_every_count() {
        let mut s = Series::default();
        let n = 10_000u64;
        for i in 0..n {
            s.push(one(i));
            assert!(s.points.len() <= MAX_POINTS);
        }
        assert_eq!(s.items(), 10 * n);
        assert_eq!(s.points.iter().map(|p| p.retries).sum::<u64>(), n);
        assert_eq!(s.points.iter().map(|p| p.throttled).sum::<u64>(), n / 2);
        let secs: f64 = s.points.iter().map(|p| p.secs).sum();
        assert!((secs - n as f64).abs() < 1e-6);
        assert_eq!(s.points.last().unwrap().at, n as f64);
        // Every point but the last covers the same time.
        let width = s.samples_per_point as f64;
        assert!(
            s.points[..s.points.len() - 1]
                .iter()
                .all(|p| p.secs == width)
        );
        assert!(s.points.len() > MAX_POINTS / 2);
    }

    #[test]
    fn short_loads_keep_one_point_a_second() {
        let mut s = Series::default();
        for i in 0..5 {
            s.push(one(i));
        }
        assert_eq!(s.points.len(), 5);
        assert_eq!(s.points[2].rate(), 10.0);
    }

    #[test]
    fn the_sampler_counts_what_it_is_told() {
        let stats = Arc::new(CallStats::default());
        let sampler = Sampler::start(stats.clone());
        sampler.add(7);
        stats.throttled.fetch_add(2, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1200));
        sampler.add(5);
        let s = sampler.finish();
        assert_eq!(s.items(), 12);
        assert_eq!(s.points.iter().map(|p| p.throttled).sum::<u64>(), 2);
        assert!(s.points.len() >= 2, "{s:?}");
    }
}
