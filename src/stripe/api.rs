//! The Stripe API reads the service makes: a Checkout session's line items, a customer's
//! contact, a subscription as Stripe has it now, the invoice a payment paid, a charge,
//! and the event list.
//!
//! Requests are async-stripe's typed requests (path and query as the SDK builds them),
//! sent by our own HTTP client, so one TLS stack and one timeout serve every outbound
//! call. Answers are decoded as leniently as webhooks are ([`super::decode`]): the SDK's
//! typed structs follow one API version and refuse objects of others, while the account's
//! objects, and the fakes tests run against, may be of any.
//!
//! Every id that goes into a path is a [`StripeId`]: checked first, then sent as one
//! percent-encoded path segment, so no id can reach another Stripe route.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod, StripeRequest};

use super::decode::{self, line_item};
use crate::domain::{LineItem, Subscription};
use crate::secret::Secret;
use crate::USER_AGENT;

pub const DEFAULT_BASE: &str = "https://api.stripe.com";

/// Longest Stripe id we accept; Stripe's own are far shorter.
const MAX_ID_LEN: usize = 255;

/// A Stripe object id as Stripe writes them: a lowercase prefix, an underscore, then
/// letters, digits and underscores (`cs_test_a1B2`), at most [`MAX_ID_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeId(String);

