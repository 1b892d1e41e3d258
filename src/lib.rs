//! uchat-billing: Stripe payment events in, UChat partner provisioning out.

pub mod config;
pub mod db;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod dry_run;
pub mod env;
pub mod http;
pub mod metrics;
pub mod partner;
pub mod plan;
pub mod processor;
pub mod sandbox;
pub mod secret;
pub mod startup;
pub mod stripe;
pub mod telemetry;
