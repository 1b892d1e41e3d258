//! The service from the outside, in one test binary (so the crate links once): each
//! module is one area, all on the helpers of `common`.

mod admin;
mod burst;
mod cli;
mod common;
mod delivery;
mod flow;
mod fuzz;
mod limits;
mod processing;
mod resilience;
mod test_app;
mod webhook;
