//! The service's settings: its table of environment variables (also read from `.env`),
//! read and validated once at start. Every problem is reported, one line each, so an
//! operator fixes them all in one go.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::db::PoolLimits;
use crate::delivery::{DeliverySettings, RetryPolicy};
use crate::env::{Env, Unset, Var};
use crate::http::ServerLimits;
use crate::partner::PartnerClient;
use crate::plan::Catalog;
use crate::secret::Secret;
use crate::start_error::masked;
use crate::store::{settings, StoreSettings};
use crate::stripe::api::{self, StripeApi};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/uchat_billing";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_CATALOG_PATH: &str = "catalog.toml";
pub const DEFAULT_UCHAT_API_BASE: &str = "https://www.uchat.com.au/api";

pub const DATABASE_URL: Var = Var {
    name: "DATABASE_URL",
    unset: Unset::Default(DEFAULT_DATABASE_URL),
    meaning: "Postgres; created if missing, migrated at start",
};
pub const BIND_ADDR: Var = Var {
    name: "BIND_ADDR",
    unset: Unset::Default(DEFAULT_BIND_ADDR),
    meaning: "where the HTTP server listens",
};
pub const STRIPE_WEBHOOK_SECRET: Var = Var {
    name: "STRIPE_WEBHOOK_SECRET",
    unset: Unset::Required,
    meaning: "the endpoint's signing secret `whsec_...`; several, comma-separated, during a \
              rotation (a signature by any of them is accepted)",
};
pub const CATALOG_PATH: Var = Var {
    name: "CATALOG_PATH",
    unset: Unset::Default(DEFAULT_CATALOG_PATH),
    meaning: "the catalog: which Stripe price sells which UChat plan, add-on or points, and the \
              policies; start from `catalog.example.toml`, check with `uchat-billing \
              check-catalog`",
};
pub const STRIPE_API_KEY: Var = Var {
    name: "STRIPE_API_KEY",
    unset: Unset::Off,
    meaning: "a restricted key with read access to Checkout sessions, customers, \
              subscriptions, invoices, charges and events: needed for one-off points purchases \
              (their line items are not in the event), buyers whose email no event carries, \
              refunds and disputes of subscription payments on API versions since 2025-03-31, \
              and to apply subscription events as Stripe has the subscription now",
};
pub const STRIPE_API_BASE: Var = Var {
    name: "STRIPE_API_BASE",
    unset: Unset::Default(api::DEFAULT_BASE),
    meaning: "the Stripe API (tests point it at a local fake)",
};
pub const STRIPE_BACKFILL_SECS: Var = Var {
    name: "STRIPE_BACKFILL_SECS",
    unset: Unset::Default("3600"),
    meaning: "with `STRIPE_API_KEY`, how often `serve` reads Stripe's event list (also at start) \
              and stores the events the webhook never delivered, from the newest stored event \
              less an hour; `0` turns it off",
};
pub const EVENT_SETTLE_MS: Var = Var {
    name: "EVENT_SETTLE_MS",
    unset: Unset::Default("1000"),
    meaning: "how long a stored event rests before it is applied, so siblings Stripe sends \
              together apply in Stripe's order",
};
pub const UCHAT_API_BASE: Var = Var {
    name: "UCHAT_API_BASE",
    unset: Unset::Default(DEFAULT_UCHAT_API_BASE),
    meaning: "the UChat Partner API (or the sandbox)",
};
pub const UCHAT_API_TOKEN: Var = Var {
    name: "UCHAT_API_TOKEN",
    unset: Unset::Off,
    meaning: "the partner token; required to deliver (`worker`); without it `serve` plans but \
              does not deliver",
};
pub const UCHAT_TIMEOUT_SECS: Var = Var {
    name: "UCHAT_TIMEOUT_SECS",
    unset: Unset::Default("15"),
    meaning: "timeout of one partner request",
};
pub const UCHAT_CREDIT_POLL_SECS: Var = Var {
    name: "UCHAT_CREDIT_POLL_SECS",
    unset: Unset::Default("300"),
    meaning: "how often `serve` reads the partner's credit balance into the \
              `uchat_billing_partner_credit` gauge (with `UCHAT_API_TOKEN`); `0` turns it off",
};
pub const DELIVERY_CONCURRENCY: Var = Var {
    name: "DELIVERY_CONCURRENCY",
    unset: Unset::Default("8"),
    meaning: "partner calls in flight per process",
};
pub const RETRY_MAX_ATTEMPTS: Var = Var {
    name: "RETRY_MAX_ATTEMPTS",
    unset: Unset::Default("12"),
    meaning: "tries of a failing call before it is dead",
};
pub const RETRY_BASE_SECS: Var = Var {
    name: "RETRY_BASE_SECS",
    unset: Unset::Default("150"),
    meaning: "ceiling of the first retry wait; it doubles each try (full jitter under it), so \
              the default twelve tries span about three days",
};
pub const RETRY_CAP_SECS: Var = Var {
    name: "RETRY_CAP_SECS",
    unset: Unset::Default("86400"),
    meaning: "the longest retry wait",
};
pub const HELD_RETRY_SECS: Var = Var {
    name: "HELD_RETRY_SECS",
    unset: Unset::Default("900"),
    meaning: "how often a call held for lack of partner credit is tried again (spends no try)",
};
pub const LEASE_SECS: Var = Var {
    name: "LEASE_SECS",
    unset: Unset::Derived("4 × UCHAT_TIMEOUT_SECS + 10"),
    meaning: "how long a claimed call stays the worker's; after a crash, another worker takes \
              it back (looking before repeating) once it expires. Must be longer than \
              `UCHAT_TIMEOUT_SECS`, and should outlast a try (up to four partner requests)",
};
pub const PROCESS_EVENTS: Var = Var {
    name: "PROCESS_EVENTS",
    unset: Unset::Default("true"),
    meaning: "`false` makes `serve` intake only: events are stored, and another instance \
              applies and delivers them",
};
pub const ADMIN_TOKEN: Var = Var {
    name: "ADMIN_TOKEN",
    unset: Unset::Off,
    meaning: "bearer token of the admin API and `/metrics`, at least 32 characters (e.g. \
              `openssl rand -hex 32`); unset, those answer `503 {\"error\":\"admin \
              disabled\"}` (webhooks are served all the same)",
};
pub const METRICS_PUBLIC: Var = Var {
    name: "METRICS_PUBLIC",
    unset: Unset::Default("false"),
    meaning: "`true` serves `/metrics` without the token, for a scraper that cannot send one",
};
pub const CONSOLE_SECURE_COOKIE: Var = Var {
    name: "CONSOLE_SECURE_COOKIE",
    unset: Unset::Default("true"),
    meaning: "marks the console's session cookie `Secure`, so browsers send it over HTTPS \
              only; `false` to use the console over plain HTTP (on a trusted network)",
};

