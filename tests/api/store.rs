//! The storefront under `/store`, against a fake Stripe on loopback and the UChat
//! sandbox: the catalog and its cache, Checkout sessions as Stripe must receive them,
//! the buyer's status as the order is provisioned, the billing portal, and the limits a
//! browser-facing route needs.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{json, Value};
use uchat_billing::plan::Catalog;
use uchat_billing::sandbox::{Faults, SandboxHandle};
use uchat_billing::store::StoreSettings;

use crate::common;
use common::fake_stripe::{spawn_with_stripe_and, Account};
use common::story::{self, Buyer};
use common::*;

pub const CHECKOUT_URL: &str = "https://checkout.stripe.test/c/pay/cs_test_new";
pub const LOGIN_URL: &str = "https://app.partner.test/login";

fn price(id: &str, amount: i64, recurring: Option<&str>, name: &str) -> Value {
    json!({
        "id": id, "object": "price", "active": true, "currency": "usd", "unit_amount": amount,
        "type": if recurring.is_some() { "recurring" } else { "one_time" },
        "recurring": recurring.map(|interval| json!({"interval": interval, "interval_count": 1})),
        "product": {"id": format!("prod_{id}"), "object": "product", "active": true,
                    "name": name, "description": format!("{name}, for teams")},
    })
}

/// The fake Stripe's account: the fixture catalog's public prices, and what a create
/// answers.
pub fn stripe_objects() -> Vec<(String, Value)> {
    vec![
        (
            "/v1/prices/price_business?expand[0]=product".into(),
            price("price_business", 4900, Some("month"), "Business"),
        ),
        (
            "/v1/prices/price_business_plus?expand[0]=product".into(),
            price("price_business_plus", 9900, Some("month"), "Business Plus"),
        ),
        (
            "/v1/prices/price_points_1000?expand[0]=product".into(),
            price("price_points_1000", 1000, None, "1,000 points"),
        ),
        (
            "POST /v1/checkout/sessions".into(),
            json!({"id": "cs_test_new", "object": "checkout.session", "url": CHECKOUT_URL}),
        ),
        (
            "/v1/checkout/sessions/cs_story_subscription".into(),
            json!({"id": "cs_story_subscription", "customer": story::CUSTOMER}),
        ),
        (
            "POST /v1/billing_portal/sessions".into(),
            json!({"id": "bps_1", "url": "https://billing.stripe.test/p/session/bps_1"}),
        ),
    ]
}

pub fn settings(address_base: &str) -> StoreSettings {
    StoreSettings {
        success_url: format!("{address_base}/store/thanks.html").parse().unwrap(),
        cancel_url: format!("{address_base}/store/").parse().unwrap(),
        login_url: LOGIN_URL.parse().unwrap(),
        allowed_origins: vec!["https://shop.partner.test".into()],
        rate_per_minute: 100,
        catalog_refresh: std::time::Duration::from_secs(300),
    }
}

pub struct Store {
    pub app: TestApp,
    pub stripe: Arc<Mutex<Account>>,
    pub sandbox: SandboxHandle,
    pub sandbox_base: String,
}

/// The app with its storefront on, selling from the fake Stripe, delivering to the
/// sandbox; `adjust` changes the storefront's settings.
pub async fn spawn_store(adjust: impl FnOnce(&mut StoreSettings)) -> Store {
    let (sandbox_base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&sandbox_base);
    let mut store = settings("https://shop.partner.test");
    adjust(&mut store);
    let objects = stripe_objects();
    let objects: Vec<(&str, Value)> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let catalog = Catalog::load(&fixture_path("store-catalog.toml")).unwrap();
    let (app, stripe) = spawn_with_stripe_and(&objects, move |config| {
        config.catalog = Arc::new(catalog);
        config.delivery = Some(delivery);
        config.store = Some(store);
    })
    .await;
    Store {
        app,
        stripe,
        sandbox,
        sandbox_base,
    }
}

