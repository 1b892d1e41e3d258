//! The operator API as an operator uses it: access, reads, the retry/cancel/reprocess state
//! machine, dry runs, stats, metrics and the OpenAPI document.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::story::{self, Sub};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uchat_billing::plan::Catalog;
use uchat_billing::processor::Processor;
use uchat_billing::secret::Secret;
use uchat_billing::stripe::api::StripeApi;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

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

/// An app with the sale and the upgrade applied: one order, four pending calls.
async fn app_with_an_order() -> TestApp {
    let app = spawn_app().await;
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

/// The order as delivery leaves it when one of its calls goes dead or held.
async fn block_order(app: &TestApp, order_id: i64) {
    sqlx::query(
        "UPDATE orders SET blocked_status = status, status = 'needs_attention',
             attention = 'a partner call is dead'
         WHERE id = $1",
    )
    .bind(order_id)
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

/// The pending calls a worker may claim now: every earlier call of their order succeeded
/// or was canceled.
async fn claimable(app: &TestApp) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT c.id FROM partner_calls c
         WHERE c.status = 'pending' AND c.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1 FROM partner_calls p
                           WHERE p.order_id = c.order_id AND p.position < c.position
                             AND p.status NOT IN ('succeeded', 'canceled'))
         ORDER BY c.order_id, c.position",
    )
    .fetch_all(&app.db)
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

// ---- access ----

#[tokio::test]
async fn every_route_rejects_a_missing_or_wrong_token() {
    let app = spawn_app().await;
    let operations = operations(&document(&app).await, "1");
    assert!(operations.len() >= 10, "{operations:?}");
    for (method, path) in operations {
        let url = format!("{}{path}", app.address);
        let requests = [
            ("no token", app.client.request(method.clone(), &url)),
            (
                "wrong token",
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth("admin-test-tokeN"),
            ),
            (
                "token prefix",
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth("admin-test"),
            ),
            (
                "other scheme",
                app.client
                    .request(method.clone(), &url)
                    .header("authorization", format!("Basic {ADMIN_TOKEN}")),
            ),
        ];
        for (case, request) in requests {
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{case}: {method} {path}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{method} {path}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body, json!({"error": "missing or wrong admin token"}));
        }
    }
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let documented: HashSet<(Method, String)> = operations(&document, "1").into_iter().collect();
    let paths: BTreeSet<String> = documented.iter().map(|(_, path)| path.clone()).collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            let response = app
                .admin_request(method.clone(), &path)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            if documented.contains(&(method.clone(), path.clone())) {
                // Served: an answer of the handler, which may be "order 1 not found".
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(!text.contains("route not found"), "{method} {path}: {text}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["error"], "method not allowed");
            }
        }
    }
    // An admin path nobody declared is not served, with or without the token.
    let (status, body) = app.admin_get("/admin/undeclared").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "route not found");
}

