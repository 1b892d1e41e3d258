//! The partner's prepaid credit, read from UChat into the `uchat_billing_partner_credit`
//! gauge at a steady pace, so that an alert fires before a sale is held for lack of it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::partner::PartnerClient;

/// Reads the balance now and every `every` until `stop` turns true. A failed read is
/// logged and the gauge keeps the last balance read.
pub async fn poll(
    partner: PartnerClient,
    metrics: Arc<Metrics>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(
        every_secs = every.as_secs(),
        "watching the partner's credit balance"
    );
    loop {
        match partner.credit_balance().await {
            Ok(credit) => metrics.set_partner_credit(credit),
            Err(error) => tracing::warn!(%error, "reading the partner's credit balance failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}
