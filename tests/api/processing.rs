//! Stored events become orders and exactly the partner calls they imply, whatever order
//! and however often Stripe delivers them.

use crate::common;

use common::story::{self, Sub};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn call(kind: &str, body: Value) -> QueuedCall {
    QueuedCall {
        kind: kind.to_owned(),
        body,
    }
}

/// sale → upgrade → add-on up → payment failed → paid again → cancel.
fn subscription_story() -> Vec<Vec<u8>> {
    let business = Sub::active(&[("price_business", 1)]);
    let plus = Sub::active(&[("price_business_plus", 1)]);
    let plus_bots = Sub::active(&[("price_business_plus", 1), ("price_bot", 2)]);
    vec![
        story::subscription_checkout("evt_s01", 100),
        story::subscription("evt_s02", "customer.subscription.created", 101, &business),
        story::invoice(
            "evt_s03",
            "invoice.paid",
            102,
            "subscription_create",
            "price_business",
        ),
        story::subscription("evt_s04", "customer.subscription.updated", 200, &plus),
        story::subscription("evt_s05", "customer.subscription.updated", 300, &plus_bots),
        story::invoice(
            "evt_s06",
            "invoice.payment_failed",
            400,
            "subscription_cycle",
            "price_business_plus",
        ),
        story::subscription(
            "evt_s07",
            "customer.subscription.updated",
            401,
            &plus_bots.clone().with_status("past_due"),
        ),
        story::invoice(
            "evt_s08",
            "invoice.paid",
            500,
            "subscription_cycle",
            "price_business_plus",
        ),
        story::subscription("evt_s09", "customer.subscription.updated", 501, &plus_bots),
        story::subscription(
            "evt_s10",
            "customer.subscription.deleted",
            600,
            &plus_bots.with_status("canceled"),
        ),
    ]
}

fn subscription_story_calls() -> Vec<QueuedCall> {
    vec![
        call(
            "create",
            json!({
                "email": story::EMAIL,
                "name": story::NAME,
                "team_name": "Ada Lovelace's team",
                "require_email_verification": "no",
            }),
        ),
        call(
            "change-plan",
            json!({"plan": "business", "auto_renew": "yes"}),
        ),
        call(
            "change-plan",
            json!({"plan": "business_plus", "auto_renew": "yes"}),
        ),
        call("add-addon", json!({"addon": "bot", "qty": 2})),
        // past_due: paused, and UChat must not renew from partner credit meanwhile.
        call("pause", Value::Null),
        call("disable-auto-renew", Value::Null),
        call("active", Value::Null),
        call("enable-auto-renew", Value::Null),
        // canceled: the on_cancel steps.
        call("pause", Value::Null),
        call("disable-auto-renew", Value::Null),
    ]
}

/// A paid points purchase (2 × 1,000 points for 5,000) → refund of 1,000 → refund of 1,500,
/// each refund told twice (charge.refunded and refund.created).
fn points_story() -> Vec<Vec<u8>> {
    vec![
        story::points_checkout("evt_p1", 100, 5000, "4242"),
        story::charge_refunded("evt_p2", 200, 5000, &[("re_1", 1000)]),
        story::refund_created("evt_p3", 201, "re_1", 1000),
        story::charge_refunded("evt_p4", 300, 5000, &[("re_1", 1000), ("re_2", 1500)]),
        story::refund_created("evt_p5", 301, "re_2", 1500),
    ]
}

fn points_story_calls() -> Vec<QueuedCall> {
    let session = story::POINTS_SESSION;
    vec![
        // The buyer named workspace 4242: it is used once UChat shows them as its owner.
        call(
            "claim-workspace",
            json!({"workspace_id": 4242, "email": "billz@supabase.io"}),
        ),
        call(
            "topup-points",
            json!({"points": 2000, "note": format!("Stripe checkout {session}")}),
        ),
        call(
            "deduct-points",
            json!({"points": 400, "note": format!("refund of Stripe checkout {session}")}),
        ),
        call(
            "deduct-points",
            json!({"points": 600, "note": format!("refund of Stripe checkout {session}")}),
        ),
    ]
}

/// A fake Stripe API that lists the points session's line items.
async fn stripe_api() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/checkout/sessions/{}/line_items", story::POINTS_SESSION)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [{"id": "li_1", "object": "item", "price": {"id": "price_points_1000"}, "quantity": 2}],
            "has_more": false
        })))
        .mount(&server)
        .await;
    server
}

async fn spawn_app_with_stripe(stripe: &MockServer) -> TestApp {
    let base = stripe.uri();
    spawn_app_with(move |config| {
        config.stripe_api = Some(uchat_billing::stripe::api::StripeApi::new(
            &base,
            uchat_billing::secret::Secret::new("rk_test_story"),
        ));
    })
    .await
}

#[tokio::test]
async fn the_subscription_story_in_order_plans_the_expected_calls() {
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    app.post_stripe_events(&subscription_story()).await;
    app.process_events().await;
    assert_eq!(app.queued_calls().await, subscription_story_calls());

    let (status, workspace): (String, Option<i64>) =
        sqlx::query_as("SELECT status, workspace_id FROM orders")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), workspace), ("canceled", None));
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE status = 'pending'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn the_points_story_in_order_plans_the_expected_calls() {
    let stripe = stripe_api().await;
    let app = spawn_app_with_stripe(&stripe).await;
    app.expect_unfinished_calls();
    app.post_stripe_events(&points_story()).await;
    app.process_events().await;
    assert_eq!(app.queued_calls().await, points_story_calls());
}

