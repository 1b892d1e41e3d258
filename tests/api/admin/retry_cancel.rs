//! Retry and cancel: allowed only from their states, once however many operators click,
//! and the order unblocked when nothing is dead or held any more.

use serde_json::json;

use super::*;

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

#[tokio::test]
async fn a_canceled_call_leaves_the_provisioned_state_and_a_note_says_what_was_skipped() {
    let app = app_with_an_order().await;
    let order_id = only_order_id(&app).await;
    let calls = call_ids(&app, order_id).await;
    // Create, business, business plus delivered; the two bots held for lack of credit.
    for &call in &calls[..3] {
        set_call(&app, call, "succeeded").await;
    }
    let bots = calls[3];
    set_call(&app, bots, "held").await;
    block_order(&app, order_id).await;
    let (_, before) = app.admin_get(&format!("/admin/orders/{order_id}")).await;
    assert_eq!(before["order"]["provisioned"]["addons"], json!({"bot": 2}));
    assert_eq!(before["order"]["notes"], json!([]));

    let (status, body) = app
        .admin_post(&format!("/admin/calls/{bots}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, after) = app.admin_get(&format!("/admin/orders/{order_id}")).await;
    let order = &after["order"];
    assert_eq!(order["status"], "active");
    assert_eq!(
        order["provisioned"]["addons"],
        json!({}),
        "UChat got no bots"
    );
    assert_eq!(order["provisioned"]["plan"], "business_plus");
    let notes = order["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = notes[0].as_str().unwrap();
    assert!(
        note.starts_with(&format!(
            r#"call {bots} (add-addon {{"addon":"bot","qty":2}}) was canceled by an operator"#
        )),
        "{note}"
    );
}
