//! Optional metrics of a run (off unless the configuration has `metrics`;
//! docs/report.md): per entity and phase, records processed, errors
//! (rejects + failed), duration, retries and throttles, read from the
//! checkpoint every 60 seconds while the run goes on and once at its end.
//! CloudWatch gets what changed since the last publication (so the sums of
//! its datapoints are the run's totals); the Prometheus text file gets the
//! totals. A metric that cannot be published is a warning, never a failure.

pub mod cloudwatch;
pub mod prometheus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Mutex;

use crate::checkpoint::{Checkpoint, Phase, Step};
use crate::config::Config;

/// How often metrics are published while a run goes on.
pub const EVERY: Duration = Duration::from_secs(60);

/// The values of one entity's phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Values {
    pub records: u64,
    pub errors: u64,
    pub seconds: f64,
    pub retries: u64,
    pub throttles: u64,
}

impl Values {
    /// The values of a step so far.
    pub fn of(phase: Phase, s: &Step) -> Values {
        let end = s.finished_at.unwrap_or_else(Utc::now);
        let seconds = ((end - s.started_at).num_milliseconds() as f64 / 1000.0).max(0.0);
        let counts = s.counts.unwrap_or_default();
        let (records, errors) = match phase {
            Phase::Load => {
                let failed = s.failed.unwrap_or(0);
                (s.written.unwrap_or(0) + failed, failed)
            }
            _ => (s.records_in, s.rejected),
        };
        Values {
            records,
            errors,
            seconds,
            retries: counts.retries,
            throttles: counts.throttled,
        }
    }

    /// What grew since `before` (nothing is ever negative).
    pub fn since(&self, before: &Values) -> Values {
        Values {
            records: self.records.saturating_sub(before.records),
            errors: self.errors.saturating_sub(before.errors),
            seconds: (self.seconds - before.seconds).max(0.0),
            retries: self.retries.saturating_sub(before.retries),
            throttles: self.throttles.saturating_sub(before.throttles),
        }
    }
}

/// (run id, entity, phase).
pub type Key = (String, String, Phase);

/// The values of every step of the checkpoint's own run.
pub fn current(cp: &Checkpoint) -> BTreeMap<Key, Values> {
    let mut out = BTreeMap::new();
    for (entity, steps) in &cp.entities {
        for (phase, s) in steps {
            if s.run_id == cp.run_id {
                out.insert(
                    (cp.run_id.clone(), entity.clone(), *phase),
                    Values::of(*phase, s),
                );
            }
        }
    }
    out
}

/// The configured metrics of one process.
pub struct Metrics {
    data_dir: PathBuf,
    cloudwatch: Option<cloudwatch::Publisher>,
    prometheus: Option<PathBuf>,
    /// What CloudWatch has been sent so far, per step.
    published: BTreeMap<Key, Values>,
}

impl Metrics {
    /// The run's metrics, or `None` when the configuration asks for none.
    /// What the checkpoint holds now counts as published (by the process
    /// that ran it), so a resumed run only adds what it does itself.
    pub async fn new(config: &Config, data_dir: &Path) -> Option<Metrics> {
        let m = &config.metrics;
        if m.cloudwatch.is_none() && m.prometheus.is_none() {
            return None;
        }
        let cloudwatch = match &m.cloudwatch {
            Some(cw) => Some(cloudwatch::Publisher::new(config, &cw.namespace).await),
            None => None,
        };
        let published = match Checkpoint::load(data_dir) {
            Ok(Some(cp)) => current(&cp),
            _ => BTreeMap::new(),
        };
        Some(Metrics {
            data_dir: data_dir.to_path_buf(),
            cloudwatch,
            prometheus: m.prometheus.as_ref().map(|p| p.textfile.clone()),
            published,
        })
    }

    /// Publishes the checkpoint's values now.
    pub async fn publish(&mut self) {
        let cp = match Checkpoint::load(&self.data_dir) {
            Ok(Some(cp)) => cp,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("metrics not published: {e}");
                return;
            }
        };
        let now = current(&cp);
        if let Some(path) = &self.prometheus
            && let Err(e) = prometheus::write(path, &now)
        {
            tracing::warn!("Prometheus metrics not written: {e}");
        }
        if let Some(cw) = &self.cloudwatch {
            let deltas: Vec<(Key, Values)> = now
                .iter()
                .filter_map(|(k, v)| {
                    let before = self.published.get(k);
                    let d = v.since(&before.copied().unwrap_or_default());
                    (before.is_none() || d != Values::default()).then(|| (k.clone(), d))
                })
                .collect();
            // Only what was sent counts as published: the rest goes next time.
            let sent = match cw.put(&deltas).await {
                Ok(()) => deltas.len(),
                Err((sent, e)) => {
                    tracing::warn!("CloudWatch metrics not published: {e}");
                    sent
                }
            };
            for (k, _) in &deltas[..sent] {
                self.published.insert(k.clone(), now[k]);
            }
        }
    }
}

/// Metrics published in the background every [`EVERY`] during a run.
pub struct Handle {
    metrics: Arc<Mutex<Metrics>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the periodic publication, when metrics are configured.
pub async fn start(config: &Config, data_dir: &Path) -> Option<Handle> {
    let metrics = Arc::new(Mutex::new(Metrics::new(config, data_dir).await?));
    let shared = metrics.clone();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            // A publication under way is finished, never cut short.
            tokio::select! {
                _ = tick.tick() => shared.lock().await.publish().await,
                _ = &mut stopped => return,
            }
        }
    });
    Some(Handle {
        metrics,
        stop,
        task,
    })
}

impl Handle {
    /// Stops the periodic publication and publishes the final values.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        self.metrics.lock().await.publish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_up_to_the_totals() {
        let a = Values {
            records: 10,
            errors: 1,
            seconds: 2.0,
            retries: 3,
            throttles: 0,
        };
        let b = Values {
            records: 25,
            errors: 1,
            seconds: 5.5,
            retries: 4,
            throttles: 2,
        };
        let d = b.since(&a);
        assert_eq!(d.records + a.records, b.records);
        assert_eq!(d.seconds, 3.5);
        assert_eq!(a.since(&b).records, 0);
    }
}