pub const PAID_NOT_PROVISIONED_MINUTES: Var = Var {
    name: "PAID_NOT_PROVISIONED_MINUTES",
    unset: Unset::Default("15"),
    meaning: "an order paid this long ago without a workspace counts in the \
              `uchat_billing_paid_not_provisioned` gauge",
};
pub const HTTP_HEADER_TIMEOUT_SECS: Var = Var {
    name: "HTTP_HEADER_TIMEOUT_SECS",
    unset: Unset::Default("10"),
    meaning: "a request's head (request line and headers) must arrive within this, counted from \
              the connection's start or its previous answer; a slower connection is closed",
};
pub const HTTP_KEEP_ALIVE_SECS: Var = Var {
    name: "HTTP_KEEP_ALIVE_SECS",
    unset: Unset::Default("5"),
    meaning: "how long an idle connection is kept for its next request, at most \
              `HTTP_HEADER_TIMEOUT_SECS`; `0` closes each connection after one request",
};
pub const HTTP_BODY_TIMEOUT_SECS: Var = Var {
    name: "HTTP_BODY_TIMEOUT_SECS",
    unset: Unset::Default("10"),
    meaning: "a request's whole body must arrive within this once its head has; a slower one \
              gets `408` and the connection is closed",
};
pub const HTTP_REQUEST_TIMEOUT_SECS: Var = Var {
    name: "HTTP_REQUEST_TIMEOUT_SECS",
    unset: Unset::Default("30"),
    meaning: "the longest a request is handled, its body included; then it is answered `503` \
              with `Retry-After`",
};
pub const MAX_CONNECTIONS: Var = Var {
    name: "MAX_CONNECTIONS",
    unset: Unset::Default("512"),
    meaning: "connections served at once; more wait in the listen backlog, taking no file \
              descriptor, until one closes. Refused at start if it does not fit the open-file \
              limit (`ulimit -n`) with the descriptors the rest of the service needs",
};
pub const WEBHOOK_CONCURRENCY: Var = Var {
    name: "WEBHOOK_CONCURRENCY",
    unset: Unset::Default("64"),
    meaning: "webhooks handled at once; more are answered `503` with `Retry-After` at once, and \
              Stripe sends them again",
};
pub const SHUTDOWN_GRACE_SECS: Var = Var {
    name: "SHUTDOWN_GRACE_SECS",
    unset: Unset::Default("20"),
    meaning: "on SIGTERM or SIGINT, how long requests in progress and background work get to \
              finish; then the process exits (code 0) whatever clients are doing",
};
pub const INTAKE_DB_CONNECTIONS: Var = Var {
    name: "INTAKE_DB_CONNECTIONS",
    unset: Unset::Default("8"),
    meaning: "database connections of webhook intake (and `/readyz`) alone: the admin API, the \
              processor and delivery have their own and cannot take these",
};
pub const ADMIN_DB_CONNECTIONS: Var = Var {
    name: "ADMIN_DB_CONNECTIONS",
    unset: Unset::Default("4"),
    meaning: "database connections of the admin API and `/metrics`",
};
pub const STATEMENT_TIMEOUT_MS: Var = Var {
    name: "STATEMENT_TIMEOUT_MS",
    unset: Unset::Default("30000"),
    meaning: "the longest one SQL statement of intake, the processor or delivery may run",
};
pub const ADMIN_STATEMENT_TIMEOUT_MS: Var = Var {
    name: "ADMIN_STATEMENT_TIMEOUT_MS",
    unset: Unset::Default("5000"),
    meaning: "the longest one SQL statement of the admin API or `/metrics` may run",
};
pub const LOG_FORMAT: Var = Var {
    name: "LOG_FORMAT",
    unset: Unset::Default("pretty"),
    meaning: "`pretty` or `json`",
};
pub const RECONCILE_SECS: Var = Var {
    name: "RECONCILE_SECS",
    unset: Unset::Default("21600"),
    meaning: "how often `serve` reconciles every live order against Stripe and UChat (when \
              `UCHAT_API_TOKEN` is set); 0 turns it off",
};
pub const RECONCILE_READS_PER_SEC: Var = Var {
    name: "RECONCILE_READS_PER_SEC",
    unset: Unset::Default("2"),
    meaning: "the pace of reconciliation's reads of UChat and Stripe, within the partner's \
              rate limits; delivery's calls do not count against it",
};
pub const UCHAT_WEBHOOK_TOKEN: Var = Var {
    name: "UCHAT_WEBHOOK_TOKEN",
    unset: Unset::Off,
    meaning: "the secret path token of UChat's partner webhooks, `POST \
              /webhooks/uchat/<token>` (e.g. `openssl rand -hex 32`); unset, the route is off",
};
pub const PUBLIC_BASE_URL: Var = Var {
    name: "PUBLIC_BASE_URL",
    unset: Unset::Off,
    meaning: "where UChat reaches this service, e.g. `https://billing.example.com`: \
              `uchat-webhook register` sets UChat's webhook to \
              `<PUBLIC_BASE_URL>/webhooks/uchat/<UCHAT_WEBHOOK_TOKEN>`",
};
/// Read by the log subscriber itself.
pub const RUST_LOG: Var = Var {
    name: "RUST_LOG",
    unset: Unset::Default("info"),
    meaning: "log filter, e.g. `uchat_billing=debug,tower_http=info`",
};

