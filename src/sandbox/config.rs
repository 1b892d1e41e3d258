//! The sandbox's settings: its table of environment variables (token, credit and
//! faults), read through the service's reader so problems print the same way.

use super::{Faults, SandboxConfig, DEFAULT_TOKEN};
use crate::env::{Env, Unset, Var};

pub const SANDBOX_TOKEN: Var = Var {
    name: "SANDBOX_TOKEN",
    unset: Unset::Default(DEFAULT_TOKEN),
    meaning: "the bearer token it accepts",
};
pub const SANDBOX_CREDIT: Var = Var {
    name: "SANDBOX_CREDIT",
    unset: Unset::Default("1000"),
    meaning: "starting partner credit",
};
pub const SANDBOX_LATENCY_MS: Var = Var {
    name: "SANDBOX_LATENCY_MS",
    unset: Unset::Default("0"),
    meaning: "fixed delay before every answer",
};
pub const SANDBOX_LATENCY_JITTER_MS: Var = Var {
    name: "SANDBOX_LATENCY_JITTER_MS",
    unset: Unset::Default("0"),
    meaning: "extra random delay, uniform up to this",
};
pub const SANDBOX_FAIL_RATE: Var = Var {
    name: "SANDBOX_FAIL_RATE",
    unset: Unset::Default("0"),
    meaning: "share of writes answered `SANDBOX_FAIL_STATUS` without applying",
};
pub const SANDBOX_FAIL_STATUS: Var = Var {
    name: "SANDBOX_FAIL_STATUS",
    unset: Unset::Default("500"),
    meaning: "status of an injected failure",
};
pub const SANDBOX_TIMEOUT_RATE: Var = Var {
    name: "SANDBOX_TIMEOUT_RATE",
    unset: Unset::Default("0"),
    meaning: "share of writes held `SANDBOX_TIMEOUT_MS`, not applied, then 504",
};
pub const SANDBOX_APPLY_THEN_TIMEOUT_RATE: Var = Var {
    name: "SANDBOX_APPLY_THEN_TIMEOUT_RATE",
    unset: Unset::Default("0"),
    meaning: "share of writes applied, then held `SANDBOX_TIMEOUT_MS` (the client times out on \
              a change that happened)",
};
pub const SANDBOX_TIMEOUT_MS: Var = Var {
    name: "SANDBOX_TIMEOUT_MS",
    unset: Unset::Default("30000"),
    meaning: "how long a timeout fault holds the answer",
};

/// The sandbox's variables, in the order `sandbox --help` and the README list them.
pub const VARIABLES: &[Var] = &[
    SANDBOX_TOKEN,
    SANDBOX_CREDIT,
    SANDBOX_LATENCY_MS,
    SANDBOX_LATENCY_JITTER_MS,
    SANDBOX_FAIL_RATE,
    SANDBOX_FAIL_STATUS,
    SANDBOX_TIMEOUT_RATE,
    SANDBOX_APPLY_THEN_TIMEOUT_RATE,
    SANDBOX_TIMEOUT_MS,
];

/// What `sandbox --help` says of the environment.
pub fn help() -> String {
    crate::env::help(
        "Environment (latency applies to every request; failures and timeouts only to writes):",
        VARIABLES,
    )
}

/// A sandbox started from the command line numbers its workspaces from a random
/// thousand (10,000 to 999,000), so workspaces of two runs, or of a run and a restart,
/// are not mistaken for one another.
fn random_first_workspace_id() -> u64 {
    rand::Rng::gen_range(&mut rand::thread_rng(), 10..1000) * 1000
}

/// The problem of a value outside what is `expected`.
fn expected(what: &str) -> impl FnOnce(&str, &str) -> String + '_ {
    move |name, value| format!("{name}: expected {what}, got {value:?}")
}

impl SandboxConfig {
    /// Every sandbox variable; unset or blank means the default, a bad value is
    /// reported.
    pub fn read(env: &mut Env) -> SandboxConfig {
        const MS: &str = "a whole number of milliseconds";
        const RATE: &str = "a probability between 0 and 1";
        let any = |_: &u64| true;
        let rate = |r: &f64| (0.0..=1.0).contains(r);
        let token = env.text(&SANDBOX_TOKEN);
        let credit = env.parse(
            &SANDBOX_CREDIT,
            |c: &f64| c.is_finite() && *c >= 0.0,
            expected("an amount of 0 or more"),
        );
        let faults = Faults {
            latency_ms: env.parse(&SANDBOX_LATENCY_MS, any, expected(MS)),
            latency_jitter_ms: env.parse(&SANDBOX_LATENCY_JITTER_MS, any, expected(MS)),
            fail_rate: env.parse(&SANDBOX_FAIL_RATE, rate, expected(RATE)),
            fail_status: env.parse(
                &SANDBOX_FAIL_STATUS,
                |s: &u16| (400..=599).contains(s),
                expected("an HTTP status from 400 to 599"),
            ),
            timeout_rate: env.parse(&SANDBOX_TIMEOUT_RATE, rate, expected(RATE)),
            apply_then_timeout_rate: env.parse(
                &SANDBOX_APPLY_THEN_TIMEOUT_RATE,
                rate,
                expected(RATE),
            ),
            timeout_ms: env.parse(&SANDBOX_TIMEOUT_MS, any, expected(MS)),
        };
        SandboxConfig {
            token,
            credit,
            faults,
            first_workspace_id: random_first_workspace_id(),
        }
    }
}