/// Posts the story's events in the generated order, with the generated duplicates, then
/// processes them: the queued calls must be exactly the expected ones.
fn check_any_delivery_order(
    app: &TestApp,
    runtime: &tokio::runtime::Runtime,
    events: Vec<Vec<u8>>,
    expected: Vec<QueuedCall>,
) {
    let count = events.len();
    app.expect_unfinished_calls();
    let deliveries = (
        Just((0..count).collect::<Vec<_>>()).prop_shuffle(),
        proptest::collection::vec(0..count, 0..count),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&deliveries, |(order, duplicates)| {
            runtime.block_on(async {
                app.reset().await;
                for index in order.iter().chain(&duplicates) {
                    assert_eq!(app.post_stripe_event(&events[*index]).await.status(), 200);
                }
                app.process_events().await;
                assert_eq!(
                    app.queued_calls().await,
                    expected,
                    "delivery order {order:?} + {duplicates:?}"
                );
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_subscription_story_in_any_delivery_order_plans_the_same_calls() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app());
    check_any_delivery_order(
        &app,
        &runtime,
        subscription_story(),
        subscription_story_calls(),
    );
}

#[test]
fn the_points_story_in_any_delivery_order_plans_the_same_calls() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, _stripe) = runtime.block_on(async {
        let stripe = stripe_api().await;
        (spawn_app_with_stripe(&stripe).await, stripe)
    });
    check_any_delivery_order(&app, &runtime, points_story(), points_story_calls());
}

#[tokio::test]
async fn two_processors_at_once_plan_each_call_once() {
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    app.post_stripe_events(&subscription_story()).await;
    let (first, second) = (app.processor.clone(), app.processor.clone());
    let (a, b) = tokio::join!(
        tokio::spawn(async move { first.drain().await.unwrap() }),
        tokio::spawn(async move { second.drain().await.unwrap() }),
    );
    assert_eq!(a.unwrap() + b.unwrap(), subscription_story().len());
    assert_eq!(app.queued_calls().await, subscription_story_calls());
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 1);
}

#[tokio::test]
async fn an_unknown_price_puts_the_order_on_hold_and_acknowledges_the_event() {
    let app = spawn_app().await;
    app.post_stripe_events(&[story::subscription_checkout("evt_u1", 100)])
        .await;
    let unknown = Sub::active(&[("price_not_in_catalog", 1)]);
    app.post_stripe_events(&[story::subscription(
        "evt_u2",
        "customer.subscription.created",
        101,
        &unknown,
    )])
    .await;
    app.process_events().await;
    assert_eq!(app.queued_calls().await, vec![]);
    let (status, attention) = app.order_status(None).await;
    assert_eq!(status, "needs_attention");
    assert!(attention.unwrap().contains("price_not_in_catalog"));
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM events ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(statuses, ["processed", "processed"]);
}

#[tokio::test]
async fn an_event_missing_essentials_is_marked_failed_with_its_reason() {
    let app = spawn_app().await;
    app.expect_failed_events();
    let broken = envelope(
        "evt_broken",
        "customer.subscription.updated",
        100,
        json!({"object": "subscription"}),
    );
    app.post_stripe_events(&[broken]).await;
    app.process_events().await;
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM events")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("customer.subscription.updated"));
    assert_eq!(app.queued_calls().await, vec![]);
}

#[tokio::test]
async fn a_stripe_outage_keeps_the_event_pending_for_a_later_try() {
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"error": {"message": "down"}})),
        )
        .mount(&stripe)
        .await;
    let app = spawn_app_with_stripe(&stripe).await;
    app.post_stripe_events(&[story::points_checkout("evt_o1", 100, 5000, "4242")])
        .await;
    app.process_events().await;
    let (status, attempts, error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, error FROM events")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    assert!(error.unwrap().contains("503"));
    assert_eq!(app.queued_calls().await, vec![]);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 0, "nothing of a postponed event is written");
}

#[tokio::test]
async fn an_email_no_event_carries_is_read_from_the_stripe_customer() {
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/customers/{}", story::CUSTOMER)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": story::CUSTOMER, "object": "customer", "email": "grace@example.com", "name": "Grace Hopper"
        })))
        .expect(1..)
        .mount(&stripe)
        .await;
    let app = spawn_app_with_stripe(&stripe).await;
    app.expect_unfinished_calls();
    let business = Sub::active(&[("price_business", 1)]);
    app.post_stripe_events(&[story::subscription(
        "evt_c1",
        "customer.subscription.created",
        100,
        &business,
    )])
    .await;
    app.process_events().await;
    let calls = app.queued_calls().await;
    assert_eq!(calls[0].kind, "create");
    assert_eq!(calls[0].body["email"], "grace@example.com");
    assert_eq!(calls[0].body["team_name"], "Grace Hopper's team");
}

#[tokio::test]
async fn without_an_email_the_order_waits_for_an_operator() {
    let app = spawn_app().await;
    let business = Sub::active(&[("price_business", 1)]);
    app.post_stripe_events(&[story::subscription(
        "evt_n1",
        "customer.subscription.created",
        100,
        &business,
    )])
    .await;
    app.process_events().await;
    assert_eq!(app.queued_calls().await, vec![]);
    let (status, attention) = app.order_status(None).await;
    assert_eq!(status, "needs_attention");
    assert!(attention.unwrap().contains("email"));
}
