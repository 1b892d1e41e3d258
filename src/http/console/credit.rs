//! The partner's credit as the overview shows it: read from UChat with a short timeout and
//! kept for a little while, so a page load never waits long on UChat, nor asks it often.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::partner::PartnerClient;

/// How long the overview waits for UChat's answer before it shows "unknown".
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a read (or a failure) is shown before UChat is asked again.
const KEEP_FOR: Duration = Duration::from_secs(30);

pub struct PartnerCredit {
    /// `None` without `UCHAT_API_TOKEN`: the credit is unknown.
    partner: Option<PartnerClient>,
    last: Mutex<Option<(Instant, Option<f64>)>>,
}

impl PartnerCredit {
    pub fn new(partner: Option<PartnerClient>) -> Self {
        PartnerCredit {
            partner,
            last: Mutex::new(None),
        }
    }

    /// The credit, `None` when unknown. Concurrent page loads share one read.
    pub async fn balance(&self) -> Option<f64> {
        let partner = self.partner.as_ref()?;
        let mut last = self.last.lock().await;
        if let Some((read_at, balance)) = *last {
            if read_at.elapsed() < KEEP_FOR {
                return balance;
            }
        }
        let balance = match tokio::time::timeout(READ_TIMEOUT, partner.credit_balance()).await {
            Ok(Ok(balance)) => Some(balance),
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading the partner credit for the console failed");
                None
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = READ_TIMEOUT.as_millis() as u64,
                    "the partner credit read timed out"
                );
                None
            }
        };
        *last = Some((Instant::now(), balance));
        balance
    }
}
