//! Reading orders and calls: an order's timeline, ids and list parameters checked, pages
//! that neither skip nor repeat, filters.

use serde_json::json;
use uchat_billing::secret::Secret;
use uchat_billing::stripe::api::StripeApi;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

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
    app.expect_failed_events();
    app.expect_unfinished_calls();
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

#[tokio::test]
async fn an_unknown_query_parameter_is_400_naming_it_and_what_the_route_takes() {
    let app = spawn_app().await;
    for (path, unknown, takes) in [
        (
            "/admin/orders?stauts=dead",
            "stauts",
            "status, email, customer, workspace_id, stripe_id, limit, cursor",
        ),
        (
            "/admin/calls?status=dead&page=2",
            "page",
            "status, limit, cursor",
        ),
        ("/admin/orders/1?verbose=1", "verbose", "none"),
        ("/admin/stats?x=", "x", "none"),
        ("/metrics?format=json", "format", "none"),
    ] {
        let (status, body) = app.admin_get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("unknown query parameter `{unknown}`")),
            "{path}: {error}"
        );
        assert!(error.contains(takes), "{path}: {error}");
    }
    let (status, body) = app
        .admin_post("/admin/calls/1/retry?force=true", &json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Without the token, the answer is still 401: the query is looked at after access.
    let response = app.get("/admin/orders?stauts=dead").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app.admin_get("/admin/calls?status=dead&limit=5").await;
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
async fn an_order_is_found_by_any_stripe_id_that_leads_to_it() {
    let app = spawn_app().await;
    let ids = insert_orders(&app, 3).await;
    sqlx::query(
        "INSERT INTO order_links (stripe_key, order_id)
         VALUES ('sub:sub_2', $1), ('cs:cs_test_2', $1), ('pi:pi_2', $1), ('sub:sub_3', $2)",
    )
    .bind(ids[1])
    .bind(ids[2])
    .execute(&app.db)
    .await
    .unwrap();
    for stripe_id in ["sub_2", "cs_test_2", "pi_2"] {
        let (status, page) = app
            .admin_get(&format!("/admin/orders?stripe_id={stripe_id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["items"][0]["id"], ids[1], "{stripe_id}");
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
    }
    for unknown in ["sub_9", "cus_2", "2"] {
        let (_, page) = app
            .admin_get(&format!("/admin/orders?stripe_id={unknown}"))
            .await;
        assert_eq!(page["items"], json!([]), "{unknown}");
    }
}

#[tokio::test]
async fn calls_are_listed_newest_first_by_status_a_page_at_a_time() {
    let app = app_with_an_order().await;
    let calls = call_ids(&app, only_order_id(&app).await).await;
    set_call(&app, calls[0], "succeeded").await;
    set_call(&app, calls[1], "dead").await;
    app.expect_dead_calls();

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
