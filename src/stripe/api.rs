//! The two Stripe API reads the processor needs: a Checkout session's line items (they
//! are not in the event) and a customer's email and name (when no event carries them).
//!
//! Two GETs do not justify the typed Stripe SDK's compile time; the answers are decoded
//! as leniently as events are.

use std::time::Duration;

use serde_json::Value;

use super::decode::line_item;
use crate::domain::LineItem;
use crate::secret::Secret;
use crate::USER_AGENT;

pub const DEFAULT_BASE: &str = "https://api.stripe.com";

/// `Debug` shows the base URL; the key is a `Secret`.
#[derive(Clone, Debug)]
pub struct StripeApi {
    base: String,
    key: Secret,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeApiError {
    /// Stripe could not be reached or answered 429/5xx: try the event again later.
    #[error("Stripe API unavailable: {0}")]
    Unavailable(String),
    /// Stripe refused the request (bad key, unknown object): retrying will not help.
    #[error("Stripe API refused the request: {0}")]
    Refused(String),
}

impl StripeApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StripeApiError::Unavailable(_))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerContact {
    pub email: Option<String>,
    pub name: Option<String>,
}

impl StripeApi {
    pub fn new(base: &str, key: Secret) -> StripeApi {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(USER_AGENT)
            .build()
            .expect("a client with a timeout and a user agent builds");
        StripeApi {
            base: base.trim_end_matches('/').to_owned(),
            key,
            http,
        }
    }

    /// All line items of a Checkout session, following Stripe's pagination.
    pub async fn line_items(&self, session_id: &str) -> Result<Vec<LineItem>, StripeApiError> {
        let mut items = Vec::new();
        let mut starting_after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "100".to_owned())];
            if let Some(after) = &starting_after {
                query.push(("starting_after", after.clone()));
            }
            let page = self
                .get(
                    &format!("/v1/checkout/sessions/{session_id}/line_items"),
                    &query,
                )
                .await?;
            let data = page["data"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            items.extend(data.iter().filter_map(line_item));
            starting_after = data
                .last()
                .and_then(|item| item["id"].as_str())
                .map(str::to_owned);
            if page["has_more"].as_bool() != Some(true) || starting_after.is_none() {
                return Ok(items);
            }
        }
    }

    pub async fn customer(&self, customer_id: &str) -> Result<CustomerContact, StripeApiError> {
        let customer = self
            .get(&format!("/v1/customers/{customer_id}"), &[])
            .await?;
        let text = |field: &str| {
            customer[field]
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(CustomerContact {
            email: text("email"),
            name: text("name"),
        })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, StripeApiError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .query(query)
            .send()
            .await
            .map_err(|e| StripeApiError::Unavailable(without_url(e).to_string()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| StripeApiError::Unavailable(without_url(e).to_string()))?;
        let message = || {
            let detail = body["error"]["message"].as_str().unwrap_or_default();
            format!("GET {path}: HTTP {} {detail}", status.as_u16())
        };
        if status.is_success() {
            Ok(body)
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(StripeApiError::Unavailable(message()))
        } else {
            Err(StripeApiError::Refused(message()))
        }
    }
}

/// reqwest errors print the URL; ours carry no secret, but keep messages short anyway.
fn without_url(error: reqwest::Error) -> reqwest::Error {
    error.without_url()
}