/// The service's variables, in the order `--help` and the README list them.
pub const VARIABLES: &[Var] = &[
    DATABASE_URL,
    BIND_ADDR,
    STRIPE_WEBHOOK_SECRET,
    CATALOG_PATH,
    STRIPE_API_KEY,
    STRIPE_API_BASE,
    STRIPE_BACKFILL_SECS,
    EVENT_SETTLE_MS,
    UCHAT_API_BASE,
    UCHAT_API_TOKEN,
    UCHAT_TIMEOUT_SECS,
    UCHAT_CREDIT_POLL_SECS,
    DELIVERY_CONCURRENCY,
    RETRY_MAX_ATTEMPTS,
    RETRY_BASE_SECS,
    RETRY_CAP_SECS,
    HELD_RETRY_SECS,
    LEASE_SECS,
    PROCESS_EVENTS,
    ADMIN_TOKEN,
    METRICS_PUBLIC,
    CONSOLE_SECURE_COOKIE,
    PAID_NOT_PROVISIONED_MINUTES,
    HTTP_HEADER_TIMEOUT_SECS,
    HTTP_KEEP_ALIVE_SECS,
    HTTP_BODY_TIMEOUT_SECS,
    HTTP_REQUEST_TIMEOUT_SECS,
    MAX_CONNECTIONS,
    WEBHOOK_CONCURRENCY,
    SHUTDOWN_GRACE_SECS,
    INTAKE_DB_CONNECTIONS,
    ADMIN_DB_CONNECTIONS,
    STATEMENT_TIMEOUT_MS,
    ADMIN_STATEMENT_TIMEOUT_MS,
    RECONCILE_SECS,
    RECONCILE_READS_PER_SEC,
    UCHAT_WEBHOOK_TOKEN,
    PUBLIC_BASE_URL,
    LOG_FORMAT,
    RUST_LOG,
    settings::STORE_ENABLED,
    settings::STORE_SUCCESS_URL,
    settings::STORE_CANCEL_URL,
    settings::STORE_LOGIN_URL,
    settings::STORE_ALLOWED_ORIGINS,
    settings::STORE_RATE_PER_MINUTE,
    settings::STORE_CATALOG_REFRESH_SECS,
];

