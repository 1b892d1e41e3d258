//! Injected faults: latency, failures, timeouts, and the ambiguous "applied, then
//! timed out" answer.

use std::time::Duration;

use rand::Rng;

/// What can go wrong on the way to the fake, chosen per request.
///
/// The three rates share one draw: fail first, then timeout, then
/// apply-then-timeout, so each happens with its own probability as long as they
/// add up to at most 1 (past that, the later ones get what is left).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Fixed delay before every answer.
    pub latency_ms: u64,
    /// Extra random delay, uniform in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// Probability of answering `fail_status` without applying anything.
    pub fail_rate: f64,
    /// Status of an injected failure (default 500).
    pub fail_status: u16,
    /// Probability of sleeping `timeout_ms` without applying anything (then 504).
    pub timeout_rate: f64,
    /// Probability of applying the request, then sleeping `timeout_ms` before the
    /// real answer: the client times out on a change that did happen.
    pub apply_then_timeout_rate: f64,
    /// How long a timeout fault holds the answer (default 30 000).
    pub timeout_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            latency_jitter_ms: 0,
            fail_rate: 0.0,
            fail_status: 500,
            timeout_rate: 0.0,
            apply_then_timeout_rate: 0.0,
            timeout_ms: 30_000,
        }
    }
}

/// The fate of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Answer,
    Fail,
    Timeout,
    ApplyThenTimeout,
}

impl Faults {
    pub(super) fn latency(&self, rng: &mut impl Rng) -> Duration {
        let jitter = rng.gen_range(0..=self.latency_jitter_ms);
        Duration::from_millis(self.latency_ms.saturating_add(jitter))
    }

    pub(super) fn draw(&self, rng: &mut impl Rng) -> Outcome {
        let r: f64 = rng.gen();
        let fail = self.fail_rate;
        let timeout = fail + self.timeout_rate;
        let apply_then_timeout = timeout + self.apply_then_timeout_rate;
        if r < fail {
            Outcome::Fail
        } else if r < timeout {
            Outcome::Timeout
        } else if r < apply_then_timeout {
            Outcome::ApplyThenTimeout
        } else {
            Outcome::Answer
        }
    }
}
