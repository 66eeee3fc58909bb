//! Retries: the policy (capped exponential backoff with full jitter, the
//! rate cap), and the loop that retries scans, gets and table checks.

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
/// backoff up to `max_retries`; used for scans, gets and table checks.
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

/// [`retrying`] for an operation that classifies its own failures.
pub(super) async fn retry_failed<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Failed>>,
{
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(failed) => {
                attempt += 1;
                if !failed.class.retryable() || attempt > policy.max_retries {
                    return Err(Error::Target(format!("{what}: {}", failed.message)));
                }
                tokio::time::sleep(policy.delay(attempt, &mut rng)).await;
            }
        }
    }
}