impl Store {
    async fn checkout(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .app
            .client
            .post(format!("{}/store/checkout", self.app.address))
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// The form posted to Stripe at `path`, as (key, value) pairs, sorted.
    fn posted(&self, path: &str) -> Vec<Vec<(String, String)>> {
        self.stripe
            .lock()
            .unwrap()
            .posted
            .iter()
            .filter(|(to, _)| to == path)
            .map(|(_, body)| {
                let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
                pairs.sort();
                pairs
            })
            .collect()
    }

    fn stripe_requests(&self) -> Vec<String> {
        self.stripe.lock().unwrap().requests.clone()
    }

    /// A workspace in the sandbox owned by `email`.
    async fn workspace_of(&self, email: &str) -> u64 {
        let created: Value = reqwest::Client::new()
            .post(format!("{}/partner/workspace/create", self.sandbox_base))
            .bearer_auth(PARTNER_TOKEN)
            .json(&json!({"name": "Owner", "email": email, "password": "pw",
                          "team_name": "Owner's", "require_email_verification": "no"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["data"]["id"].as_u64().unwrap()
    }

    async fn status(&self, session: &str, query: &str) -> Value {
        let response = self
            .app
            .get(&format!("/store/status/{session}{query}"))
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn the_catalog_joins_the_public_prices_with_stripes_and_is_read_once() {
    let store = spawn_store(|_| {}).await;
    for _ in 0..5 {
        let response = store.app.get("/store/catalog").await;
        assert_eq!(response.status(), 200);
        let catalog: Value = response.json().await.unwrap();
        assert_eq!(
            catalog["prices"][0],
            json!({"id": "price_business", "unit_amount": 4900, "currency": "usd",
                   "interval": "month", "interval_count": 1, "product_name": "Business",
                   "product_description": "Business, for teams"})
        );
        let ids: Vec<&str> = catalog["prices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        // The catalog's order; price_bot is not public.
        assert_eq!(
            ids,
            ["price_business", "price_business_plus", "price_points_1000"]
        );
    }
    assert_eq!(
        store.stripe_requests().len(),
        3,
        "one read per price, then the cache"
    );

    // An operator refreshes at once; a buyer cannot.
    let refused = store.app.get("/store/catalog?refresh=true").await;
    assert_eq!(refused.status(), 401);
    let (status, _) = store.app.admin_get("/store/catalog?refresh=true").await;
    assert_eq!(status, 200);
    assert_eq!(store.stripe_requests().len(), 6);
}

#[tokio::test]
async fn a_subscription_checkout_sends_stripe_exactly_these_parameters() {
    let store = spawn_store(|_| {}).await;
    let (status, body) = store
        .checkout(
            &json!({"items": [{"price": "price_business", "quantity": 1}],
                          "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"url": CHECKOUT_URL, "id": "cs_test_new"}));
    assert_eq!(
        store.posted("/v1/checkout/sessions"),
        [pairs(&[
            ("mode", "subscription"),
            ("line_items[0][price]", "price_business"),
            ("line_items[0][quantity]", "1"),
            ("customer_email", "ada@example.com"),
            (
                "success_url",
                "https://shop.partner.test/store/thanks.html?session_id={CHECKOUT_SESSION_ID}"
            ),
            ("cancel_url", "https://shop.partner.test/store/"),
        ])]
    );
}

#[tokio::test]
async fn a_one_off_checkout_for_the_buyers_own_workspace_names_it() {
    let store = spawn_store(|_| {}).await;
    let workspace = store.workspace_of("Ada@Example.com").await.to_string();
    let (status, body) = store
        .checkout(
            &json!({"items": [{"price": "price_points_1000", "quantity": 3}],
                          "email": "ada@example.com", "workspace_id": workspace}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        store.posted("/v1/checkout/sessions"),
        [pairs(&[
            ("mode", "payment"),
            ("line_items[0][price]", "price_points_1000"),
            ("line_items[0][quantity]", "3"),
            ("customer_email", "ada@example.com"),
            ("client_reference_id", &workspace),
            ("metadata[uchat_workspace_id]", &workspace),
            (
                "success_url",
                "https://shop.partner.test/store/thanks.html?session_id={CHECKOUT_SESSION_ID}"
            ),
            ("cancel_url", "https://shop.partner.test/store/"),
        ])]
    );
}

#[tokio::test]
async fn a_subscription_for_a_named_workspace_carries_it_on_the_subscription_too() {
    let store = spawn_store(|_| {}).await;
    let workspace = store.workspace_of("ada@example.com").await.to_string();
    let (status, _) = store
        .checkout(&json!({"items": [{"price": "price_business_plus"}],
                          "email": "ada@example.com", "workspace_id": workspace}))
        .await;
    assert_eq!(status, 200);
    let posted = &store.posted("/v1/checkout/sessions")[0];
    for key in [
        "metadata[uchat_workspace_id]",
        "subscription_data[metadata][uchat_workspace_id]",
        "client_reference_id",
    ] {
        assert!(
            posted.contains(&(key.to_string(), workspace.clone())),
            "{key} missing: {posted:?}"
        );
    }
}

#[tokio::test]
async fn a_form_post_is_sent_on_to_stripe_with_a_303() {
    let store = spawn_store(|_| {}).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/store/checkout", store.app.address))
        .form(&[
            ("price", "price_points_1000"),
            ("quantity", "2"),
            ("email", ""),
            ("workspace_id", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], CHECKOUT_URL);
    let posted = &store.posted("/v1/checkout/sessions")[0];
    assert!(posted.contains(&("line_items[0][quantity]".into(), "2".into())));
}

#[tokio::test]
async fn bad_checkouts_get_a_clear_400_and_nothing_is_created_at_stripe() {
    let store = spawn_store(|_| {}).await;
    let strangers = store.workspace_of("mallory@example.com").await;
    let cases = [
        (
            json!({"items": [{"price": "price_unknown"}]}),
            "price \"price_unknown\" is not for sale here",
        ),
        (
            json!({"items": [{"price": "price_bot"}]}),
            "price \"price_bot\" is not for sale here",
        ),
        (
            json!({"items": [{"price": "price_points_1000"}],
                   "success_url": "https://evil.test/store/thanks.html"}),
            "success_url must be a page under https://shop.partner.test/store/",
        ),
        (
            json!({"items": [{"price": "price_points_1000", "quantity": 1_000_000_000u64}]}),
            "quantity of price_points_1000 must be from 1 to 100",
        ),
        (
            json!({"items": [{"price": "price_points_1000"}], "email": "ada@example.com",
                   "workspace_id": strangers.to_string()}),
            &*format!(
                "workspace {strangers} is not registered to ada@example.com: use the email you \
                 log in to that workspace with, or leave the workspace id empty for a new workspace"
            ),
        ),
        (
            json!({"items": [{"price": "price_points_1000"}], "email": "ada@example.com",
                   "workspace_id": "999999"}),
            "there is no workspace 999999: check the id in your UChat settings, or leave it \
             empty for a new workspace",
        ),
        (json!({"items": "price_business"}), ""),
    ];
    for (body, reason) in cases {
        let (status, answer) = store.checkout(&body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(reason) && !error.is_empty(),
            "{body}: {error}"
        );
    }
    let created: Vec<String> = store
        .stripe_requests()
        .into_iter()
        .filter(|r| r.starts_with("POST"))
        .collect();
    assert!(created.is_empty(), "{created:?}");
}

#[tokio::test]
async fn the_status_moves_from_paid_to_ready_as_the_sale_is_provisioned() {
    let store = spawn_store(|_| {}).await;
    let ada = Buyer::story();
    let session = ada.checkout_session.as_str();
    assert_eq!(store.status(session, "").await["state"], "pending");

    let sale = story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]);
    store.app.post_stripe_events(&sale).await;
    assert_eq!(store.status(session, "").await["state"], "paid");

    store.app.process_events().await;
    let provisioning = store.status(session, "").await;
    assert_eq!(
        provisioning,
        json!({"state": "provisioning", "message": "Setting up your workspace."})
    );

    // A long poll answers as soon as the state moves on.
    let waiting = store.status(session, "?wait=10&since=provisioning");
    let deliver = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        store.app.deliver_all().await;
    };
    let (ready, ()) = tokio::join!(waiting, deliver);
    let [workspace] = &store.sandbox.workspaces()[..] else {
        panic!("one workspace expected")
    };
    assert_eq!(
        ready,
        json!({"state": "ready", "message": "Your workspace is ready.",
               "workspace_id": workspace.id, "login_url": LOGIN_URL})
    );
}

/// What the buyer sees while something waits for an operator.
fn delayed() -> Value {
    json!({"state": "delayed", "message": "Your payment is received; setting up your \
           workspace is taking longer than usual. We are on it and will email you."})
}

/// The points sale's Checkout `event_type` event, its line items in the payload or not.
fn points_event(id: &str, event_type: &str, line_items: Value) -> Vec<u8> {
    let mut event: Value =
        serde_json::from_slice(&story::points_checkout(id, 100, 1000, "42")).unwrap();
    event["type"] = json!(event_type);
    event["data"]["object"]["line_items"] = line_items;
    serde_json::to_vec(&event).unwrap()
}

#[tokio::test]
async fn a_session_whose_event_failed_is_delayed_without_internals() {
    let store = spawn_store(|_| {}).await;
    store.app.expect_failed_events();
    // Stripe does not know the session's line items: the event fails for an operator.
    let checkout = points_event("evt_p", "checkout.session.completed", Value::Null);
    store.app.post_stripe_events(&[checkout]).await;
    store.app.process_events().await;
    let failed: String = sqlx::query_scalar("SELECT status FROM events")
        .fetch_one(&store.app.db)
        .await
        .unwrap();
    assert_eq!(failed, "failed");
    let answer = store
        .status(story::POINTS_SESSION, "?wait=5&since=pending")
        .await;
    assert_eq!(answer, delayed());
}

#[tokio::test]
async fn an_order_whose_later_event_failed_is_delayed() {
    let store = spawn_store(|_| {}).await;
    store.app.expect_failed_events();
    store.app.expect_unfinished_calls();
    let items = json!({"object": "list", "has_more": false, "data": [
        {"id": "li_1", "object": "item", "price": {"id": "price_points_1000"}, "quantity": 1}]});
    let completed = points_event("evt_p1", "checkout.session.completed", items);
    store.app.post_stripe_events(&[completed]).await;
    store.app.process_events().await;
    assert_eq!(
        store.status(story::POINTS_SESSION, "").await["state"],
        "provisioning"
    );

    let succeeded = points_event(
        "evt_p2",
        "checkout.session.async_payment_succeeded",
        Value::Null,
    );
    store.app.post_stripe_events(&[succeeded]).await;
    store.app.process_events().await;
    assert_eq!(store.status(story::POINTS_SESSION, "").await, delayed());
}

#[tokio::test]
async fn a_long_poll_is_bounded_and_a_bad_session_id_is_refused() {
    let store = spawn_store(|_| {}).await;
    let started = std::time::Instant::now();
    let answer = store.status("cs_nobody_knows", "?wait=1").await;
    assert_eq!(answer["state"], "pending");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    for bad in ["sub_1", "cs_a%2F..", "x"] {
        let response = store.app.get(&format!("/store/status/{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn the_portal_opens_for_the_customer_of_a_purchase() {
    let store = spawn_store(|_| {}).await;
    let response = store
        .app
        .client
        .post(format!("{}/store/portal", store.app.address))
        .json(&json!({"session_id": "cs_story_subscription"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["url"], "https://billing.stripe.test/p/session/bps_1");
    assert_eq!(
        store.posted("/v1/billing_portal/sessions"),
        [pairs(&[
            ("customer", story::CUSTOMER),
            ("return_url", "https://shop.partner.test/store/"),
        ])]
    );
    // A purchase Stripe does not know opens nothing.
    let unknown = store
        .app
        .client
        .post(format!("{}/store/portal", store.app.address))
        .json(&json!({"session_id": "cs_unknown"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn only_the_partners_origins_may_call_from_a_browser() {
    let store = spawn_store(|_| {}).await;
    let preflight = |origin: &'static str| {
        store
            .app
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/store/checkout", store.app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://shop.partner.test").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://shop.partner.test"
    );
    let other = preflight("https://evil.test").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn checkouts_beyond_the_rate_get_429_with_retry_after() {
    let store = spawn_store(|settings| settings.rate_per_minute = 2).await;
    let body = json!({"items": [{"price": "price_points_1000"}]});
    for _ in 0..2 {
        assert_eq!(store.checkout(&body).await.0, 200);
    }
    let response = store
        .app
        .client
        .post(format!("{}/store/checkout", store.app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(store.posted("/v1/checkout/sessions").len(), 2);
    // The status stays open to the same client.
    assert_eq!(store.app.get("/store/status/cs_x").await.status(), 200);
}

#[tokio::test]
async fn a_large_body_is_refused() {
    let store = spawn_store(|_| {}).await;
    let response = store
        .app
        .client
        .post(format!("{}/store/checkout", store.app.address))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn a_public_price_stripe_does_not_know_is_the_catalogs_fault_not_the_buyers() {
    let store = spawn_store(|_| {}).await;
    store
        .stripe
        .lock()
        .unwrap()
        .objects
        .retain(|key, _| !key.contains("price_business_plus"));

    let response = store.app.get("/store/catalog").await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"], "the price list is unavailable; try again shortly",
        "no internals: {body}"
    );
    let (status, _) = store
        .checkout(&json!({"items": [{"price": "price_business", "quantity": 1}]}))
        .await;
    assert_eq!(status, 502);
    assert!(store.posted("/v1/checkout/sessions").is_empty());
}
