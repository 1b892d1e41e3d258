//! The operator API as an operator uses it: access, reads, the retry/cancel/reprocess state
//! machine, dry runs, stats, metrics and the OpenAPI document.

mod access;
mod dry_run;
mod fuzz;
mod openapi;
mod reads;
mod reprocess;
mod retry_cancel;
mod stats;

use crate::common::story::{self, Sub};
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Checkout, subscription created, first invoice paid: an order that plans create and
/// change-plan to business.
fn sale() -> Vec<Vec<u8>> {
    vec![
        story::subscription_checkout("evt_a1", 100),
        story::subscription(
            "evt_a2",
            "customer.subscription.created",
            101,
            &Sub::active(&[("price_business", 1)]),
        ),
        story::invoice(
            "evt_a3",
            "invoice.paid",
            102,
            "subscription_create",
            "price_business",
        ),
    ]
}

/// The upgrade that follows the sale: change-plan to business_plus, two bot add-ons.
fn upgrade() -> Vec<u8> {
    story::subscription(
        "evt_a4",
        "customer.subscription.updated",
        200,
        &Sub::active(&[("price_business_plus", 1), ("price_bot", 2)]),
    )
}

/// An app with the sale and the upgrade applied: one order, four pending calls, which
/// nothing delivers.
async fn app_with_an_order() -> TestApp {
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    let mut events = sale();
    events.push(upgrade());
    app.post_stripe_events(&events).await;
    app.process_events().await;
    app
}

async fn only_order_id(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT id FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The order's call ids, in their sequence.
async fn call_ids(app: &TestApp, order_id: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM partner_calls WHERE order_id = $1 ORDER BY position")
        .bind(order_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn set_call(app: &TestApp, id: i64, status: &str) {
    sqlx::query(
        "UPDATE partner_calls SET status = $2, attempts = 5, last_error = 'HTTP 500',
             next_attempt_at = now() + interval '1 hour',
             held_since = CASE WHEN $2 = 'held' THEN now() END,
             finished_at = CASE WHEN $2 IN ('succeeded', 'dead', 'canceled') THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .execute(&app.db)
    .await
    .unwrap();
}

async fn order_state(app: &TestApp, order_id: i64) -> (String, Option<String>, Option<String>) {
    sqlx::query_as("SELECT status, attention, blocked_status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The OpenAPI document the app serves.
async fn document(app: &TestApp) -> Value {
    let (status, document) = app.admin_get("/admin/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    document
}

/// Every operation of the document: method and path, with `{id}` as given.
fn operations(document: &Value, id: &str) -> Vec<(Method, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, path.replace("{id}", id)));
        }
    }
    operations
}

/// `POST /admin/dry-run` of `event`: the status and the JSON answer.
async fn dry_run(app: &TestApp, event: &[u8]) -> (StatusCode, Value) {
    let response = app
        .admin_request(Method::POST, "/admin/dry-run")
        .header("content-type", "application/json")
        .body(event.to_vec())
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}
