//! The Stripe API calls the service makes. Reads: a Checkout session's line items and
//! customer, a customer's contact, a subscription as Stripe has it now, the invoice a
//! payment paid, a charge, the event list, and the storefront's prices. Writes, for the
//! storefront only and each with an idempotency key: Checkout sessions and Billing Portal
//! sessions.
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

/// A price as a pricing page shows it, with its product.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PriceInfo {
    pub id: String,
    /// In the currency's smallest unit; `None` for a price that is not a fixed amount.
    pub unit_amount: Option<i64>,
    pub currency: String,
    /// `month`, `year`, ... for a recurring price; `None` for a one-off.
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    /// Stripe still sells it: the price and its product are active.
    #[serde(skip)]
    pub active: bool,
    pub product_name: String,
    pub product_description: Option<String>,
}

/// A Checkout session to create: what the storefront decided, in Stripe's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCheckout {
    pub subscription: bool,
    /// Price id and quantity, in order.
    pub line_items: Vec<(String, u32)>,
    pub customer_email: Option<String>,
    pub client_reference_id: Option<String>,
    /// Set on the session, and on its subscription in subscription mode.
    pub metadata: Vec<(String, String)>,
    pub allow_promotion_codes: bool,
    pub automatic_tax: bool,
    /// Subscription mode only; 0 for none.
    pub trial_days: u32,
    pub success_url: String,
    pub cancel_url: String,
}

