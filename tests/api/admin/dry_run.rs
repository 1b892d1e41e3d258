//! Dry runs: the calls an event would queue against its order as it stands, nothing written.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

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

#[tokio::test]
async fn a_dry_run_plans_against_the_orders_current_state_and_writes_nothing() {
    let app = spawn_app().await;
    app.expect_unfinished_calls();
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
