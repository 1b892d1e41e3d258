//! Everything Stripe: proving a webhook is authentic and reading the few fields we need.

pub mod api;
pub mod decode;
pub mod signature;
