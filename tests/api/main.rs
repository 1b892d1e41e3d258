//! The service from the outside, in one test binary (so the crate links once): each
//! module is one area, all on the helpers of `common`.

mod admin;
mod alerts;
mod backfill;
mod browser;
mod burst;
mod cli;
mod common;
mod delivery;
mod demo;
mod flow;
mod fuzz;
mod limits;
mod processing;
mod resilience;
mod start_errors;
mod stripe_reads;
mod test_app;
mod webhook;
mod workspaces;
