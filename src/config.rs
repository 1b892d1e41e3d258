//! Settings from the environment (and `.env`), validated once at start.
//!
//! Every problem is reported, one line each, so an operator fixes them all in one go.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::delivery::{DeliverySettings, RetryPolicy};
use crate::partner::PartnerClient;
use crate::plan::Catalog;
use crate::secret::Secret;
use crate::stripe::api::{self, StripeApi};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/uchat_billing";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_CATALOG_PATH: &str = "catalog.toml";
pub const DEFAULT_SETTLE_MS: u64 = 1000;
pub const DEFAULT_UCHAT_API_BASE: &str = "https://www.uchat.com.au/api";

/// The variables `--help` lists, with what each is for.
pub const ENVIRONMENT_HELP: &str = "\
Environment (also read from a .env file in the working directory):
  DATABASE_URL           Postgres URL [default: postgres://postgres@127.0.0.1:5432/uchat_billing]
                         The database is created if missing; migrations run at start.
  BIND_ADDR              Address the HTTP server listens on [default: 127.0.0.1:8080]
  STRIPE_WEBHOOK_SECRET  Stripe endpoint signing secret(s), whsec_..., comma-separated
                         to accept several during a rotation. Required by `serve`.
  CATALOG_PATH           The catalog: Stripe prices to UChat plans, add-ons and points
                         [default: catalog.toml]; see catalog.example.toml
  STRIPE_API_KEY         Restricted Stripe key (read checkout sessions and customers), to
                         read line items of one-off payments and customers' emails
  STRIPE_API_BASE        [default: https://api.stripe.com]
  EVENT_SETTLE_MS        How long an event rests before it is applied, so siblings sent
                         together apply in Stripe's order [default: 1000]
  UCHAT_API_BASE         UChat Partner API [default: https://www.uchat.com.au/api]
  UCHAT_API_TOKEN        Partner API token. Required to deliver (`worker`); without it
                         `serve` stores and plans but does not deliver.
  UCHAT_TIMEOUT_SECS     Timeout of one partner request [default: 15]
  DELIVERY_CONCURRENCY   Partner calls in flight per process [default: 8]
  RETRY_MAX_ATTEMPTS     Tries of a failing call before it is dead [default: 12]
  RETRY_BASE_SECS        Ceiling of the first retry wait; doubles each try [default: 150]
  RETRY_CAP_SECS         Longest retry wait [default: 86400]
  HELD_RETRY_SECS        Retry period of a call held for lack of partner credit [default: 900]
  LEASE_SECS             How long a claimed call is a worker's before another may take it
                         back; must outlast a try (up to three partner requests)
                         [default: 4 x UCHAT_TIMEOUT_SECS + 10]
  PROCESS_EVENTS         true: `serve` also applies events and delivers calls; false:
                         intake only (another instance does the rest) [default: true]
  ADMIN_TOKEN            Bearer token for the operator API (/admin/...) and /metrics;
                         unset, those routes answer 503 \"admin disabled\"
  METRICS_PUBLIC         true: serve /metrics without the admin token [default: false]
  LOG_FORMAT             pretty | json [default: pretty]
  RUST_LOG               Log filter [default: info]";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub bind_addr: SocketAddr,
    pub webhook_secrets: Vec<Secret>,
    pub catalog: Arc<Catalog>,
    pub stripe_api: Option<StripeApi>,
    pub settle: Duration,
    /// Where and how to deliver partner calls; `None` without `UCHAT_API_TOKEN`.
    pub delivery: Option<Delivery>,
    /// The operator API's bearer token; `None` turns the operator API off.
    pub admin_token: Option<Secret>,
    /// Serve `/metrics` to anyone, for a scraper that cannot send a token.
    pub metrics_public: bool,
    /// Run the event processor (and delivery, if configured) inside `serve`
    /// (`PROCESS_EVENTS`). Tests turn it off to drive them themselves.
    pub background_work: bool,
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub partner: PartnerClient,
    pub settings: DeliverySettings,
}

impl Delivery {
    /// The delivery settings of the `worker` command, which cannot run without a token.
    pub fn from_env() -> Result<Delivery, ConfigErrors> {
        Delivery::from_lookup(var)
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Delivery, ConfigErrors> {
        let mut problems = Vec::new();
        if get("UCHAT_API_TOKEN").is_none() {
            problems.push("UCHAT_API_TOKEN is required to deliver partner calls".to_owned());
        }
        if let Err(problem) = log_format(&get) {
            problems.push(problem);
        }
        match delivery(&get, &mut problems) {
            Some(delivery) if problems.is_empty() => Ok(delivery),
            _ => Err(ConfigErrors(problems)),
        }
    }
}

/// All the problems found in the environment.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            writeln!(f, "configuration error: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads one variable; empty counts as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn database_url(get: &impl Fn(&str) -> Option<String>) -> String {
    get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

pub fn log_format(get: &impl Fn(&str) -> Option<String>) -> Result<LogFormat, String> {
    match get("LOG_FORMAT").as_deref().map(str::trim) {
        None | Some("pretty") => Ok(LogFormat::Pretty),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(format!(
            "LOG_FORMAT must be `pretty` or `json`, not `{other}`"
        )),
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigErrors> {
        Config::from_lookup(var)
    }

    /// Builds the configuration from any variable lookup, so tests need not touch the
    /// process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();

        let bind_addr = get("BIND_ADDR").unwrap_or_else(|| DEFAULT_BIND_ADDR.to_owned());
        let bind_addr = bind_addr.trim().parse().unwrap_or_else(|_| {
            problems.push(format!(
                "BIND_ADDR must be an address like 127.0.0.1:8080, not `{bind_addr}`"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let webhook_secrets = match get("STRIPE_WEBHOOK_SECRET") {
            None => {
                problems.push(
                    "STRIPE_WEBHOOK_SECRET is required: the signing secret (whsec_...) of your Stripe webhook endpoint"
                        .to_owned(),
                );
                Vec::new()
            }
            Some(list) => parse_webhook_secrets(&list, &mut problems),
        };

        if let Err(problem) = log_format(&get) {
            problems.push(problem);
        }

        let catalog = load_catalog(&get)
            .map_err(|problem| problems.push(problem))
            .ok();

        let stripe_api = get("STRIPE_API_KEY").map(|key| {
            let base = get("STRIPE_API_BASE").unwrap_or_else(|| api::DEFAULT_BASE.to_owned());
            StripeApi::new(&base, Secret::new(key.trim()))
        });

        let settle = match get("EVENT_SETTLE_MS").map(|ms| ms.trim().parse::<u64>()) {
            None => Duration::from_millis(DEFAULT_SETTLE_MS),
            Some(Ok(ms)) => Duration::from_millis(ms),
            Some(Err(_)) => {
                problems.push("EVENT_SETTLE_MS must be a whole number of milliseconds".to_owned());
                Duration::ZERO
            }
        };

        let delivery = delivery(&get, &mut problems);
        let background_work = flag(&get, "PROCESS_EVENTS", true, &mut problems);
        let admin_token = get("ADMIN_TOKEN").map(|token| Secret::new(token.trim()));
        let metrics_public = flag(&get, "METRICS_PUBLIC", false, &mut problems);

        match catalog {
            Some(catalog) if problems.is_empty() => Ok(Config {
                database_url: database_url(&get),
                bind_addr,
                webhook_secrets,
                catalog: Arc::new(catalog),
                stripe_api,
                settle,
                delivery,
                admin_token,
                metrics_public,
                background_work,
            }),
            _ => Err(ConfigErrors(problems)),
        }
    }
}

/// Reads `true` or `false`; anything else is reported and the default used meanwhile.
fn flag(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
    problems: &mut Vec<String>,
) -> bool {
    match get(name).as_deref().map(str::trim) {
        None => default,
        Some("true") => true,
        Some("false") => false,
        Some(_) => {
            problems.push(format!("{name} must be `true` or `false`"));
            default
        }
    }
}

/// Reads a number; a bad value is reported and the default used meanwhile.
fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    valid: impl Fn(&T) -> bool,
    problems: &mut Vec<String>,
) -> T {
    match get(name).map(|value| value.trim().parse::<T>()) {
        None => default,
        Some(Ok(value)) if valid(&value) => value,
        Some(_) => {
            problems.push(format!("{name} must be a positive whole number"));
            default
        }
    }
}

fn delivery(get: &impl Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Option<Delivery> {
    let positive = |n: &u64| *n > 0;
    let timeout = Duration::from_secs(number(get, "UCHAT_TIMEOUT_SECS", 15, positive, problems));
    let mut settings = DeliverySettings::for_timeout(timeout);
    settings.concurrency = number(
        get,
        "DELIVERY_CONCURRENCY",
        settings.concurrency,
        |n| *n > 0,
        problems,
    );
    settings.retry = RetryPolicy {
        max_attempts: number(
            get,
            "RETRY_MAX_ATTEMPTS",
            settings.retry.max_attempts,
            |n| *n > 0,
            problems,
        ),
        base: Duration::from_secs(number(
            get,
            "RETRY_BASE_SECS",
            settings.retry.base.as_secs(),
            positive,
            problems,
        )),
        cap: Duration::from_secs(number(
            get,
            "RETRY_CAP_SECS",
            settings.retry.cap.as_secs(),
            positive,
            problems,
        )),
    };
    settings.held_retry = Duration::from_secs(number(
        get,
        "HELD_RETRY_SECS",
        settings.held_retry.as_secs(),
        positive,
        problems,
    ));

    let lease = number(
        get,
        "LEASE_SECS",
        settings.lease.as_secs(),
        positive,
        problems,
    );
    if lease <= timeout.as_secs() {
        problems.push(format!(
            "LEASE_SECS must be longer than UCHAT_TIMEOUT_SECS ({}): a claim must outlast a partner request",
            timeout.as_secs()
        ));
    }
    settings.lease = Duration::from_secs(lease);

    let token = get("UCHAT_API_TOKEN")?;
    let base = get("UCHAT_API_BASE").unwrap_or_else(|| DEFAULT_UCHAT_API_BASE.to_owned());
    match PartnerClient::new(base.trim(), Secret::new(token.trim()), timeout) {
        Ok(partner) => Some(Delivery { partner, settings }),
        Err(error) => {
            problems.push(format!("UCHAT_API_BASE / UCHAT_API_TOKEN: {error}"));
            None
        }
    }
}

/// The catalog at `CATALOG_PATH`, with every problem in it on one line each.
pub fn load_catalog(get: &impl Fn(&str) -> Option<String>) -> Result<Catalog, String> {
    let path =
        PathBuf::from(get("CATALOG_PATH").unwrap_or_else(|| DEFAULT_CATALOG_PATH.to_owned()));
    Catalog::load(&path).map_err(|error| {
        format!("CATALOG_PATH: {error}\n(start from catalog.example.toml; `uchat-billing check-catalog PATH` checks a file)")
    })
}

fn parse_webhook_secrets(list: &str, problems: &mut Vec<String>) -> Vec<Secret> {
    let mut secrets = Vec::new();
    for (position, secret) in list.split(',').map(str::trim).enumerate() {
        if secret.starts_with("whsec_") && secret.len() > "whsec_".len() {
            secrets.push(Secret::new(secret));
        } else {
            // Never echo the value: it may be a real secret pasted in the wrong place.
            problems.push(format!(
                "STRIPE_WEBHOOK_SECRET entry {} is not a Stripe signing secret (expected whsec_...)",
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
        let config = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("ADMIN_TOKEN", " s3cret "),
            ("METRICS_PUBLIC", "true"),
        ]))
        .unwrap();
        assert_eq!(config.admin_token, Some(Secret::new("s3cret")));
        assert!(config.metrics_public);

        let errors = Config::from_lookup(lookup(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
            ("METRICS_PUBLIC", "yes"),
        ]))
        .unwrap_err();
        assert_eq!(errors.0, vec!["METRICS_PUBLIC must be `true` or `false`"]);
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
    fn a_missing_secret_is_reported() {
        let errors = Config::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(errors.0[0].starts_with("STRIPE_WEBHOOK_SECRET is required"));
    }
}