/// A hosted page Stripe made for a buyer: its id and where to send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedSession {
    pub id: String,
    pub url: String,
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

    /// A price with its product, for the storefront.
    pub async fn price(&self, id: &str) -> Result<PriceInfo, StripeApiError> {
        let id = StripeId::parse(id)?;
        let request =
            stripe_product::price::RetrievePrice::new(id.as_str()).expand(vec!["product".into()]);
        let price = self.send(&request, &[&id]).await?;
        let product = &price["product"];
        Ok(PriceInfo {
            id: id.to_string(),
            unit_amount: price["unit_amount"].as_i64(),
            currency: decode::text(&price["currency"]).unwrap_or_default(),
            interval: decode::text(&price["recurring"]["interval"]),
            interval_count: price["recurring"]["interval_count"].as_i64(),
            active: price["active"] != false && product["active"] != false,
            product_name: decode::text(&product["name"]).unwrap_or_else(|| id.to_string()),
            product_description: decode::text(&product["description"]),
        })
    }

    /// The customer a Checkout session made or used; `None` before it has one.
    pub async fn checkout_customer(&self, session: &str) -> Result<Option<String>, StripeApiError> {
        let session = StripeId::parse(session)?;
        let request =
            stripe_checkout::checkout_session::RetrieveCheckoutSession::new(session.as_str());
        let object = self.send(&request, &[&session]).await?;
        Ok(decode::id_of(&object["customer"]))
    }

    /// Creates a Checkout session. The same `idempotency_key` within Stripe's 24 hours
    /// gives back the same session instead of a second one.
    pub async fn create_checkout(
        &self,
        checkout: &NewCheckout,
        idempotency_key: &str,
    ) -> Result<HostedSession, StripeApiError> {
        use stripe_checkout::checkout_session::{
            CreateCheckoutSession, CreateCheckoutSessionAutomaticTax,
            CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
        };
        use stripe_shared::CheckoutSessionMode;
        let line_items: Vec<CreateCheckoutSessionLineItems> = checkout
            .line_items
            .iter()
            .map(|(price, quantity)| {
                let mut item = CreateCheckoutSessionLineItems::new();
                item.price = Some(price.clone());
                item.quantity = Some(u64::from(*quantity));
                item
            })
            .collect();
        let metadata: std::collections::HashMap<String, String> =
            checkout.metadata.iter().cloned().collect();
        let mode = if checkout.subscription {
            CheckoutSessionMode::Subscription
        } else {
            CheckoutSessionMode::Payment
        };
        let mut request = CreateCheckoutSession::new()
            .mode(mode)
            .line_items(line_items)
            .success_url(checkout.success_url.as_str())
            .cancel_url(checkout.cancel_url.as_str());
        if let Some(email) = &checkout.customer_email {
            request = request.customer_email(email.as_str());
        }
        if let Some(reference) = &checkout.client_reference_id {
            request = request.client_reference_id(reference.as_str());
        }
        if !metadata.is_empty() {
            request = request.metadata(metadata.clone());
        }
        if checkout.allow_promotion_codes {
            request = request.allow_promotion_codes(true);
        }
        if checkout.automatic_tax {
            request = request.automatic_tax(CreateCheckoutSessionAutomaticTax::new(true));
        }
        if checkout.subscription && (checkout.trial_days > 0 || !metadata.is_empty()) {
            let mut data = CreateCheckoutSessionSubscriptionData::new();
            data.trial_period_days = (checkout.trial_days > 0).then_some(checkout.trial_days);
            data.metadata = (!metadata.is_empty()).then_some(metadata);
            request = request.subscription_data(data);
        }
        let session = self.create(&request, idempotency_key).await?;
        hosted(&session)
    }

    /// Creates a Billing Portal session for `customer`, whose page returns to `return_url`.
    pub async fn create_portal(
        &self,
        customer: &str,
        return_url: &str,
        idempotency_key: &str,
    ) -> Result<HostedSession, StripeApiError> {
        let customer = StripeId::parse(customer)?;
        let request = stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
            .customer(customer.as_str())
            .return_url(return_url);
        let session = self.create(&request, idempotency_key).await?;
        hosted(&session)
    }

    /// Sends a GET that async-stripe built. `ids` are the ids its path carries, each
    /// checked already: the path is rebuilt segment by segment, percent-encoded, and must
    /// be exactly the SDK's, so an id can never stand for more than one segment.
    async fn send<R: StripeRequest>(
        &self,
        request: &R,
        ids: &[&StripeId],
    ) -> Result<Value, StripeApiError> {
        let built = request.build();
        if !matches!(built.method, StripeMethod::Get) {
            return Err(StripeApiError::Refused(format!(
                "{}: a read must be a GET",
                built.path
            )));
        }
        self.exchange(built, ids, None).await
    }

    /// Sends a POST that async-stripe built, with its form body and an idempotency key,
    /// so a retry never creates a second object. Its path carries no id.
    async fn create<R: StripeRequest>(
        &self,
        request: &R,
        idempotency_key: &str,
    ) -> Result<Value, StripeApiError> {
        let built = request.build();
        if !matches!(built.method, StripeMethod::Post) {
            return Err(StripeApiError::Refused(format!(
                "{}: a create must be a POST",
                built.path
            )));
        }
        self.exchange(built, &[], Some(idempotency_key)).await
    }

    async fn exchange(
        &self,
        built: RequestBuilder,
        ids: &[&StripeId],
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeApiError> {
        let RequestBuilder {
            path, query, body, ..
        } = built;
        let url = self.url(&path, query.as_deref(), ids)?;
        let (verb, mut request) = match idempotency_key {
            None => ("GET", self.http.get(url.clone())),
            Some(key) => (
                "POST",
                self.http
                    .post(url.clone())
                    .header("Idempotency-Key", key)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.unwrap_or_default()),
            ),
        };
        request = request
            .bearer_auth(self.key.expose())
            .header("Stripe-Version", stripe_shared::version::VERSION.as_str());
        let shown = format!("{verb} {}", url.path());
        let response = request
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
            format!("{shown}: HTTP {} {detail}", status.as_u16())
        };
        if status.is_success() && body.is_object() {
            Ok(body)
        } else if status.is_success() {
            Err(StripeApiError::Unavailable(format!(
                "{shown}: HTTP {} with a body that is not a JSON object",
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

/// The id and URL of a session Stripe created.
fn hosted(session: &Value) -> Result<HostedSession, StripeApiError> {
    match (decode::text(&session["id"]), decode::text(&session["url"])) {
        (Some(id), Some(url)) => Ok(HostedSession { id, url }),
        _ => Err(StripeApiError::Refused(
            "Stripe created a session without an id or URL".into(),
        )),
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
