//! Retries: the policy (capped exponential backoff with full jitter, the
//! rate cap) and [`Retries`], the one driver every call's loop asks after
//! an attempt — whole-request retries (throttles, 5xx, timeouts) and
//! partial ones (the unprocessed part of a batch) alike, counted the same
//! way for writes, gets, Scan pages and table descriptions
//! (docs/design.md, "The Target seam").

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::config::MigrationConfig;
use crate::error::{Error, Result};

use super::*;

/// How retries behave (from the `migration` configuration).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
    pub exponential: bool,
    /// How long one attempt may take (`migration.requestTimeout`); the SDK
    /// enforces it on its calls, [`scan`] on reading its pages.
    pub request_timeout: Duration,
    /// The write-rate cap every `BatchWriteItem` attempt takes its units
    /// from (`migration.maxWriteUnitsPerSecond`); one bucket per policy.
    pub rate: Option<std::sync::Arc<crate::rate::RateCap>>,
    /// What every call made under this policy through [`retrying`],
    /// [`batch_get`] and the scan drivers cost: attempts, failures by class,
    /// retries and waits (a load counts its writes in its own
    /// [`CallStats`]). Shared by the policy's clones; a phase that reports
    /// them makes its own policy.
    pub calls: std::sync::Arc<CallStats>,
}

impl RetryPolicy {
    pub fn from_config(m: &MigrationConfig) -> Self {
        RetryPolicy {
            max_retries: m.max_retries,
            base: m.retry_delay,
            cap: m.max_retry_delay.max(m.retry_delay),
            exponential: m.exponential_backoff,
            request_timeout: m.request_timeout,
            rate: m
                .max_write_units_per_second
                .map(|cap| std::sync::Arc::new(crate::rate::RateCap::new(cap))),
            calls: Default::default(),
        }
    }

    /// The longest wait before retry number `attempt` (1-based): the base
    /// doubled per attempt when exponential, never above the cap.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = if self.exponential {
            2u32.saturating_pow(attempt.saturating_sub(1).min(30))
        } else {
            1
        };
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Full jitter: a uniformly random wait between zero and the ceiling.
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = ceiling.as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { rng.u64(0..=nanos) })
    }
}

/// Calls `op` until it succeeds, retrying throttles and transient errors with
/// backoff up to `max_retries`, counted in the policy's `calls`; used for
/// scans, gets and table checks.
pub async fn retrying<T, E, R, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HttpStatus + std::fmt::Debug,
{
    retry_failed(policy, what, || {
        let call = op();
        async move { call.await.map_err(|err| Failed::of(&err)) }
    })
    .await
}

/// A failed attempt: how to treat it, and what to say.
#[derive(Debug)]
pub struct Failed {
    pub class: Class,
    pub message: String,
    /// A transient failure that was a timeout (rather than a 5xx answer or a
    /// dropped connection), counted apart.
    pub timeout: bool,
}

impl Failed {
    pub(super) fn of<E, R>(err: &SdkError<E, R>) -> Failed
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: HttpStatus + std::fmt::Debug,
    {
        Failed {
            class: classify(err),
            message: describe(err),
            timeout: is_timeout(err),
        }
    }

    /// A retryable failure with this message.
    pub fn transient(message: impl Into<String>) -> Failed {
        Failed::new(Class::Transient, message)
    }

    /// A failure of `class` with this message.
    pub fn new(class: Class, message: impl Into<String>) -> Failed {
        Failed {
            class,
            message: message.into(),
            timeout: false,
        }
    }
}

/// [`retrying`] for an operation that classifies its own failures: the
/// whole request is sent again after each retryable failure.
pub(super) async fn retry_failed<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Failed>>,
{
    let mut retries = Retries::new(policy, Some(&policy.calls));
    loop {
        policy.calls.requests.fetch_add(1, Ordering::Relaxed);
        match op().await {
            Ok(v) => return Ok(v),
            Err(failed) => {
                if let Err(failed) = retries.failed(failed).await {
                    return Err(Error::Target {
                        class: failed.class,
                        message: format!("{what}: {}", failed.message),
                    });
                }
            }
        }
    }
}

/// The retry budget, backoff and counters of one request's attempts. A
/// driver sends, then tells it what came back: a failure ([`Retries::failed`])
/// or a partial answer ([`Retries::partial`]); it waits before the next
/// attempt, or says the request must stop. An attempt that made progress (a
/// smaller unprocessed part) starts the budget again.
pub(super) struct Retries<'a> {
    policy: &'a RetryPolicy,
    stats: Option<&'a CallStats>,
    rng: fastrand::Rng,
    attempt: u32,
}

impl<'a> Retries<'a> {
    /// Counts into `stats` when given (a load's, a rollback's).
    pub(super) fn new(policy: &'a RetryPolicy, stats: Option<&'a CallStats>) -> Self {
        Retries {
            policy,
            stats,
            rng: fastrand::Rng::new(),
            attempt: 0,
        }
    }

    /// After a failed attempt: counts it by class, then waits and returns
    /// `Ok` to send the whole request again, or hands the failure back when
    /// it is not retryable or the budget is spent.
    pub(super) async fn failed(&mut self, failed: Failed) -> std::result::Result<(), Failed> {
        if let Some(s) = self.stats {
            let counter = match failed.class {
                Class::Throttled => Some(&s.throttled),
                Class::Transient if failed.timeout => Some(&s.timeouts),
                Class::Transient => Some(&s.server_errors),
                Class::Refused | Class::Terminal | Class::Input => None,
            };
            if let Some(c) = counter {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !failed.class.retryable() {
            return Err(failed);
        }
        match self.wait().await {
            true => Ok(()),
            false => Err(failed),
        }
    }

    /// After an attempt that left `left` of the `sent` requests unprocessed:
    /// counts them, then waits and returns `true` to send only those again,
    /// or `false` when the budget is spent.
    pub(super) async fn partial(&mut self, sent: usize, left: usize) -> bool {
        if let Some(s) = self.stats {
            s.unprocessed_items
                .fetch_add(left as u64, Ordering::Relaxed);
        }
        if left < sent {
            self.attempt = 0;
        }
        self.wait().await
    }

    /// One more attempt: waits its backoff and returns `true`, or `false`
    /// past `max_retries`.
    async fn wait(&mut self) -> bool {
        self.attempt += 1;
        if self.attempt > self.policy.max_retries {
            return false;
        }
        let wait = self.policy.delay(self.attempt, &mut self.rng);
        if let Some(s) = self.stats {
            s.retries.fetch_add(1, Ordering::Relaxed);
            s.wait_ms
                .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
        }
        tokio::time::sleep(wait).await;
        true
    }
}
