//! The Stripe API reads, against a fake Stripe on loopback that answers from the
//! account's latest objects: made with no database transaction open, never with an id
//! that could reach another Stripe route, and used to apply what the payload alone
//! cannot tell (the subscription as it is now; the invoice a 2025+ payment paid).

use crate::common;

use common::fake_stripe::spawn_with_stripe;
use common::story::{self, Sub};
use common::*;
use serde_json::{json, Value};
use uchat_billing::secret::Secret;
use uchat_billing::stripe::api::StripeApi;

fn call_kinds(calls: &[QueuedCall]) -> Vec<&str> {
    calls.iter().map(|c| c.kind.as_str()).collect()
}

/// The story's subscription as Stripe has it: the sample's shape, these items.
fn subscription_object(items: &[(&'static str, u32)]) -> Value {
    let event = story::subscription(
        "evt_x",
        "customer.subscription.updated",
        1,
        &Sub::active(items),
    );
    let event: Value = serde_json::from_slice(&event).unwrap();
    event["data"]["object"].clone()
}

#[tokio::test]
async fn same_second_snapshots_apply_as_stripe_has_the_subscription_now() {
    let now = subscription_object(&[("price_business", 1)]);
    let (app, account) =
        spawn_with_stripe(&[(&format!("/v1/subscriptions/{}", story::SUBSCRIPTION), now)]).await;
    app.expect_unfinished_calls();
    let plus = Sub::active(&[("price_business_plus", 1)]);
    let business = Sub::active(&[("price_business", 1)]);
    // Within one second: the snapshot that sorts last (by id) is the older one.
    app.post_stripe_events(&[
        story::subscription_checkout("evt_1", 100),
        story::subscription("evt_3", "customer.subscription.updated", 200, &plus),
        story::subscription("evt_2", "customer.subscription.updated", 200, &business),
    ])
    .await;
    app.process_events().await;
    let calls = app.queued_calls().await;
    assert_eq!(call_kinds(&calls), ["create", "change-plan"]);
    assert_eq!(calls[1].body["plan"], "business");
    let account = account.lock().unwrap();
    assert!(account
        .requests
        .iter()
        .all(|r| r.starts_with(&format!("/v1/subscriptions/{}", story::SUBSCRIPTION))));
    assert_eq!(account.requests.len(), 2);
    assert_eq!(
        account.in_transaction,
        [0, 0],
        "a transaction was open during a Stripe read"
    );
}

#[tokio::test]
async fn a_refund_of_a_2025_subscription_payment_finds_its_order_through_invoice_payments() {
    let items = [("price_business", 1), ("price_points_1000", 1)];
    let (app, account) = spawn_with_stripe(&[
        (
            &format!("/v1/subscriptions/{}", story::SUBSCRIPTION),
            subscription_object(&items),
        ),
        (
            "/v1/invoice_payments?limit=10&payment[payment_intent]=pi_basil&payment[type]=payment_intent",
            json!({"object": "list", "has_more": false, "data": [
                {"id": "inpay_1", "object": "invoice_payment", "invoice": "in_basil", "status": "paid",
                 "payment": {"type": "payment_intent", "payment_intent": "pi_basil"}}
            ]}),
        ),
    ])
    .await;
    app.expect_unfinished_calls();
    let invoice = json!({
        "id": "in_basil", "object": "invoice", "customer": story::CUSTOMER,
        "customer_email": story::EMAIL, "customer_name": story::NAME,
        "billing_reason": "subscription_create", "amount_paid": 5000,
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": story::SUBSCRIPTION}},
        "lines": {"object": "list", "data": [
            {"id": "il_1", "object": "line_item", "quantity": 1,
             "pricing": {"type": "price_details", "price_details": {"price": "price_business", "product": "prod_1"}},
             "parent": {"type": "subscription_item_details", "subscription_item_details": {"proration": false}}},
            {"id": "il_2", "object": "line_item", "quantity": 1,
             "pricing": {"type": "price_details", "price_details": {"price": "price_points_1000", "product": "prod_2"}},
             "parent": {"type": "subscription_item_details", "subscription_item_details": {"proration": false}}}
        ]}
    });
    // Since 2025-03-31 a charge no longer names its invoice, nor the invoice its charge.
    let charge = json!({
        "id": "ch_basil", "object": "charge", "amount": 5000, "amount_refunded": 5000,
        "customer": story::CUSTOMER, "payment_intent": "pi_basil", "refunded": true
    });
    app.post_stripe_events(&[
        story::subscription(
            "evt_1",
            "customer.subscription.created",
            100,
            &Sub::active(&items),
        ),
        envelope("evt_2", "invoice.paid", 101, invoice),
        envelope("evt_3", "charge.refunded", 200, charge),
    ])
    .await;
    app.process_events().await;
    let calls = app.queued_calls().await;
    assert_eq!(
        call_kinds(&calls),
        ["create", "change-plan", "topup-points", "deduct-points"],
        "Stripe saw {:?}",
        account.lock().unwrap().requests
    );
    assert_eq!(calls[3].body["points"], 1000);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 1, "the refund went to the subscription's order");
    let account = account.lock().unwrap();
    assert!(account
        .requests
        .iter()
        .any(|r| r.starts_with("/v1/invoice_payments?")));
    assert!(account.in_transaction.iter().all(|open| *open == 0));
}

#[tokio::test]
async fn a_malicious_id_never_reaches_stripe_and_fails_its_event() {
    let (app, account) = spawn_with_stripe(&[]).await;
    app.expect_failed_events();
    let evil = "../../v1/balance?expand[]=x#";
    app.post_stripe_events(&[
        story::patched(
            story::points_checkout("evt_evil_1", 100, 5000, "4242"),
            json!({ "id": evil }),
        ),
        story::patched(
            story::subscription(
                "evt_evil_2",
                "customer.subscription.updated",
                100,
                &Sub::active(&[("price_business", 1)]),
            ),
            json!({ "id": format!("sub_{evil}") }),
        ),
        story::patched(
            story::subscription(
                "evt_evil_3",
                "customer.subscription.updated",
                100,
                &Sub::active(&[("price_business", 1)]),
            ),
            json!({ "id": "sub_ok", "customer": format!("cus_x/../{evil}") }),
        ),
    ])
    .await;
    app.process_events().await;
    let failed: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, error FROM events ORDER BY stripe_event_id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    for (status, error) in &failed {
        assert_eq!(status, "failed");
        assert!(
            error.as_deref().unwrap().contains("is not a Stripe id"),
            "{error:?}"
        );
    }
    assert_eq!(failed.len(), 3);
    let account = account.lock().unwrap();
    // The third event's subscription id is sound, so it was read; its customer never.
    assert_eq!(account.requests, ["/v1/subscriptions/sub_ok"]);
}

#[tokio::test]
async fn without_an_api_key_a_2025_refund_goes_to_the_customers_only_live_order() {
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    let items = [("price_business", 1), ("price_points_1000", 1)];
    let mut first = story::invoice(
        "evt_2",
        "invoice.paid",
        101,
        "subscription_create",
        "price_points_1000",
    );
    first = story::patched(
        first,
        json!({"amount_paid": 5000, "charge": null, "payment_intent": null}),
    );
    let charge = json!({
        "id": "ch_basil", "object": "charge", "amount": 5000, "amount_refunded": 5000,
        "customer": story::CUSTOMER, "payment_intent": "pi_basil", "refunded": true
    });
    app.post_stripe_events(&[
        story::subscription_checkout("evt_0", 99),
        story::subscription(
            "evt_1",
            "customer.subscription.created",
            100,
            &Sub::active(&items),
        ),
        first,
        envelope("evt_3", "charge.refunded", 200, charge.clone()),
    ])
    .await;
    app.process_events().await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        orders, 1,
        "the refund went to the customer's only live order"
    );

    // A refund no id or customer ties to an order needs an operator.
    let stranger =
        json!({"customer": "cus_nobody", "id": "ch_other", "payment_intent": "pi_other"});
    let mut other = charge;
    other
        .as_object_mut()
        .unwrap()
        .extend(stranger.as_object().unwrap().clone());
    app.post_stripe_events(&[envelope("evt_4", "charge.refunded", 300, other)])
        .await;
    app.process_events().await;
    let attention: Vec<Option<String>> =
        sqlx::query_scalar("SELECT attention FROM orders WHERE status = 'needs_attention'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(attention.len(), 1);
    assert!(attention[0]
        .as_deref()
        .unwrap()
        .contains("no order's Stripe ids lead to"));
}

#[tokio::test]
async fn the_event_list_is_read_a_page_at_a_time() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("limit", "100"))
        .and(query_param("starting_after", "evt_2"))
        .and(query_param("created[gte]", "1700000000"))
        .and(query_param("types[0]", "invoice.paid"))
        .and(query_param("types[1]", "charge.refunded"))
        .and(header("authorization", "Bearer rk_test_events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "has_more": true,
            "data": [{"id": "evt_1", "object": "event", "type": "invoice.paid"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let api = StripeApi::new(&server.uri(), Secret::new("rk_test_events"));
    let types = ["invoice.paid", "charge.refunded"];
    let page = api
        .events(&types, 1_700_000_000, Some("evt_2"))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0]["id"], "evt_1");
    assert!(page.has_more);
    let invalid = api
        .events(&types, 1_700_000_000, Some("evt_2&limit=1"))
        .await
        .unwrap_err();
    assert!(
        invalid.to_string().contains("is not a Stripe id"),
        "{invalid}"
    );
}