#[tokio::test]
async fn without_an_admin_token_the_operator_api_is_off_but_webhooks_work() {
    let app = spawn_app_with(|config| config.admin_token = None).await;
    let document = serde_json::to_value(uchat_billing::http::openapi()).unwrap();
    for (method, path) in operations(&document, "1") {
        for token in [None, Some(ADMIN_TOKEN)] {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.address));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body, json!({"error": "admin disabled"}));
        }
    }
    app.post_stripe_events(&sale()).await;
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn public_metrics_need_no_token_but_admin_routes_still_do() {
    let app = spawn_app_with(|config| config.metrics_public = true).await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(
        app.get("/admin/stats").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

// ---- reads ----

#[tokio::test]
async fn an_order_shows_its_stripe_ids_facts_and_timeline_in_time_order() {
    let app = app_with_an_order().await;
    let order_id = only_order_id(&app).await;
    let calls = call_ids(&app, order_id).await;
    sqlx::query(
        "INSERT INTO attempts (call_id, attempt, started_at, duration_ms, http_status, error, outcome)
         VALUES ($1, 1, now(), 120, 502, 'bad gateway', 'retry'),
                ($1, 2, now() + interval '1 second', 80, 200, NULL, 'succeeded')",
    )
    .bind(calls[0])
    .execute(&app.db)
    .await
    .unwrap();

    let (status, detail) = app.admin_get(&format!("/admin/orders/{order_id}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let order = &detail["order"];
    assert_eq!(order["id"], order_id);
    assert_eq!(order["status"], "active");
    assert_eq!(order["customer"], story::CUSTOMER);
    assert_eq!(order["email"], story::EMAIL);
    assert_eq!(order["name"], story::NAME);
    let stripe_ids: Vec<&str> = order["stripe_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert!(stripe_ids.contains(&"sub:sub_story"), "{stripe_ids:?}");
    assert!(
        stripe_ids.contains(&"cs:cs_story_subscription"),
        "{stripe_ids:?}"
    );
    assert!(order["facts"]["subscription"].is_object());
    assert_eq!(order["provisioned"]["plan"], "business_plus");

    let timeline = detail["timeline"].as_array().unwrap();
    let entries: Vec<(&str, &str)> = timeline
        .iter()
        .map(|entry| match entry["entry"].as_str().unwrap() {
            "event" => ("event", entry["stripe_event_id"].as_str().unwrap()),
            _ => ("call", entry["kind"].as_str().unwrap()),
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("event", "evt_a1"),
            ("event", "evt_a2"),
            ("event", "evt_a3"),
            ("event", "evt_a4"),
            ("call", "create"),
            ("call", "change-plan"),
            ("call", "change-plan"),
            ("call", "add-addon"),
        ]
    );
    let times: Vec<&str> = timeline
        .iter()
        .map(|entry| {
            entry["received_at"]
                .as_str()
                .or(entry["created_at"].as_str())
                .unwrap()
        })
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let event = &timeline[1];
    assert_eq!(event["type"], "customer.subscription.created");
    assert_eq!(event["created"], 101);
    assert_eq!(event["status"], "processed");
    let create = &timeline[4];
    assert_eq!(create["status"], "pending");
    assert_eq!(create["position"], 1);
    assert_eq!(create["body"]["email"], story::EMAIL);
    let attempts = create["attempt_log"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["http_status"], 502);
    assert_eq!(attempts[0]["error"], "bad gateway");
    assert_eq!(attempts[0]["duration_ms"], 120);
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_eq!(timeline[5]["attempt_log"], json!([]));
}

#[tokio::test]
async fn an_event_that_failed_shows_in_its_orders_timeline() {
    // Stripe lists the points session's line items once, then knows it no more.
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/checkout/sessions/{}/line_items", story::POINTS_SESSION)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [{"id": "li_1", "object": "item", "price": {"id": "price_points_1000"}, "quantity": 1}],
            "has_more": false
        })))
        .up_to_n_times(1)
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error": {"type": "invalid_request_error", "message": "No such checkout.session"}}),
        ))
        .with_priority(10)
        .mount(&stripe)
        .await;
    let base = stripe.uri();
    let app = spawn_app_with(move |config| {
        config.stripe_api = Some(StripeApi::new(&base, Secret::new("rk_test_admin")));
    })
    .await;
    let paid = story::points_checkout("evt_p1", 100, 1000, "4242");
    let mut again: Value = serde_json::from_slice(&paid).unwrap();
    again["id"] = json!("evt_p2");
    again["type"] = json!("checkout.session.async_payment_succeeded");
    again["created"] = json!(101);
    app.post_stripe_events(&[paid, serde_json::to_vec(&again).unwrap()])
        .await;
    app.process_events().await;

    let order_id = only_order_id(&app).await;
    let (status, detail) = app.admin_get(&format!("/admin/orders/{order_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<&Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["entry"] == "event")
        .collect();
    assert_eq!(events.len(), 2, "{detail}");
    assert_eq!(events[1]["stripe_event_id"], "evt_p2");
    assert_eq!(events[1]["status"], "failed", "{}", events[1]);
    assert_eq!(events[1]["order_id"], Value::Null);
    assert!(
        events[1]["error"].as_str().unwrap().contains("HTTP 404"),
        "{}",
        events[1]
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_400() {
    let app = app_with_an_order().await;
    for path in [
        "/admin/orders/999",
        "/admin/calls/999/retry",
        "/admin/calls/999/cancel",
        "/admin/events/999/reprocess",
    ] {
        let (status, body) = if path.starts_with("/admin/orders") {
            app.admin_get(path).await
        } else {
            app.admin_post(path, &json!({})).await
        };
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            body["error"].as_str().unwrap().ends_with("999 not found"),
            "{body}"
        );
    }
    for id in ["abc", "0", "-1", "1.5", "99999999999999999999", "%20"] {
        let (status, body) = app.admin_get(&format!("/admin/orders/{id}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
        assert!(body["error"].as_str().unwrap().contains("`id`"), "{body}");
        let (status, _) = app
            .admin_post(&format!("/admin/calls/{id}/retry"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
    }
}

#[tokio::test]
async fn malformed_list_parameters_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=0", "cursor"),
        ("status=lost", "status"),
        ("workspace_id=12a", "workspace_id"),
        ("email=a%00b", "email"),
    ] {
        let (status, body) = app.admin_get(&format!("/admin/orders?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("{parameter}: ")),
            "{query}: {error}"
        );
    }
    // A NUL, which Postgres cannot store, is dropped from ids as intake drops it: the dry
    // run still answers.
    let mut event: Value = serde_json::from_slice(&upgrade()).unwrap();
    event["data"]["object"]["id"] = json!("sub_\u{0}");
    let (status, body) = dry_run(&app, &serde_json::to_vec(&event).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.admin_get("/admin/calls?status=finished").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("status: "),
        "{body}"
    );
    // Blank parameters count as absent.
    let (status, _) = app
        .admin_get("/admin/orders?status=&email=&customer=&workspace_id=&limit=&cursor=")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.admin_get("/admin/orders?limit=200").await;
    assert_eq!(status, StatusCode::OK);
}

/// `count` orders straight into the table, each with its own customer, email and status.
async fn insert_orders(app: &TestApp, count: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "INSERT INTO orders (stripe_customer, email, workspace_id, status)
         SELECT 'cus_' || n, 'Buyer' || n || '@Example.com', 1000 + n,
                (ARRAY['pending', 'active', 'needs_attention'])[n % 3 + 1]
         FROM generate_series(1, $1) AS n
         RETURNING id",
    )
    .bind(count)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn walking_every_page_while_orders_arrive_gives_no_gaps_and_no_repeats() {
    let app = spawn_app().await;
    let existing = insert_orders(&app, 47).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("/admin/orders?limit=10&cursor={cursor}"),
            None => "/admin/orders?limit=10".to_owned(),
        };
        let (status, page) = app.admin_get(&query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 10);
        seen.extend(items.iter().map(|order| order["id"].as_i64().unwrap()));
        pages += 1;
        // New orders arrive between pages.
        insert_orders(&app, 3).await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let mut expected = existing.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "newest first, each once");
}

#[tokio::test]
async fn orders_are_filtered_by_status_email_customer_and_workspace() {
    let app = spawn_app().await;
    insert_orders(&app, 9).await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|order| order["customer"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = app.admin_get("/admin/orders?status=needs_attention").await;
    assert_eq!(ids(&page), ["cus_8", "cus_5", "cus_2"]);
    let (_, page) = app
        .admin_get("/admin/orders?email=buyer4@example.COM")
        .await;
    assert_eq!(ids(&page), ["cus_4"]);
    let (_, page) = app.admin_get("/admin/orders?customer=cus_7").await;
    assert_eq!(ids(&page), ["cus_7"]);
    let (_, page) = app
        .admin_get("/admin/orders?workspace_id=1003&status=pending")
        .await;
    assert_eq!(ids(&page), ["cus_3"]);
    let (_, page) = app
        .admin_get("/admin/orders?workspace_id=1003&status=active")
        .await;
    assert_eq!(ids(&page), Vec::<String>::new());
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn calls_are_listed_newest_first_by_status_a_page_at_a_time() {
    let app = app_with_an_order().await;
    let calls = call_ids(&app, only_order_id(&app).await).await;
    set_call(&app, calls[0], "succeeded").await;
    set_call(&app, calls[1], "dead").await;

    let (status, page) = app.admin_get("/admin/calls?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let first: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first, [calls[3], calls[2]]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = app
        .admin_get(&format!("/admin/calls?limit=2&cursor={cursor}"))
        .await;
    let second: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(second, [calls[1], calls[0]]);
    assert_eq!(page["next_cursor"], Value::Null);

    let (_, page) = app.admin_get("/admin/calls?status=dead").await;
    let dead = page["items"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], calls[1]);
    assert_eq!(dead[0]["last_error"], "HTTP 500");
    assert_eq!(dead[0]["kind"], "change-plan");
}

// ---- retry and cancel ----

const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "held",
    "succeeded",
    "dead",
    "canceled",
];

#[tokio::test]
async fn retry_and_cancel_are_allowed_only_from_their_states() {
    let app = app_with_an_order().await;
    let call = call_ids(&app, only_order_id(&app).await).await[0];
    for status in STATUSES {
        for (action, allowed, after) in [
            ("retry", ["dead", "held"].as_slice(), "pending"),
            ("cancel", ["pending", "held", "dead"].as_slice(), "canceled"),
        ] {
            set_call(&app, call, status).await;
            let (code, body) = app
                .admin_post(&format!("/admin/calls/{call}/{action}"), &json!({}))
                .await;
            if allowed.contains(&status) {
                assert_eq!(code, StatusCode::OK, "{action} {status}: {body}");
                assert_eq!(body["status"], after);
                assert_eq!(body["id"], call);
            } else {
                assert_eq!(code, StatusCode::CONFLICT, "{action} {status}: {body}");
                let error = body["error"].as_str().unwrap();
                assert!(error.contains(&format!("is {status}")), "{error}");
                let unchanged: String =
                    sqlx::query_scalar("SELECT status FROM partner_calls WHERE id = $1")
                        .bind(call)
                        .fetch_one(&app.db)
                        .await
                        .unwrap();
                assert_eq!(unchanged, status);
            }
        }
    }
}

#[tokio::test]
async fn a_retried_call_is_due_now_with_its_last_error_and_a_dead_one_gets_all_its_tries() {
    let app = app_with_an_order().await;
    let calls = call_ids(&app, only_order_id(&app).await).await;
    set_call(&app, calls[0], "dead").await;
    set_call(&app, calls[1], "held").await;

    let (status, dead) = app
        .admin_post(&format!("/admin/calls/{}/retry", calls[0]), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dead["status"], "pending");
    assert_eq!(dead["attempts"], 0);
    assert_eq!(dead["last_error"], "HTTP 500");
    assert_eq!(dead["held_since"], Value::Null);
    assert_eq!(dead["finished_at"], Value::Null);
    let (status, held) = app
        .admin_post(&format!("/admin/calls/{}/retry", calls[1]), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(held["attempts"], 5, "a held call keeps its count");
    assert_eq!(held["held_since"], Value::Null);
    let due: bool = sqlx::query_scalar(
        "SELECT bool_and(next_attempt_at <= now()) FROM partner_calls WHERE id = ANY($1)",
    )
    .bind(&calls[..2])
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(due);
    assert_eq!(
        claimable(&app).await,
        [calls[0]],
        "the first call runs first"
    );
}

#[tokio::test]
async fn canceling_a_dead_call_lets_the_orders_next_call_run() {
    let app = app_with_an_order().await;
    let calls = call_ids(&app, only_order_id(&app).await).await;
    set_call(&app, calls[0], "succeeded").await;
    set_call(&app, calls[1], "dead").await;
    sqlx::query("UPDATE partner_calls SET next_attempt_at = now() WHERE id = ANY($1)")
        .bind(&calls[2..])
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        claimable(&app).await,
        Vec::<i64>::new(),
        "the dead call blocks the rest"
    );

    let (status, canceled) = app
        .admin_post(&format!("/admin/calls/{}/cancel", calls[1]), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled["finished_at"].is_string());
    assert_eq!(claimable(&app).await, [calls[2]]);
}

#[tokio::test]
async fn the_order_gets_its_status_back_once_no_call_is_dead_or_held() {
    let app = app_with_an_order().await;
    let order_id = only_order_id(&app).await;
    let calls = call_ids(&app, order_id).await;
    set_call(&app, calls[0], "dead").await;
    set_call(&app, calls[1], "held").await;
    block_order(&app, order_id).await;

    app.admin_post(&format!("/admin/calls/{}/retry", calls[0]), &json!({}))
        .await;
    assert_eq!(
        order_state(&app, order_id).await,
        (
            "needs_attention".into(),
            Some("a partner call is dead".into()),
            Some("active".into())
        ),
        "a held call still blocks the order"
    );
    app.admin_post(&format!("/admin/calls/{}/cancel", calls[1]), &json!({}))
        .await;
    assert_eq!(
        order_state(&app, order_id).await,
        ("active".into(), None, None)
    );
}

#[tokio::test]
async fn concurrent_retries_and_cancels_change_a_call_once() {
    let app = app_with_an_order().await;
    let call = call_ids(&app, only_order_id(&app).await).await[0];
    for action in ["retry", "cancel"] {
        set_call(&app, call, "dead").await;
        let path = format!("/admin/calls/{call}/{action}");
        let empty = json!({});
        let answers =
            futures::future::join_all((0..8).map(|_| app.admin_post(&path, &empty))).await;
        let made = answers
            .iter()
            .filter(|(status, _)| *status == StatusCode::OK)
            .count();
        let refused = answers
            .iter()
            .filter(|(status, _)| *status == StatusCode::CONFLICT)
            .count();
        // The first one made pending (or canceled) a call the others then may not change.
        assert_eq!((made, refused), (1, 7), "{action}: {answers:?}");
    }
}

// ---- reprocess ----

/// The test catalog without `price_business`.
fn catalog_lacking_business() -> Catalog {
    let text = std::fs::read_to_string(fixture_path("catalog.toml")).unwrap();
    let text = text.replace(
        "[[price]]\nstripe_price = \"price_business\"\nplan = \"business\"\n",
        "",
    );
    assert!(!text.contains("\"price_business\""));
    Catalog::parse(&text).unwrap()
}

#[tokio::test]
async fn reprocessing_after_a_catalog_fix_plans_the_right_calls() {
    let app = spawn_app_with(|config| config.catalog = Arc::new(catalog_lacking_business())).await;
    app.post_stripe_events(&sale()).await;
    app.process_events().await;
    let order_id = only_order_id(&app).await;
    let (status, attention, _) = order_state(&app, order_id).await;
    assert_eq!(status, "needs_attention");
    assert!(attention.unwrap().contains("price_business"));
    assert_eq!(app.queued_calls().await, vec![]);

    let event_id: i64 = sqlx::query_scalar("SELECT max(id) FROM events WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (code, event) = app
        .admin_post(&format!("/admin/events/{event_id}/reprocess"), &json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{event}");
    assert_eq!(event["status"], "pending");
    assert_eq!(event["error"], Value::Null);
    let (code, _) = app
        .admin_post(&format!("/admin/events/{event_id}/reprocess"), &json!({}))
        .await;
    assert_eq!(
        code,
        StatusCode::CONFLICT,
        "a pending event is already queued"
    );

    let fixed = Processor::new(
        app.db.clone(),
        Arc::new(test_catalog()),
        None,
        Duration::ZERO,
    );
    assert_eq!(fixed.drain().await.unwrap(), 1);
    let expected: Vec<QueuedCall> = uchat_billing::dry_run::plan_events(&test_catalog(), &sale())
        .unwrap()
        .into_iter()
        .flat_map(|step| step.effect.calls)
        .map(|call| QueuedCall {
            kind: call.kind.to_owned(),
            body: call.body,
        })
        .collect();
    assert_eq!(expected.len(), 2, "create and change-plan");
    assert_eq!(app.queued_calls().await, expected);
    assert_eq!(
        order_state(&app, order_id).await,
        ("active".into(), None, None)
    );

    // Planned now: reprocessing again is refused.
    let (code, body) = app
        .admin_post(&format!("/admin/events/{event_id}/reprocess"), &json!({}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("does not need attention"));
}

#[tokio::test]
async fn a_failed_event_can_be_reprocessed_and_other_states_cannot() {
    let app = app_with_an_order().await;
    let broken = envelope(
        "evt_broken",
        "customer.subscription.updated",
        300,
        json!({"object": "subscription"}),
    );
    let ignored = envelope(
        "evt_ignored",
        "customer.created",
        300,
        json!({"object": "customer"}),
    );
    app.post_stripe_events(&[broken, ignored]).await;
    app.process_events().await;
    let id_of = |stripe_id: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM events WHERE stripe_event_id = $1")
                .bind(stripe_id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    let failed = id_of("evt_broken").await;
    let (code, event) = app
        .admin_post(&format!("/admin/events/{failed}/reprocess"), &json!({}))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(event["stripe_event_id"], "evt_broken");
    assert_eq!(event["status"], "pending");
    app.process_events().await;
    let status: String = sqlx::query_scalar("SELECT status FROM events WHERE id = $1")
        .bind(failed)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "failed", "the same payload fails the same way");

    for (stripe_id, state) in [("evt_ignored", "ignored"), ("evt_a2", "processed")] {
        let id = id_of(stripe_id).await;
        let (code, body) = app
            .admin_post(&format!("/admin/events/{id}/reprocess"), &json!({}))
            .await;
        assert_eq!(code, StatusCode::CONFLICT, "{stripe_id}");
        assert!(body["error"].as_str().unwrap().contains(state), "{body}");
    }
}

// ---- dry run ----

const TABLES: [&str; 5] = [
    "events",
    "orders",
    "order_links",
    "partner_calls",
    "attempts",
];

async fn row_counts(app: &TestApp) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for table in TABLES {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&app.db)
            .await
            .unwrap();
        counts.insert(table, count);
    }
    counts
}

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

#[tokio::test]
async fn a_dry_run_plans_against_the_orders_current_state_and_writes_nothing() {
    let app = spawn_app().await;
    app.post_stripe_events(&sale()).await;
    app.process_events().await;
    let order_id = only_order_id(&app).await;
    let before = row_counts(&app).await;

    let (status, answer) = dry_run(&app, &upgrade()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({
            "order_id": order_id,
            "calls": [
                {"kind": "change-plan", "body": {"plan": "business_plus", "auto_renew": "yes"}},
                {"kind": "add-addon", "body": {"addon": "bot", "qty": 2}},
            ],
            "status": "active",
            "attention": null,
        })
    );
    let mut other: Value =
        serde_json::from_slice(&story::points_checkout("evt_new", 400, 5000, "4242")).unwrap();
    other["data"]["object"]["id"] = json!("cs_someone_else");
    other["data"]["object"]["payment_intent"] = json!("pi_someone_else");
    let (status, answer) = dry_run(&app, &serde_json::to_vec(&other).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["order_id"], Value::Null, "a new order");

    for bad in [
        b"not json".to_vec(),
        br#"{"id": "evt_x"}"#.to_vec(),
        envelope("evt_c", "customer.created", 1, json!({})),
        envelope(
            "evt_u",
            "customer.subscription.updated",
            1,
            json!({"object": "subscription"}),
        ),
    ] {
        let (status, body) = dry_run(&app, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].is_string());
    }
    assert_eq!(row_counts(&app).await, before, "a dry run writes nothing");

    // What the dry run said is what processing the event queues.
    app.post_stripe_events(&[upgrade()]).await;
    app.process_events().await;
    let queued = app.queued_calls().await;
    assert_eq!(queued[2..].len(), 2);
    assert_eq!(queued[2].kind, "change-plan");
    assert_eq!(queued[3].body, json!({"addon": "bot", "qty": 2}));
}

// ---- stats and metrics ----

#[tokio::test]
async fn stats_count_orders_and_calls_and_show_the_backlog() {
    let app = app_with_an_order().await;
    let calls = call_ids(&app, only_order_id(&app).await).await;
    set_call(&app, calls[0], "dead").await;
    set_call(&app, calls[1], "held").await;
    sqlx::query("UPDATE partner_calls SET next_attempt_at = now() - interval '90 seconds' WHERE id = ANY($1)")
        .bind(&calls[1..])
        .execute(&app.db)
        .await
        .unwrap();

    let (status, stats) = app.admin_get("/admin/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["orders"], json!({"active": 1}));
    assert_eq!(stats["calls"], json!({"dead": 1, "held": 1, "pending": 2}));
    assert_eq!(stats["due"], 3);
    assert_eq!(stats["held"], 1);
    assert_eq!(stats["dead"], 1);
    let age = stats["oldest_due_age_seconds"].as_f64().unwrap();
    assert!((90.0..120.0).contains(&age), "{age}");
}

#[tokio::test]
async fn metrics_count_webhooks_and_show_the_backlog_in_prometheus_format() {
    let app = app_with_an_order().await;
    app.post_stripe_events(&[upgrade()]).await; // a duplicate
    app.post_webhook(b"{}".to_vec(), Some("t=1,v1=00")).await;
    set_call(
        &app,
        call_ids(&app, only_order_id(&app).await).await[0],
        "dead",
    )
    .await;

    let response = app
        .admin_request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for line in [
        r#"uchat_billing_webhooks_total{type="customer.subscription.updated",outcome="stored"} 1"#,
        r#"uchat_billing_webhooks_total{type="customer.subscription.updated",outcome="duplicate"} 1"#,
        r#"uchat_billing_webhooks_total{type="invoice.paid",outcome="stored"} 1"#,
        r#"uchat_billing_webhooks_total{type="unverified",outcome="rejected"} 1"#,
        "uchat_billing_webhook_duration_seconds_count 6",
        "uchat_billing_calls_due 3",
        "uchat_billing_calls_dead 1",
        "uchat_billing_calls_held 0",
        "# TYPE uchat_billing_partner_call_duration_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
}

// ---- the OpenAPI document ----

/// Every `$ref` in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => references(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_valid_3_1_and_lists_every_admin_route() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));

    let spec = oas3::from_json(document.to_string()).expect("parses as OpenAPI 3.1");
    assert_eq!(spec.validate_version().unwrap().minor, 1);

    let listed: BTreeSet<String> = operations(&document, "{id}")
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    let issue: BTreeSet<String> = [
        "GET /admin/orders",
        "GET /admin/orders/{id}",
        "GET /admin/calls",
        "POST /admin/calls/{id}/retry",
        "POST /admin/calls/{id}/cancel",
        "POST /admin/events/{id}/reprocess",
        "POST /admin/dry-run",
        "GET /admin/stats",
        "GET /admin/openapi.json",
        "GET /metrics",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(listed, issue);

    let mut operation_ids = HashSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {path}");
            assert!(responses.contains_key("401"), "{method} {path}");
            assert!(operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned()));
            if path.contains("{id}") {
                assert_eq!(operation["parameters"][0]["name"], "id", "{method} {path}");
                assert_eq!(operation["parameters"][0]["in"], "path", "{method} {path}");
            }
        }
    }

    let mut targets = Vec::new();
    references(&document, &mut targets);
    assert!(targets.len() > 20);
    for target in targets {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }

    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"],
        json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(document["security"], json!([{"admin_token": []}]));
    for schema in [
        "OrderDetail",
        "Page_OrderSummary",
        "Page_CallRecord",
        "CallRecord",
        "EventRecord",
        "DryRun",
        "Stats",
        "ErrorBody",
    ] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
}

// ---- anything at all ----

/// Path ids: valid, out of range, and not numbers at all.
fn any_id() -> impl Strategy<Value = String> {
    prop_oneof![
        (1i64..40).prop_map(|id| id.to_string()),
        any::<i64>().prop_map(|id| id.to_string()),
        "[a-zA-Z0-9._~%-]{1,12}",
        Just("99999999999999999999".to_owned()),
    ]
}

/// Query values: sensible ones and anything.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-5i64..300).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "pending",
            "running",
            "held",
            "succeeded",
            "dead",
            "canceled",
            "active",
            "needs_attention",
            "",
            " ",
            "1e3",
            "NaN",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn any_query() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(vec![
        "limit",
        "cursor",
        "status",
        "email",
        "customer",
        "workspace_id",
        "other",
    ]);
    prop::collection::vec((name.prop_map(str::to_owned), any_value()), 0..4)
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "(sub|cus|pi|cs|in|ch)_[a-z]{1,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Dry-run bodies: random JSON, events of types the service acts on with a random
/// object, and real samples with one field replaced.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    let acted_on = prop::sample::select(uchat_billing::stripe::decode::ACTED_ON.to_vec());
    let sample_names = prop::sample::select(vec![
        "checkout.session.completed.json",
        "invoice.paid.json",
        "customer.subscription.updated.json",
        "charge.refunded.json",
        "refund.created.json",
        "charge.dispute.created.json",
    ]);
    prop_oneof![
        any_json().prop_map(|value| serde_json::to_vec(&value).unwrap()),
        (acted_on, any::<i64>(), any_json()).prop_map(|(event_type, created, object)| {
            envelope("evt_random", event_type, created, object)
        }),
        (sample_names, "[a-z_]{1,12}", any_json()).prop_map(|(name, field, value)| {
            let mut event: Value = serde_json::from_slice(&sample(name)).unwrap();
            event["data"]["object"][field] = value;
            serde_json::to_vec(&event).unwrap()
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[test]
fn no_input_to_any_admin_route_causes_a_server_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, operations) = runtime.block_on(async {
        let app = app_with_an_order().await;
        let calls = call_ids(&app, only_order_id(&app).await).await;
        set_call(&app, calls[0], "dead").await;
        set_call(&app, calls[1], "held").await;
        let operations = operations(&document(&app).await, "{id}");
        (app, operations)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let input = (
        prop::sample::select(operations),
        any_id(),
        any_query(),
        any_body(),
    );
    runner
        .run(&input, |((method, path), id, query, body)| {
            runtime.block_on(async {
                let path = path.replace("{id}", &id);
                let response = app
                    .admin_request(method.clone(), &path)
                    .query(&query)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{method} {path}: {e}")))?;
                let status = response.status();
                let text = response.text().await.unwrap();
                prop_assert!(
                    !status.is_server_error(),
                    "{method} {path} {query:?}: {status} {text}"
                );
                if status.is_client_error() {
                    let body: Value = serde_json::from_str(&text)
                        .map_err(|_| TestCaseError::fail(format!("not JSON: {text}")))?;
                    prop_assert!(body["error"].is_string(), "{text}");
                }
                Ok(())
            })
        })
        .unwrap();
}