/// What `--help` says of the environment.
pub fn help() -> String {
    crate::env::help(
        "Environment (also read from a .env file in the working directory):",
        VARIABLES,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err(()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub bind_addr: SocketAddr,
    pub webhook_secrets: Vec<Secret>,
    pub catalog: Arc<Catalog>,
    pub stripe_api: Option<StripeApi>,
    /// How often `serve` backfills from Stripe's event list; `None`: never.
    pub backfill_every: Option<Duration>,
    pub settle: Duration,
    /// Where and how to deliver partner calls; `None` without `UCHAT_API_TOKEN`.
    pub delivery: Option<Delivery>,
    /// How often the partner's credit balance is read into its gauge; zero for never.
    pub credit_poll: Duration,
    /// The operator API's bearer token; `None` turns the operator API off.
    pub admin_token: Option<Secret>,
    /// Serve `/metrics` to anyone, for a scraper that cannot send a token.
    pub metrics_public: bool,
    /// Mark the console's session cookie `Secure` (HTTPS only).
    pub console_secure_cookie: bool,
    /// How long after payment an order without a workspace counts as not provisioned.
    pub paid_not_provisioned_after: Duration,
    /// Run the event processor (and delivery, if configured) inside `serve`
    /// (`PROCESS_EVENTS`). Tests turn it off to drive them themselves.
    pub background_work: bool,
    pub limits: Limits,
    /// The storefront's settings; `None` keeps `/store` off.
    pub store: Option<StoreSettings>,
    pub reconcile: ReconcileSettings,
    /// The path token of UChat's webhooks; `None` turns the route off.
    pub uchat_webhook_token: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReconcileSettings {
    /// `None`: no periodic run.
    pub every: Option<Duration>,
    pub reads_per_second: f64,
}

impl ReconcileSettings {
    fn read(env: &mut Env) -> ReconcileSettings {
        let every: u64 = env.parse(
            &RECONCILE_SECS,
            |_| true,
            |name, _| format!("{name} must be a whole number of seconds"),
        );
        ReconcileSettings {
            every: (every > 0).then(|| Duration::from_secs(every)),
            reads_per_second: env.parse(
                &RECONCILE_READS_PER_SEC,
                |rate: &f64| *rate > 0.0 && rate.is_finite(),
                |name, _| format!("{name} must be a number above 0"),
            ),
        }
    }
}

impl Default for ReconcileSettings {
    /// The table's defaults.
    fn default() -> ReconcileSettings {
        let mut env = Env::new(|_| None);
        let settings = ReconcileSettings::read(&mut env);
        env.finish(Some(settings)).expect("the defaults are valid")
    }
}

/// Every limit `serve` keeps (README, "Limits").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub server: ServerLimits,
    pub pools: PoolLimits,
}

impl Default for Limits {
    /// The table's defaults.
    fn default() -> Limits {
        let mut env = Env::new(|_| None);
        let limits = Limits::read(&mut env);
        env.finish(Some(limits)).expect("the defaults are valid")
    }
}

impl Limits {
    fn read(env: &mut Env) -> Limits {
        let seconds = |env: &mut Env, var| Duration::from_secs(positive(env, var));
        let millis = |env: &mut Env, var| Duration::from_millis(positive(env, var));
        let header_timeout = seconds(env, &HTTP_HEADER_TIMEOUT_SECS);
        let keep_alive: u64 = env.parse(
            &HTTP_KEEP_ALIVE_SECS,
            |_| true,
            |name, _| format!("{name} must be a whole number of seconds"),
        );
        if keep_alive > header_timeout.as_secs() {
            env.report(format!(
                "{} must be at most {} ({}): an idle connection is closed once its next request's \
                 head is late",
                HTTP_KEEP_ALIVE_SECS.name,
                HTTP_HEADER_TIMEOUT_SECS.name,
                header_timeout.as_secs()
            ));
        }
        let server = ServerLimits {
            header_timeout,
            keep_alive: (keep_alive > 0).then(|| Duration::from_secs(keep_alive)),
            body_timeout: seconds(env, &HTTP_BODY_TIMEOUT_SECS),
            request_timeout: seconds(env, &HTTP_REQUEST_TIMEOUT_SECS),
            max_connections: positive(env, &MAX_CONNECTIONS),
            webhook_concurrency: positive(env, &WEBHOOK_CONCURRENCY),
            shutdown_grace: Duration::from_secs(env.parse(
                &SHUTDOWN_GRACE_SECS,
                |_| true,
                |name, _| format!("{name} must be a whole number of seconds"),
            )),
        };
        check_open_file_limit(env, server.max_connections);
        let pools = PoolLimits {
            intake_connections: positive(env, &INTAKE_DB_CONNECTIONS),
            admin_connections: positive(env, &ADMIN_DB_CONNECTIONS),
            statement_timeout: statement_timeout(env),
            admin_statement_timeout: millis(env, &ADMIN_STATEMENT_TIMEOUT_MS),
        };
        Limits { server, pools }
    }
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub partner: PartnerClient,
    pub settings: DeliverySettings,
}

impl Delivery {
    /// The delivery settings of the `worker` command, which cannot run without a token.
    pub fn read(env: &mut Env) -> Option<Delivery> {
        if env.get(&UCHAT_API_TOKEN).is_none() {
            env.report(format!(
                "{} is required to deliver partner calls",
                UCHAT_API_TOKEN.name
            ));
        }
        delivery(env)
    }
}

pub fn log_format(env: &mut Env) -> LogFormat {
    env.parse(
        &LOG_FORMAT,
        |_| true,
        |name, value| format!("{name} must be `pretty` or `json`, not `{}`", value.trim()),
    )
}

impl Config {
    /// The settings of `serve`; `None` when something is wrong, each problem reported.
    pub fn read(env: &mut Env) -> Option<Config> {
        let bind_addr = bind_addr(env);

        let webhook_secrets = match env.get(&STRIPE_WEBHOOK_SECRET) {
            None => {
                env.report(format!(
                    "{} is required: the signing secret (whsec_...) of your Stripe webhook endpoint",
                    STRIPE_WEBHOOK_SECRET.name
                ));
                Vec::new()
            }
            Some(list) => parse_webhook_secrets(&list, env),
        };

        let catalog = load_catalog(env)
            .map_err(|problem| env.report(problem))
            .ok();

        let stripe_api = stripe_api(env);

        let backfill_secs: u64 = env.parse(
            &STRIPE_BACKFILL_SECS,
            |_| true,
            |name, _| format!("{name} must be a whole number of seconds (0 turns it off)"),
        );
        let backfill_every = (backfill_secs > 0).then(|| Duration::from_secs(backfill_secs));

        let settle = Duration::from_millis(env.parse(
            &EVENT_SETTLE_MS,
            |_| true,
            |name, _| format!("{name} must be a whole number of milliseconds"),
        ));

        let delivery = delivery(env);
        let credit_poll = Duration::from_secs(env.parse(
            &UCHAT_CREDIT_POLL_SECS,
            |_| true,
            |name, _| format!("{name} must be a whole number of seconds (0 turns it off)"),
        ));
        let background_work = flag(env, &PROCESS_EVENTS);
        let admin_token = admin_token(env);
        let metrics_public = flag(env, &METRICS_PUBLIC);
        let console_secure_cookie = flag(env, &CONSOLE_SECURE_COOKIE);
        let paid_minutes: u64 = positive(env, &PAID_NOT_PROVISIONED_MINUTES);
        let limits = Limits::read(env);
        let store = StoreSettings::read(env, stripe_api.is_some());
        let reconcile = ReconcileSettings::read(env);
        let uchat_webhook_token = env.get(&UCHAT_WEBHOOK_TOKEN).map(Secret::new);

        Some(Config {
            database_url: database_url(env),
            bind_addr,
            webhook_secrets,
            catalog: Arc::new(catalog?),
            stripe_api,
            backfill_every,
            settle,
            delivery,
            credit_poll,
            admin_token,
            metrics_public,
            console_secure_cookie,
            paid_not_provisioned_after: Duration::from_secs(paid_minutes.saturating_mul(60)),
            background_work,
            limits,
            store,
            reconcile,
            uchat_webhook_token,
        })
    }
}

/// Stripe's API, when `STRIPE_API_KEY` is set.
pub fn stripe_api(env: &Env) -> Option<StripeApi> {
    env.get(&STRIPE_API_KEY)
        .map(|key| StripeApi::new(&env.text(&STRIPE_API_BASE), Secret::new(key)))
}

/// `DATABASE_URL`, checked: a `postgres://` (or `postgresql://`) URL the driver accepts.
/// A problem is reported with the password masked; the value is returned all the same.
pub fn database_url(env: &mut Env) -> String {
    let url = env.text(&DATABASE_URL);
    let name = DATABASE_URL.name;
    let expected = "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
    let problem = match reqwest::Url::parse(&url) {
        // Shown only when it cannot hold a password.
        Err(_) if !url.contains('@') => {
            Some(format!("{name} `{url}` is not a URL (expected {expected})"))
        }
        Err(_) => Some(format!("{name} is not a URL (expected {expected})")),
        Ok(parsed) if !matches!(parsed.scheme(), "postgres" | "postgresql") => Some(format!(
            "{name} must be a Postgres URL ({expected}), not {}://...",
            parsed.scheme()
        )),
        Ok(_) => sqlx::postgres::PgConnectOptions::from_str(&url)
            .err()
            .map(|error| format!("{name} {}: {}", masked(&url), innermost(&error))),
    };
    if let Some(problem) = problem {
        env.report(problem);
    }
    url
}

/// The last cause of an error: the driver wraps its own messages in the same words.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// The shortest admin token accepted: a guessable token would open every operator route.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

fn admin_token(env: &mut Env) -> Option<Secret> {
    let token = env.get(&ADMIN_TOKEN)?;
    if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        // Never echo it, not even its length.
        env.report(format!(
            "{} must be at least {MIN_ADMIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)",
            ADMIN_TOKEN.name
        ));
        return None;
    }
    Some(Secret::new(token))
}

/// Where the service listens.
pub fn bind_addr(env: &mut Env) -> SocketAddr {
    env.parse(
        &BIND_ADDR,
        |_| true,
        |name, value| format!("{name} must be an address like 127.0.0.1:8080, not `{value}`"),
    )
}

/// How long one statement of intake, the processor or delivery may run.
pub fn statement_timeout(env: &mut Env) -> Duration {
    Duration::from_millis(positive(env, &STATEMENT_TIMEOUT_MS))
}

/// File descriptors the service may hold besides its HTTP connections: database and
/// partner connections, Stripe's, the listener, logs, the runtime's own.
const DESCRIPTORS_BESIDES_CONNECTIONS: u64 = 256;

/// Reports a connection cap that the process's open-file limit cannot hold: the cap would
/// not keep the service from running out of descriptors. Linux only (`/proc`).
fn check_open_file_limit(env: &mut Env, max_connections: usize) {
    let Some(limit) = open_file_limit() else {
        return;
    };
    let needed = max_connections as u64 + DESCRIPTORS_BESIDES_CONNECTIONS;
    if needed > limit {
        env.report(format!(
            "{} ({max_connections}) plus {DESCRIPTORS_BESIDES_CONNECTIONS} descriptors for the \
             rest of the service exceeds the open-file limit ({limit}): raise `ulimit -n` or \
             lower {}",
            MAX_CONNECTIONS.name, MAX_CONNECTIONS.name
        ));
    }
}

/// The soft limit on open files (`ulimit -n`), if the platform tells.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `true` or `false`.
fn flag(env: &mut Env, var: &Var) -> bool {
    env.parse(
        var,
        |_| true,
        |name, _| format!("{name} must be `true` or `false`"),
    )
}

/// A whole number above zero.
fn positive<T: FromStr + PartialOrd + From<u8>>(env: &mut Env, var: &Var) -> T {
    env.parse(var, |n: &T| *n > T::from(0), positive_complaint)
}

fn positive_complaint(name: &str, _value: &str) -> String {
    format!("{name} must be a positive whole number")
}

/// Delivery's settings; `None` without `UCHAT_API_TOKEN`.
fn delivery(env: &mut Env) -> Option<Delivery> {
    let timeout = Duration::from_secs(positive(env, &UCHAT_TIMEOUT_SECS));
    let defaults = DeliverySettings::for_timeout(timeout);
    let mut settings = DeliverySettings {
        concurrency: positive(env, &DELIVERY_CONCURRENCY),
        retry: RetryPolicy {
            max_attempts: positive(env, &RETRY_MAX_ATTEMPTS),
            base: Duration::from_secs(positive(env, &RETRY_BASE_SECS)),
            cap: Duration::from_secs(positive(env, &RETRY_CAP_SECS)),
        },
        held_retry: Duration::from_secs(positive(env, &HELD_RETRY_SECS)),
        ..defaults
    };

    let lease = env.parse_if_set(&LEASE_SECS, |n: &u64| *n > 0, positive_complaint);
    let lease = lease.map_or(settings.lease, Duration::from_secs);
    if lease <= timeout {
        env.report(format!(
            "{} must be longer than {} ({}): a claim must outlast a partner request",
            LEASE_SECS.name,
            UCHAT_TIMEOUT_SECS.name,
            timeout.as_secs()
        ));
    }
    settings.lease = lease;

    let token = env.get(&UCHAT_API_TOKEN)?;
    match PartnerClient::new(&env.text(&UCHAT_API_BASE), Secret::new(token), timeout) {
        Ok(partner) => Some(Delivery { partner, settings }),
        Err(error) => {
            env.report(format!(
                "{} / {}: {error}",
                UCHAT_API_BASE.name, UCHAT_API_TOKEN.name
            ));
            None
        }
    }
}

/// The catalog at `CATALOG_PATH`, with every problem in it on one line each.
fn load_catalog(env: &Env) -> Result<Catalog, String> {
    let path = PathBuf::from(env.text(&CATALOG_PATH));
    Catalog::load(&path).map_err(|error| {
        format!(
            "{}: {error}\n(start from catalog.example.toml; `uchat-billing check-catalog PATH` checks a file)",
            CATALOG_PATH.name
        )
    })
}

fn parse_webhook_secrets(list: &str, env: &mut Env) -> Vec<Secret> {
    let mut secrets = Vec::new();
    for (position, secret) in list.split(',').map(str::trim).enumerate() {
        if secret.starts_with("whsec_") && secret.len() > "whsec_".len() {
            secrets.push(Secret::new(secret));
        } else {
            // Never echo the value: it may be a real secret pasted in the wrong place.
            env.report(format!(
                "{} entry {} is not a Stripe signing secret (expected whsec_...)",
                STRIPE_WEBHOOK_SECRET.name,
                position + 1
            ));
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::env::ConfigErrors;

    impl Config {
        /// What `serve` reads, as `main` reads it, from `get` instead of the environment.
        fn from_lookup(
            get: impl Fn(&str) -> Option<String> + 'static,
        ) -> Result<Config, ConfigErrors> {
            let mut env = Env::new(get);
            log_format(&mut env);
            let config = Config::read(&mut env);
            env.finish(config)
        }
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/catalog.example.toml");
        let mut map: HashMap<String, String> =
            HashMap::from([("CATALOG_PATH".into(), example.into())]);
        map.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_apply_when_only_the_secret_is_set() {
        let config =
            Config::from_lookup(lookup(&[("STRIPE_WEBHOOK_SECRET", "whsec_abc")])).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.bind_addr.to_string(), DEFAULT_BIND_ADDR);
        assert_eq!(config.webhook_secrets, vec![Secret::new("whsec_abc")]);
        assert_eq!(config.admin_token, None);
        assert!(!config.metrics_public);
    }

    #[test]
    fn the_admin_token_and_public_metrics_are_read() {
        let token = "0123456789abcdef0123456789abcdef";
        let config = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("ADMIN_TOKEN", &format!(" {token} ")),
            ("METRICS_PUBLIC", "true"),
        ]))
        .unwrap();
        assert_eq!(config.admin_token, Some(Secret::new(token)));
        assert!(config.metrics_public);

        let errors = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("METRICS_PUBLIC", "yes"),
        ]))
        .unwrap_err();
        assert_eq!(errors.0, vec!["METRICS_PUBLIC must be `true` or `false`"]);
    }

    #[test]
    fn a_short_admin_token_is_refused_without_echoing_it() {
        let errors = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("ADMIN_TOKEN", "0123456789abcdef0123456789abcde"),
            ("BIND_ADDR", "nowhere"),
        ]))
        .unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert!(errors.0[1].starts_with("ADMIN_TOKEN must be at least 32 characters"));
        assert!(!errors.to_string().contains("0123456789"), "{errors}");
    }

    #[test]
    fn several_secrets_are_accepted_for_rotation() {
        let config =
            Config::from_lookup(lookup(&[("STRIPE_WEBHOOK_SECRET", "whsec_old, whsec_new")]))
                .unwrap();
        assert_eq!(
            config.webhook_secrets,
            vec![Secret::new("whsec_old"), Secret::new("whsec_new")]
        );
    }

    #[test]
    fn every_problem_is_reported_without_echoing_secrets() {
        let errors = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_ok,sk_live_oops"),
            ("BIND_ADDR", "nowhere"),
            ("LOG_FORMAT", "xml"),
        ]))
        .unwrap_err();
        assert_eq!(errors.0.len(), 3, "{errors}");
        let text = errors.to_string();
        assert!(text.contains("BIND_ADDR"));
        assert!(text.contains("STRIPE_WEBHOOK_SECRET entry 2"));
        assert!(text.contains("LOG_FORMAT"));
        assert!(!text.contains("sk_live_oops"));
    }

    #[test]
    fn the_lease_defaults_from_the_timeout_and_must_outlast_it() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![
                ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
                ("UCHAT_API_TOKEN", "token"),
            ];
            all.extend_from_slice(pairs);
            Config::from_lookup(lookup(&all))
        };
        let lease = |config: Config| config.delivery.unwrap().settings.lease;
        assert_eq!(
            lease(with(&[("UCHAT_TIMEOUT_SECS", "2")]).unwrap()),
            Duration::from_secs(18)
        );
        assert_eq!(
            lease(with(&[("UCHAT_TIMEOUT_SECS", "2"), ("LEASE_SECS", "3")]).unwrap()),
            Duration::from_secs(3)
        );
        let errors = with(&[("UCHAT_TIMEOUT_SECS", "2"), ("LEASE_SECS", "2")]).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(
            errors.0[0].starts_with("LEASE_SECS must be longer"),
            "{errors}"
        );
    }

    #[test]
    fn the_database_url_must_be_a_postgres_url_and_its_password_is_never_shown() {
        let problem = |url: &str| {
            let mut env = Env::new({
                let url = url.to_owned();
                move |name| (name == "DATABASE_URL").then(|| url.clone())
            });
            assert_eq!(database_url(&mut env), url);
            env.finish(Some(())).err().map(|errors| errors.0.join("\n"))
        };
        assert_eq!(problem("postgresql://app:pw@db.internal/billing"), None);
        assert_eq!(
            problem("not-a-url").unwrap(),
            "DATABASE_URL `not-a-url` is not a URL (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
        );
        let at_sign = problem("app:s3cret@db").unwrap();
        assert!(!at_sign.contains("s3cret"), "{at_sign}");
        let mysql = problem("mysql://root:s3cret@db/billing").unwrap();
        assert!(
            mysql.starts_with("DATABASE_URL must be a Postgres URL"),
            "{mysql}"
        );
        assert!(!mysql.contains("s3cret"), "{mysql}");
        let option = problem("postgres://app:s3cret@db/billing?sslmode=sometimes").unwrap();
        assert_eq!(
            option,
            "DATABASE_URL postgres://app:***@db/billing?sslmode=sometimes: unknown value \"sometimes\" for `ssl_mode`"
        );
    }

    #[test]
    fn a_missing_secret_is_reported() {
        let errors = Config::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(errors.0[0].starts_with("STRIPE_WEBHOOK_SECRET is required"));
    }

    #[test]
    fn the_readmes_limits_name_each_limits_variable_with_its_default() {
        let readme = include_str!("../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|line| !line.starts_with("| limit | default | variable |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .collect();
        let mut named = Vec::new();
        for row in &rows {
            let cells: Vec<&str> = row.split(" | ").collect();
            let name = cells[2].trim_end_matches(" |").trim_matches('`');
            let var = VARIABLES
                .iter()
                .find(|var| var.name == name)
                .unwrap_or_else(|| panic!("{name} is no variable: {row}"));
            let Unset::Default(default) = var.unset else {
                panic!("{name} has no default");
            };
            assert!(cells[1].starts_with(&format!("`{default}`")), "{row}");
            named.push(name);
        }
        // The limits are the variables from the header timeout to the admin statement's.
        let position = |limit: Var| VARIABLES.iter().position(|var| var.name == limit.name);
        let (first, last) = (
            position(HTTP_HEADER_TIMEOUT_SECS).unwrap(),
            position(ADMIN_STATEMENT_TIMEOUT_MS).unwrap(),
        );
        for limit in &VARIABLES[first..=last] {
            assert!(
                named.contains(&limit.name),
                "README's limits lack {}",
                limit.name
            );
        }
    }

    #[test]
    fn the_limits_are_read_and_checked_together() {
        let limits = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("HTTP_HEADER_TIMEOUT_SECS", "3"),
            ("HTTP_KEEP_ALIVE_SECS", "0"),
            ("MAX_CONNECTIONS", "16"),
            ("ADMIN_STATEMENT_TIMEOUT_MS", "250"),
        ]))
        .unwrap()
        .limits;
        assert_eq!(limits.server.header_timeout, Duration::from_secs(3));
        assert_eq!(limits.server.keep_alive, None);
        assert_eq!(limits.server.max_connections, 16);
        assert_eq!(
            limits.pools.admin_statement_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(limits.server.shutdown_grace, Duration::from_secs(20));

        let errors = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("HTTP_HEADER_TIMEOUT_SECS", "3"),
            ("HTTP_KEEP_ALIVE_SECS", "5"),
            ("WEBHOOK_CONCURRENCY", "0"),
            ("MAX_CONNECTIONS", "100000000"),
        ]))
        .unwrap_err();
        assert_eq!(errors.0.len(), 3, "{errors}");
        assert!(errors.0[0].starts_with("HTTP_KEEP_ALIVE_SECS must be at most"));
        assert_eq!(
            errors.0[1],
            "WEBHOOK_CONCURRENCY must be a positive whole number"
        );
        assert!(errors.0[2].starts_with("MAX_CONNECTIONS (100000000) plus 256"));
    }

    #[test]
    fn the_backfill_runs_hourly_unless_turned_off_and_paid_orders_get_15_minutes() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![("STRIPE_WEBHOOK_SECRET", "whsec_abc")];
            all.extend_from_slice(pairs);
            Config::from_lookup(lookup(&all))
        };
        let config = with(&[]).unwrap();
        assert_eq!(config.backfill_every, Some(Duration::from_secs(3600)));
        assert_eq!(config.paid_not_provisioned_after, Duration::from_secs(900));
        let config = with(&[
            ("STRIPE_BACKFILL_SECS", "0"),
            ("PAID_NOT_PROVISIONED_MINUTES", "30"),
        ])
        .unwrap();
        assert_eq!(config.backfill_every, None);
        assert_eq!(config.paid_not_provisioned_after, Duration::from_secs(1800));
        let errors = with(&[
            ("STRIPE_BACKFILL_SECS", "hourly"),
            ("PAID_NOT_PROVISIONED_MINUTES", "0"),
        ])
        .unwrap_err();
        assert_eq!(
            errors.0,
            [
                "STRIPE_BACKFILL_SECS must be a whole number of seconds (0 turns it off)",
                "PAID_NOT_PROVISIONED_MINUTES must be a positive whole number"
            ]
        );
    }

    #[test]
    fn unset_variables_give_the_defaults_the_table_states_and_delivery_has() {
        let config = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("UCHAT_API_TOKEN", "token"),
        ]))
        .unwrap();
        assert_eq!(config.settle, Duration::from_millis(1000));
        assert!(config.background_work);
        let delivery = config.delivery.unwrap();
        assert_eq!(
            format!("{:?}", delivery.settings),
            format!(
                "{:?}",
                DeliverySettings::for_timeout(Duration::from_secs(15))
            )
        );
        let mut env = Env::new(|_| None);
        assert_eq!(log_format(&mut env), LogFormat::Pretty);
        assert_eq!(env.text(&UCHAT_API_BASE), DEFAULT_UCHAT_API_BASE);
    }
}
