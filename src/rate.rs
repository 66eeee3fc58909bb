//! The write-rate cap (`migration.maxWriteUnitsPerSecond`,
//! `--max-write-rate`): a token bucket every `BatchWriteItem` attempt of a
//! load, a rollback or the dry run's estimate takes its write units from
//! before it is sent, retries included (docs/cutover.md).
//!
//! A write's units are counted as DynamoDB bills them: the item's size
//! rounded up to 1 KB, once for the table and once more for each index the
//! item appears in (it has the index's key attributes). A delete is counted
//! as one unit for the table and one per declared index, since the deleted
//! item's size is not known before it is gone.
//!
//! The bucket starts empty and fills at the cap, holding at most one
//! second's budget: writes go out smoothly, never more than the cap over
//! any second plus that one second's budget.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::dynamo::WRITE_UNIT_BYTES;

/// The write units of an item of `size` bytes that appears in `indexes`
/// indexes besides its table.
pub fn units(size: usize, indexes: usize) -> u32 {
    let per_copy = size.div_ceil(WRITE_UNIT_BYTES).max(1);
    u32::try_from(per_copy * (1 + indexes)).unwrap_or(u32::MAX)
}

/// A token bucket of write units, shared by every request of a command.
#[derive(Debug)]
pub struct RateCap {
    per_second: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateCap {
    /// A cap of `per_second` write units a second (at least 1).
    pub fn new(per_second: u64) -> RateCap {
        RateCap {
            per_second: per_second.max(1) as f64,
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                at: Instant::now(),
            }),
        }
    }

    /// The cap, in write units a second.
    pub fn per_second(&self) -> u64 {
        self.per_second as u64
    }

    /// Takes `units` from the bucket or says how long to wait first.
    fn try_take(&self, units: u64, now: Instant) -> Option<Duration> {
        let mut b = self.bucket.lock().expect("rate bucket");
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.per_second);
        b.at = now;
        // A request larger than one second's budget waits for a full
        // bucket, then leaves it in debt: the next ones wait that much more.
        let need = (units as f64).min(self.per_second);
        if b.tokens >= need {
            b.tokens -= units as f64;
            None
        } else {
            Some(Duration::from_secs_f64((need - b.tokens) / self.per_second))
        }
    }

    /// Waits until `units` may be sent, then takes them.
    pub async fn take(&self, units: u64) {
        while let Some(wait) = self.try_take(units, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_up_per_kilobyte_and_count_each_index() {
        assert_eq!(units(1, 0), 1);
        assert_eq!(units(1024, 0), 1);
        assert_eq!(units(1025, 0), 2);
        assert_eq!(units(0, 2), 3, "an empty item still costs one unit a copy");
        assert_eq!(units(3000, 2), 9);
    }

    #[test]
    fn the_bucket_fills_at_the_cap_and_holds_one_second() {
        let cap = RateCap::new(100);
        let t0 = Instant::now();
        // empty at first: 50 units need half a second
        let wait = cap.try_take(50, t0).unwrap();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert_eq!(cap.try_take(50, t0 + Duration::from_millis(500)), None);
        // ten idle seconds fill it to one second's budget, not ten
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(cap.try_take(100, t1), None);
        assert!(cap.try_take(1, t1).is_some(), "the budget is spent");
    }

    #[test]
    fn a_request_over_one_second_budget_waits_for_a_full_bucket_then_owes() {
        let cap = RateCap::new(10);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(cap.try_take(25, t1), None, "a full bucket lets it through");
        // 15 units of debt plus one: 1.6 s before the next unit
        let wait = cap.try_take(1, t1).unwrap();
        assert!((wait.as_secs_f64() - 1.6).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn over_any_stretch_the_units_taken_stay_within_the_cap_plus_one_second() {
        let cap = RateCap::new(200);
        let t0 = Instant::now();
        let mut now = t0;
        let mut taken = 0u64;
        // a sender that asks every millisecond for 7 units
        while now < t0 + Duration::from_secs(5) {
            if cap.try_take(7, now).is_none() {
                taken += 7;
            }
            now += Duration::from_millis(1);
        }
        let allowed = 200.0 * 5.0 + 200.0;
        assert!((taken as f64) <= allowed, "{taken} > {allowed}");
        assert!(taken >= 980, "the cap is used, not wasted: {taken}");
    }
}
