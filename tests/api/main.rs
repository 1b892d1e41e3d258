//! The service from the outside, in one test binary (so the crate links once): each
//! module is one area, all on the helpers of `common`.

mod admin;
mod alerts;
mod backfill;
mod batched_delivery;
mod batched_processing;
mod browser;
mod burst;
mod check_catalog_online;
mod cli;
mod common;
mod console;
mod credit_gauge;
mod delivery;
mod demo;
mod flow;
mod fuzz;
mod group_commit;
mod limits;
mod partner_contract;
mod processing;
mod reconcile;
mod resilience;
mod start_errors;
mod store;
mod store_browser;
mod stripe_reads;
mod test_app;
mod uchat_webhooks;
mod webhook;
mod workspaces;
