//! When failed work is tried again: exponential backoff, for partner calls with full
//! jitter.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included; after the last the call is dead.
    pub max_attempts: u32,
    /// The ceiling of the first wait; each later ceiling doubles.
    pub base: Duration,
    /// No wait is longer.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// Twelve tries whose waits' ceilings add up to about three days: 150 s, 5 min, ...,
    /// 21 h, 24 h.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            base: Duration::from_secs(150),
            cap: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (from 1), or `None` when that was the
    /// last. `random` in [0, 1) picks the point under the ceiling (full jitter), so many
    /// calls failing together do not come back together. The partner's `Retry-After`
    /// is a floor.
    pub fn delay(
        &self,
        attempt: u32,
        random: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let jittered = self.ceiling(attempt).mul_f64(random.clamp(0.0, 1.0));
        Some(retry_after.map_or(jittered, |floor| jittered.max(floor)))
    }

    /// The longest wait after failed try number `attempt` (from 1): `base`, doubled each
    /// try, up to `cap`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(30))
            .min(self.cap)
    }

    /// The sum of every ceiling: the longest a call can spend retrying.
    pub fn span(&self) -> Duration {
        (1..self.max_attempts)
            .map(|attempt| self.delay(attempt, 1.0, None).unwrap_or_default())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..12)
            .map(|attempt| policy.delay(attempt, 1.0, None).unwrap().as_secs())
            .collect();
        assert_eq!(
            ceilings,
            [150, 300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400]
        );
    }

    #[test]
    fn the_default_schedule_spans_about_three_days_in_twelve_tries() {
        let policy = RetryPolicy::default();
        let days = policy.span().as_secs_f64() / 86400.0;
        assert!((2.5..3.5).contains(&days), "{days} days");
        assert_eq!(policy.delay(12, 0.5, None), None);
    }

    #[test]
    fn full_jitter_spreads_waits_under_the_ceiling() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, 0.0, None), Some(Duration::ZERO));
        assert_eq!(policy.delay(2, 0.5, None), Some(Duration::from_secs(150)));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = RetryPolicy::default();
        let floor = Some(Duration::from_secs(200));
        assert_eq!(policy.delay(1, 0.1, floor), Some(Duration::from_secs(200)));
        assert_eq!(policy.delay(3, 1.0, floor), Some(Duration::from_secs(600)));
    }
}
