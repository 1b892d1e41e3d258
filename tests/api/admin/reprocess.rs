//! Reprocessing: an event that failed or left its order needing attention goes back to the
//! processor; other events cannot.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use uchat_billing::plan::Catalog;
use uchat_billing::processor::Processor;

use super::*;

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
    app.expect_unfinished_calls();
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
    let sale: Vec<(String, Vec<u8>)> = sale()
        .into_iter()
        .enumerate()
        .map(|(n, body)| (format!("event {n}"), body))
        .collect();
    let expected: Vec<QueuedCall> = uchat_billing::dry_run::plan_events(&test_catalog(), &sale)
        .unwrap()
        .into_iter()
        .flat_map(|step| step.effect.calls)
        .map(|call| QueuedCall {
            kind: call.kind.to_string(),
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
    app.expect_failed_events();
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
