//! Stats and metrics: the backlog in JSON and in Prometheus' format.

use std::collections::BTreeMap;

use serde_json::json;
use uchat_billing::db::stats;

use super::*;

#[tokio::test]
async fn stats_count_orders_and_calls_and_show_the_backlog() {
    let app = app_with_an_order().await;
    let calls = call_ids(&app, only_order_id(&app).await).await;
    set_call(&app, calls[0], "dead").await;
    app.expect_dead_calls();
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
    app.expect_dead_calls();

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

/// Orders and calls by status, counted from the tables themselves.
async fn counted(app: &TestApp) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let count = |table: &'static str| async move {
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT status, count(*) FROM {table} GROUP BY status"
        ))
        .fetch_all(&app.db)
        .await
        .unwrap();
        rows.into_iter().collect::<BTreeMap<_, _>>()
    };
    (count("orders").await, count("partner_calls").await)
}

async fn kept(app: &TestApp) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let counts = stats::status_counts(&app.db).await.unwrap();
    (counts.orders, counts.calls)
}

#[tokio::test]
async fn the_kept_counts_follow_every_change_and_fold_without_changing() {
    let app = app_with_an_order().await;
    let order_id = only_order_id(&app).await;
    let calls = call_ids(&app, order_id).await;
    set_call(&app, calls[0], "dead").await;
    app.expect_dead_calls();
    set_call(&app, calls[1], "held").await;
    set_call(&app, calls[1], "pending").await;
    sqlx::query("DELETE FROM partner_calls WHERE id = $1")
        .bind(calls[3])
        .execute(&app.db)
        .await
        .unwrap();
    let second = app
        .queue_calls(None, "b@example.com", &[("pause", json!(null))])
        .await;
    sqlx::query("UPDATE orders SET status = 'canceled' WHERE id = $1")
        .bind(second)
        .execute(&app.db)
        .await
        .unwrap();

    let expected = counted(&app).await;
    assert_eq!(
        expected.1,
        BTreeMap::from([("dead".into(), 1), ("pending".into(), 3)])
    );
    assert_eq!(kept(&app).await, expected);
    stats::fold(&app.db).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM status_counts")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 4, "one row per table and status once folded");
    assert_eq!(kept(&app).await, expected);

    app.reset().await;
    assert_eq!(kept(&app).await, (BTreeMap::new(), BTreeMap::new()));
}
