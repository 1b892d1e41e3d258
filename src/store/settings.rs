//! The storefront's settings (`STORE_*`), read with the rest of the environment.

use std::time::Duration;

use reqwest::Url;

use crate::env::{Env, Unset, Var};

pub const STORE_ENABLED: Var = Var {
    name: "STORE_ENABLED",
    unset: Unset::Default("false"),
    meaning: "`true` serves the storefront under `/store` (catalog, checkout, order status, \
              billing portal, and the example pages); needs `STRIPE_API_KEY` with write \
              access to Checkout and Billing Portal sessions and read access to prices and \
              products",
};
pub const STORE_SUCCESS_URL: Var = Var {
    name: "STORE_SUCCESS_URL",
    unset: Unset::Derived("required with STORE_ENABLED"),
    meaning: "the thank-you page Stripe returns buyers to (`?session_id=...` is added); a \
              checkout may name another page only under it",
};
pub const STORE_CANCEL_URL: Var = Var {
    name: "STORE_CANCEL_URL",
    unset: Unset::Derived("required with STORE_ENABLED"),
    meaning: "the page a buyer who leaves Checkout returns to (the pricing page), and where \
              the billing portal returns; a request may name another page only under it",
};
pub const STORE_LOGIN_URL: Var = Var {
    name: "STORE_LOGIN_URL",
    unset: Unset::Derived("required with STORE_ENABLED"),
    meaning: "where a buyer logs in to their workspace: the thank-you page links to it once \
              the workspace is ready",
};
pub const STORE_ALLOWED_ORIGINS: Var = Var {
    name: "STORE_ALLOWED_ORIGINS",
    unset: Unset::Off,
    meaning: "comma-separated origins (`https://shop.example.com`) whose pages may call \
              `/store` from the browser (CORS); pages served by the service itself need none",
};
pub const STORE_RATE_PER_MINUTE: Var = Var {
    name: "STORE_RATE_PER_MINUTE",
    unset: Unset::Default("10"),
    meaning: "checkouts and portal sessions one client address may create per minute (as a \
              burst, then refilled evenly); more get `429` with `Retry-After`",
};
pub const STORE_CATALOG_REFRESH_SECS: Var = Var {
    name: "STORE_CATALOG_REFRESH_SECS",
    unset: Unset::Default("300"),
    meaning: "how often the storefront's prices are read again from Stripe; \
              `GET /store/catalog?refresh=true` with the admin token reads them at once",
};

/// The storefront's variables, in the order the README lists them.
pub const VARIABLES: [Var; 7] = [
    STORE_ENABLED,
    STORE_SUCCESS_URL,
    STORE_CANCEL_URL,
    STORE_LOGIN_URL,
    STORE_ALLOWED_ORIGINS,
    STORE_RATE_PER_MINUTE,
    STORE_CATALOG_REFRESH_SECS,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    pub success_url: Url,
    pub cancel_url: Url,
    pub login_url: Url,
    pub allowed_origins: Vec<String>,
    pub rate_per_minute: u32,
    pub catalog_refresh: Duration,
}

impl StoreSettings {
    /// `None` when the storefront is off or a setting is wrong (then reported).
    pub fn read(env: &mut Env, stripe_api: bool) -> Option<StoreSettings> {
        let enabled: bool = env.parse(
            &STORE_ENABLED,
            |_| true,
            |name, _| format!("{name} must be `true` or `false`"),
        );
        if !enabled {
            return None;
        }
        if !stripe_api {
            env.report(format!(
                "{} needs STRIPE_API_KEY: the storefront reads prices and creates Checkout \
                 sessions",
                STORE_ENABLED.name
            ));
        }
        let success_url = page_url(env, &STORE_SUCCESS_URL);
        let cancel_url = page_url(env, &STORE_CANCEL_URL);
        let login_url = page_url(env, &STORE_LOGIN_URL);
        let allowed_origins = env
            .get(&STORE_ALLOWED_ORIGINS)
            .unwrap_or_default()
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect::<Vec<_>>();
        for origin in &allowed_origins {
            let valid = Url::parse(origin)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.path() == "/");
            if !valid {
                env.report(format!(
                    "{}: `{origin}` is no origin (expected https://host[:port])",
                    STORE_ALLOWED_ORIGINS.name
                ));
            }
        }
        let rate_per_minute = env.parse(
            &STORE_RATE_PER_MINUTE,
            |n: &u32| *n > 0,
            |name, _| format!("{name} must be a positive whole number"),
        );
        let refresh: u64 = env.parse(
            &STORE_CATALOG_REFRESH_SECS,
            |n: &u64| *n > 0,
            |name, _| format!("{name} must be a positive whole number of seconds"),
        );
        Some(StoreSettings {
            success_url: success_url?,
            cancel_url: cancel_url?,
            login_url: login_url?,
            allowed_origins,
            rate_per_minute,
            catalog_refresh: Duration::from_secs(refresh),
        })
    }
}

/// A required `http(s)://` URL.
fn page_url(env: &mut Env, var: &Var) -> Option<Url> {
    let Some(value) = env.get(var) else {
        env.report(format!(
            "{} is required with {}=true",
            var.name, STORE_ENABLED.name
        ));
        return None;
    };
    match Url::parse(&value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        _ => {
            env.report(format!(
                "{} must be an http(s) URL, not `{value}`",
                var.name
            ));
            None
        }
    }
}
