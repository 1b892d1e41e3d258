//! The storefront: what the partner's pricing and thank-you pages need. The catalog's
//! public prices joined with Stripe's (kept in memory, read again every few minutes),
//! Checkout sessions for them, a Billing Portal session for a buyer, and the buyer's
//! view of their order.

pub mod checkout;
pub mod settings;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::RwLock;

use crate::plan::Catalog;
use crate::stripe::api::{PriceInfo, StripeApi, StripeApiError};
pub use settings::StoreSettings;

/// The catalog's public prices as Stripe has them, when they were read.
#[derive(Clone, Debug, Serialize)]
pub struct PriceList {
    pub prices: Vec<PriceInfo>,
    #[serde(skip)]
    pub read_at: Option<Instant>,
}

/// The public prices, read from Stripe at most once per refresh period, however many
/// buyers load the pricing page.
#[derive(Clone)]
pub struct PriceCache {
    stripe: StripeApi,
    catalog: Arc<Catalog>,
    refresh: std::time::Duration,
    list: Arc<RwLock<PriceList>>,
}

impl PriceCache {
    pub fn new(stripe: StripeApi, catalog: Arc<Catalog>, refresh: std::time::Duration) -> Self {
        PriceCache {
            stripe,
            catalog,
            refresh,
            list: Arc::new(RwLock::new(PriceList {
                prices: Vec::new(),
                read_at: None,
            })),
        }
    }

    /// The prices; read from Stripe first if never read or older than the refresh period.
    /// While Stripe is unreachable, the last prices read are served.
    pub async fn prices(&self) -> Result<PriceList, StripeApiError> {
        {
            let list = self.list.read().await;
            if list.read_at.is_some_and(|at| at.elapsed() < self.refresh) {
                return Ok(list.clone());
            }
        }
        let mut list = self.list.write().await;
        // Another request may have read them while this one waited for the lock.
        if list.read_at.is_some_and(|at| at.elapsed() < self.refresh) {
            return Ok(list.clone());
        }
        match self.read().await {
            Ok(prices) => {
                *list = PriceList {
                    prices,
                    read_at: Some(Instant::now()),
                };
                Ok(list.clone())
            }
            Err(error) if list.read_at.is_some() => {
                tracing::warn!(%error, "reading the store's prices failed; serving the last read");
                Ok(list.clone())
            }
            Err(error) => Err(error),
        }
    }

    /// Reads the prices from Stripe now.
    pub async fn refresh(&self) -> Result<PriceList, StripeApiError> {
        let prices = self.read().await?;
        let mut list = self.list.write().await;
        *list = PriceList {
            prices,
            read_at: Some(Instant::now()),
        };
        Ok(list.clone())
    }

    /// Every public price Stripe still sells, in the catalog's order.
    async fn read(&self) -> Result<Vec<PriceInfo>, StripeApiError> {
        let mut prices = Vec::new();
        for id in self.catalog.public_prices() {
            let price = self.stripe.price(id).await?;
            if price.active {
                prices.push(price);
            } else {
                tracing::warn!(price = %id, "a public price is archived in Stripe; not offered");
            }
        }
        tracing::info!(prices = prices.len(), "store prices read from Stripe");
        Ok(prices)
    }
}