impl StripeId {
    pub fn parse(id: &str) -> Result<StripeId, StripeApiError> {
        let invalid = || StripeApiError::InvalidId(id.chars().take(80).collect());
        let (prefix, rest) = id.split_once('_').ok_or_else(invalid)?;
        let prefix_ok = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_lowercase());
        let rest_ok =
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if prefix_ok && rest_ok && id.len() <= MAX_ID_LEN {
            Ok(StripeId(id.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StripeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Debug` shows the base URL; the key is a `Secret`.
#[derive(Clone, Debug)]
pub struct StripeApi {
    /// `None` when the configured base is no absolute URL: every read then fails as
    /// unavailable, so events wait (nothing is lost) until the setting is fixed. Boxed: a
    /// URL is large, and the API sits in the configuration.
    base: Option<Box<reqwest::Url>>,
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
    /// An id that is no Stripe id: it is never sent.
    #[error("{0:?} is not a Stripe id")]
    InvalidId(String),
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

/// What a charge says about where its money came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeLinks {
    pub customer: Option<String>,
    pub payment_intent: Option<String>,
    /// Only before 2025-03-31; since then, see [`StripeApi::invoice_paid_by`].
    pub invoice: Option<String>,
}

/// The most event types one request of the event list may filter by (Stripe's limit).
pub const MAX_EVENT_TYPES: usize = 20;

/// One page of the event list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<Value>,
    pub has_more: bool,
}

impl StripeApi {
    pub fn new(base: &str, key: Secret) -> StripeApi {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with a timeout and a user agent builds");
        let base = reqwest::Url::parse(base.trim_end_matches('/'))
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .map(Box::new);
        StripeApi { base, key, http }
    }

    /// All line items of a Checkout session, following Stripe's pagination.
    pub async fn line_items(&self, session: &str) -> Result<Vec<LineItem>, StripeApiError> {
        let session = StripeId::parse(session)?;
        let mut items = Vec::new();
        let mut starting_after: Option<String> = None;
        loop {
            let mut request = stripe_checkout::checkout_session::ListLineItemsCheckoutSession::new(
                session.as_str(),
            )
            .limit(100);
            if let Some(after) = &starting_after {
                request = request.starting_after(after.as_str());
            }
            let page = self.send(&request, &[&session]).await?;
            let data = decode::list(&page);
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

    pub async fn customer(&self, customer: &str) -> Result<CustomerContact, StripeApiError> {
        let customer = StripeId::parse(customer)?;
        let request = stripe_core::customer::RetrieveCustomer::new(customer.as_str());
        let object = self.send(&request, &[&customer]).await?;
        Ok(CustomerContact {
            email: decode::text(&object["email"]),
            name: decode::text(&object["name"]),
        })
    }

    /// The subscription as Stripe has it now.
    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeApiError> {
        let id = StripeId::parse(id)?;
        let request = stripe_billing::subscription::RetrieveSubscription::new(id.as_str());
        let object = self.send(&request, &[&id]).await?;
        decode::subscription(&object)
            .map_err(|reason| StripeApiError::Refused(format!("subscription {id}: {reason}")))
    }

    /// The invoice a payment intent paid, from Stripe's invoice payments (API versions
    /// since 2025-03-31 link them only there); `None` when it paid no invoice.
    pub async fn invoice_paid_by(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, StripeApiError> {
        use stripe_billing::invoice_payment::{
            ListInvoicePayment, ListInvoicePaymentPayment, ListInvoicePaymentPaymentType,
        };
        let payment_intent = StripeId::parse(payment_intent)?;
        let mut payment =
            ListInvoicePaymentPayment::new(ListInvoicePaymentPaymentType::PaymentIntent);
        payment.payment_intent = Some(payment_intent.to_string());
        let request = ListInvoicePayment::new().payment(payment).limit(10);
        let page = self.send(&request, &[]).await?;
        let payments = decode::list(&page);
        // An invoice may have had several attempts with this intent: any names it.
        Ok(payments
            .iter()
            .find(|p| p["status"] == "paid")
            .or_else(|| payments.first())
            .and_then(|p| decode::id_of(&p["invoice"])))
    }

    pub async fn charge(&self, id: &str) -> Result<ChargeLinks, StripeApiError> {
        let id = StripeId::parse(id)?;
        let request = stripe_core::charge::RetrieveCharge::new(id.as_str());
        let charge = self.send(&request, &[&id]).await?;
        Ok(ChargeLinks {
            customer: decode::id_of(&charge["customer"]),
            payment_intent: decode::id_of(&charge["payment_intent"]),
            invoice: decode::id_of(&charge["invoice"]),
        })
    }

    /// One page of the account's events of `types` (at most [`MAX_EVENT_TYPES`]) created
    /// at or after `since` (seconds since the epoch), newest first, after `starting_after`
    /// (an event id) when given: what the webhook may not have delivered.
    pub async fn events(
        &self,
        types: &[&str],
        since: i64,
        starting_after: Option<&str>,
    ) -> Result<EventPage, StripeApiError> {
        if types.len() > MAX_EVENT_TYPES {
            return Err(StripeApiError::Refused(format!(
                "Stripe filters events by at most {MAX_EVENT_TYPES} types at once, not {}",
                types.len()
            )));
        }
        let mut request = stripe_core::event::ListEvent::new()
            .limit(100)
            .created(stripe_types::RangeQueryTs::gte(since))
            .types(types.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        if let Some(after) = starting_after {
            request = request.starting_after(StripeId::parse(after)?.to_string());
        }
        let page = self.send(&request, &[]).await?;
        Ok(EventPage {
            events: decode::list(&page).to_vec(),
            has_more: page["has_more"].as_bool() == Some(true),
        })
    }

    /// Sends a GET that async-stripe built. `ids` are the ids its path carries, each
    /// checked already: the path is rebuilt segment by segment, percent-encoded, and must
    /// be exactly the SDK's, so an id can never stand for more than one segment.
    async fn send<R: StripeRequest>(
        &self,
        request: &R,
        ids: &[&StripeId],
    ) -> Result<Value, StripeApiError> {
        let RequestBuilder {
            path,
            query,
            method,
            ..
        } = request.build();
        if !matches!(method, StripeMethod::Get) {
            return Err(StripeApiError::Refused(format!(
                "{path}: the service only reads from Stripe"
            )));
        }
        let url = self.url(&path, query.as_deref(), ids)?;
        let shown = url.path().to_owned();
        let response = self
            .http
            .get(url)
            .bearer_auth(self.key.expose())
            .header("Stripe-Version", stripe_shared::version::VERSION.as_str())
            .send()
            .await
            .map_err(|e| StripeApiError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| StripeApiError::Unavailable(e.without_url().to_string()))?;
        // An error page need not be JSON; its status says enough.
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = || {
            let detail = body["error"]["message"].as_str().unwrap_or_default();
            format!("GET {shown}: HTTP {} {detail}", status.as_u16())
        };
        if status.is_success() && body.is_object() {
            Ok(body)
        } else if status.is_success() {
            Err(StripeApiError::Unavailable(format!(
                "GET {shown}: HTTP {} with a body that is not a JSON object",
                status.as_u16()
            )))
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(StripeApiError::Unavailable(message()))
        } else {
            Err(StripeApiError::Refused(message()))
        }
    }

    /// `/v1` + the SDK's path, one encoded segment at a time, + its query.
    fn url(
        &self,
        path: &str,
        query: Option<&str>,
        ids: &[&StripeId],
    ) -> Result<reqwest::Url, StripeApiError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let ids_in_path = segments
            .iter()
            .filter(|segment| ids.iter().any(|id| id.as_str() == **segment))
            .count();
        if ids_in_path != ids.len() {
            return Err(StripeApiError::Refused(format!(
                "{path}: the request's path does not carry its ids as whole segments"
            )));
        }
        let mut url = self.base.as_deref().cloned().ok_or_else(|| {
            StripeApiError::Unavailable("STRIPE_API_BASE is not an absolute URL".into())
        })?;
        url.path_segments_mut()
            .map_err(|_| StripeApiError::Refused("the Stripe base URL cannot take a path".into()))?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        url.set_query(query.filter(|q| !q.is_empty()));
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_ids_are_a_lowercase_prefix_and_word_characters() {
        for good in [
            "cs_test_a1B2",
            "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
            "pi_1",
            "in_a_b_c",
        ] {
            assert_eq!(StripeId::parse(good).unwrap().as_str(), good);
        }
        let long = format!("cus_{}", "a".repeat(MAX_ID_LEN));
        for bad in [
            "",
            "cus",
            "_abc",
            "cus_",
            "Cus_abc",
            "cus_a/b",
            "cus_a b",
            "cus_ä",
            "cus_a%2F",
            "cs_../../v1/balance?expand[]=x#",
            "../../v1/balance",
            long.as_str(),
        ] {
            assert!(
                matches!(StripeId::parse(bad), Err(StripeApiError::InvalidId(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn paths_are_the_sdks_under_v1_with_the_base_kept() {
        let api = StripeApi::new("http://127.0.0.1:9/prefix/", Secret::new("rk"));
        let id = StripeId::parse("sub_1").unwrap();
        let request = stripe_billing::subscription::RetrieveSubscription::new(id.as_str());
        let built = request.build();
        let url = api
            .url(&built.path, built.query.as_deref(), &[&id])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/v1/subscriptions/sub_1"
        );
        // A path whose id is not a whole segment is never sent.
        let other = StripeId::parse("sub_2").unwrap();
        assert!(api.url("/subscriptions/sub_1", None, &[&other]).is_err());
    }
}
