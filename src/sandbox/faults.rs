//! Injected faults: latency, failures, timeouts, and the ambiguous "applied, then
//! timed out" answer. Also the small environment reader `SandboxConfig` shares.

use std::str::FromStr;
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
    /// Reads `SANDBOX_LATENCY_MS`, `SANDBOX_LATENCY_JITTER_MS`, `SANDBOX_FAIL_RATE`,
    /// `SANDBOX_FAIL_STATUS`, `SANDBOX_TIMEOUT_RATE`,
    /// `SANDBOX_APPLY_THEN_TIMEOUT_RATE` and `SANDBOX_TIMEOUT_MS`; unset or empty
    /// means the default. One message per bad value.
    pub fn from_env() -> Result<Faults, Vec<String>> {
        let mut env = Env::new(|name| std::env::var(name).ok());
        let faults = Faults::read(&mut env);
        env.finish(faults)
    }

    pub(super) fn read<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> Faults {
        const MS: &str = "a whole number of milliseconds";
        const RATE: &str = "a probability between 0 and 1";
        let any = |_: &u64| true;
        let rate = |r: &f64| (0.0..=1.0).contains(r);
        let d = Faults::default();
        Faults {
            latency_ms: env.get("SANDBOX_LATENCY_MS", d.latency_ms, MS, any),
            latency_jitter_ms: env.get("SANDBOX_LATENCY_JITTER_MS", d.latency_jitter_ms, MS, any),
            fail_rate: env.get("SANDBOX_FAIL_RATE", d.fail_rate, RATE, rate),
            fail_status: env.get(
                "SANDBOX_FAIL_STATUS",
                d.fail_status,
                "an HTTP status from 400 to 599",
                |s: &u16| (400..=599).contains(s),
            ),
            timeout_rate: env.get("SANDBOX_TIMEOUT_RATE", d.timeout_rate, RATE, rate),
            apply_then_timeout_rate: env.get(
                "SANDBOX_APPLY_THEN_TIMEOUT_RATE",
                d.apply_then_timeout_rate,
                RATE,
                rate,
            ),
            timeout_ms: env.get("SANDBOX_TIMEOUT_MS", d.timeout_ms, MS, any),
        }
    }

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

/// Reads typed settings from a lookup function, collecting one message per bad
/// value instead of stopping at the first.
pub(super) struct Env<F> {
    lookup: F,
    errors: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub(super) fn new(lookup: F) -> Self {
        Env {
            lookup,
            errors: Vec::new(),
        }
    }

    /// The parsed value of `name`, or `default` when unset or blank (a bad value
    /// is recorded and also gives `default`).
    pub(super) fn get<T: FromStr>(
        &mut self,
        name: &str,
        default: T,
        expected: &str,
        valid: impl Fn(&T) -> bool,
    ) -> T {
        let Some(raw) = (self.lookup)(name).filter(|raw| !raw.trim().is_empty()) else {
            return default;
        };
        match raw.trim().parse::<T>() {
            Ok(value) if valid(&value) => value,
            _ => {
                self.errors
                    .push(format!("{name}: expected {expected}, got {raw:?}"));
                default
            }
        }
    }

    pub(super) fn finish<T>(self, value: T) -> Result<T, Vec<String>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}
