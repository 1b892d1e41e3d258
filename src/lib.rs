//! uchat-billing: Stripe payment events in, UChat partner provisioning out.

/// `Display` for fieldless enums, as their serde name (`needs_attention`,
/// `change-plan`), so a status or kind reads the same in JSON, SQL, messages and logs.
macro_rules! display_as_serialized {
    ($($enum:ty),+) => {$(
        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                serde::Serialize::serialize(self, f)
            }
        }
    )+};
}

pub mod backfill;
pub mod catalog_online;
pub mod config;
pub mod credit;
pub mod db;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod dry_run;
pub mod env;
pub mod http;
pub mod intake;
pub mod metrics;
pub mod partner;
pub mod plan;
pub mod processor;
pub mod reconcile;
pub mod retry;
pub mod sandbox;
pub mod secret;
pub mod start_error;
pub mod startup;
pub mod store;
pub mod stripe;
pub mod telemetry;

/// How the service names itself to the APIs it calls (Stripe, UChat).
pub const USER_AGENT: &str = concat!("uchat-billing/", env!("CARGO_PKG_VERSION"));
