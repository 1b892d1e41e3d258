//! `POST /webhooks/stripe` as Stripe sees it: authentic events stored once, anything
//! else refused with a short JSON error and nothing written.

use crate::common;

use common::*;
use serde_json::{json, Value};
use uchat_billing::secret::Secret;
use uchat_billing::stripe::signature;

/// Every sample, both API eras, as the bytes Stripe would post.
fn all_samples() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = EVENT_SAMPLES.iter().map(|name| sample(name)).collect();
    let invoice: Value =
        serde_json::from_slice(&sample("invoice.payment_failed.object.json")).unwrap();
    bodies.push(envelope(
        "evt_basil_invoice_failed",
        "invoice.payment_failed",
        1_750_000_000,
        invoice,
    ));
    let fixtures: Value =
        serde_json::from_slice(&sample("stripe-openapi-fixtures3-subset.json")).unwrap();
    for (resource, event_type) in [
        ("checkout.session", "checkout.session.completed"),
        ("invoice", "invoice.paid"),
        ("subscription", "customer.subscription.updated"),
        ("charge", "charge.refunded"),
        ("refund", "refund.created"),
        ("dispute", "charge.dispute.created"),
    ] {
        let object = fixtures["resources"][resource].clone();
        assert!(object.is_object(), "fixture {resource}");
        bodies.push(envelope(
            &format!("evt_2026_{resource}"),
            event_type,
            1_790_000_000,
            object,
        ));
    }
    bodies
}

#[tokio::test]
async fn every_sample_is_stored_with_its_exact_bytes() {
    let app = spawn_app().await;
    for body in all_samples() {
        let response = app.post_stripe_event(&body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"received": true})
        );

        let sent: Value = serde_json::from_slice(&body).unwrap();
        let (event_type, raw_body, payload): (String, String, Value) = sqlx::query_as(
            "SELECT event_type, raw_body, payload FROM events WHERE stripe_event_id = $1",
        )
        .bind(sent["id"].as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(event_type, sent["type"].as_str().unwrap());
        assert_eq!(raw_body.as_bytes(), &body[..]);
        assert_eq!(payload, sent);
        assert_eq!(app.event_count().await, 1);
        // Some real samples share an event id; start each one from an empty table.
        sqlx::query("DELETE FROM events")
            .execute(&app.db)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn event_types_we_do_not_act_on_are_stored_as_ignored() {
    let app = spawn_app().await;
    let body = envelope(
        "evt_ignored",
        "customer.created",
        now(),
        json!({"id": "cus_1"}),
    );
    assert_eq!(app.post_stripe_event(&body).await.status(), 200);
    let status: String =
        sqlx::query_scalar("SELECT status FROM events WHERE stripe_event_id = 'evt_ignored'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "ignored");

    let body = sample("invoice.paid.json");
    app.post_stripe_event(&body).await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM events WHERE event_type = 'invoice.paid'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "pending");
}

#[tokio::test]
async fn a_redelivered_event_is_stored_once() {
    let app = spawn_app().await;
    let body = sample("invoice.paid.json");
    for _ in 0..2 {
        assert_eq!(app.post_stripe_event(&body).await.status(), 200);
    }
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn twenty_concurrent_copies_are_stored_once() {
    let app = spawn_app().await;
    let body = sample("customer.subscription.updated.json");
    let signature = sign(&body);
    let responses = futures::future::join_all(
        (0..20).map(|_| app.post_webhook(body.clone(), Some(&signature))),
    )
    .await;
    for response in responses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.event_count().await, 1);
}

/// One signature case: what the header is, what the body is, what we expect.
struct Case {
    name: &'static str,
    header: Option<String>,
    body: Vec<u8>,
    status: u16,
}

fn signature_cases(body: &[u8]) -> Vec<Case> {
    let primary = Secret::new(WEBHOOK_SECRET);
    let t = now();
    let v1 = |secret: &Secret, t: i64, body: &[u8]| hex::encode(signature::sign(secret, t, body));
    let good = v1(&primary, t, body);
    let mut changed = body.to_vec();
    let last = changed.len() - 2;
    changed[last] = b' ';
    vec![
        Case {
            name: "valid",
            header: Some(format!("t={t},v1={good}")),
            body: body.to_vec(),
            status: 200,
        },
        Case {
            name: "two v1, only the second valid",
            header: Some(format!("t={t},v1={},v1={good}", "0".repeat(64))),
            body: body.to_vec(),
            status: 200,
        },
        Case {
            name: "wrong secret",
            header: Some(format!(
                "t={t},v1={}",
                v1(&Secret::new("whsec_wrong"), t, body)
            )),
            body: body.to_vec(),
            status: 400,
        },
        Case {
            name: "body changed by one byte",
            header: Some(format!("t={t},v1={good}")),
            body: changed,
            status: 400,
        },
        Case {
            name: "timestamp 301 s old",
            header: Some(format!("t={},v1={}", t - 301, v1(&primary, t - 301, body))),
            body: body.to_vec(),
            status: 400,
        },
        // Not 301: the service's clock moves on while the cases run, and a second
        // passing would bring it within the tolerance (the unit tests pin the edge).
        Case {
            name: "timestamp 310 s in the future",
            header: Some(format!("t={},v1={}", t + 310, v1(&primary, t + 310, body))),
            body: body.to_vec(),
            status: 400,
        },
        Case {
            name: "header missing",
            header: None,
            body: body.to_vec(),
            status: 400,
        },
        Case {
            name: "no t",
            header: Some(format!("v1={good}")),
            body: body.to_vec(),
            status: 400,
        },
        Case {
            name: "no v1",
            header: Some(format!("t={t}")),
            body: body.to_vec(),
            status: 400,
        },
        Case {
            name: "non-numeric t",
            header: Some(format!("t=now,v1={good}")),
            body: body.to_vec(),
            status: 400,
        },
        Case {
            name: "only v0",
            header: Some(format!("t={t},v0={good}")),
            body: body.to_vec(),
            status: 400,
        },
    ]
}

#[tokio::test]
async fn signature_matrix() {
    let app = spawn_app().await;
    let body = sample("invoice.paid.json");
    for case in signature_cases(&body) {
        let before = app.event_count().await;
        let response = app
            .post_webhook(case.body.clone(), case.header.as_deref())
            .await;
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let answer: Value = response.json().await.unwrap();
        if case.status == 200 {
            assert_eq!(answer, json!({"received": true}), "{}", case.name);
            sqlx::query("DELETE FROM events")
                .execute(&app.db)
                .await
                .unwrap();
        } else {
            assert!(
                answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{}: {answer}",
                case.name
            );
            assert_eq!(
                app.event_count().await,
                before,
                "{}: nothing written",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn a_signature_made_with_the_second_secret_is_accepted() {
    let app = spawn_app_with_secrets(&["whsec_old", "whsec_new"]).await;
    let body = sample("invoice.paid.json");
    let header = signature::header_for(&Secret::new("whsec_new"), now(), &body);
    assert_eq!(app.post_webhook(body, Some(&header)).await.status(), 200);
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn authentic_bodies_that_are_not_events_are_refused() {
    let app = spawn_app().await;
    for body in [
        &b"\xff\xfe not utf-8"[..],
        b"not json",
        b"[]",
        br#"{"type":"invoice.paid"}"#,
        br#"{"id":"evt_1"}"#,
    ] {
        let response = app.post_stripe_event(body).await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].is_string());
    }
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_type_that_is_no_stripe_event_type_is_refused_and_never_becomes_a_label() {
    let app = spawn_app().await;
    let long = format!("invoice.{}", "p".repeat(500 * 1024));
    for event_type in [long.as_str(), "Invoice.Paid", "invoice.paid\"} evil{"] {
        let body = envelope("evt_bad_type", event_type, now(), json!({}));
        let response = app.post_stripe_event(&body).await;
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains("`type`"),
            "{answer}"
        );
    }
    assert_eq!(app.event_count().await, 0);

    // An authentic event of a type we do not act on is stored, and counted as `other`.
    let body = envelope("evt_other", "customer.created", now(), json!({}));
    assert_eq!(app.post_stripe_event(&body).await.status(), 200);
    let metrics = app.metrics().await;
    let mut series: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("uchat_billing_webhooks_total{"))
        .collect();
    series.sort_unstable();
    assert_eq!(
        series,
        [
            r#"uchat_billing_webhooks_total{type="other",outcome="stored"} 1"#,
            r#"uchat_billing_webhooks_total{type="unverified",outcome="rejected"} 3"#,
        ]
    );
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413() {
    let app = spawn_app().await;
    let filler = "x".repeat(1024 * 1024);
    let body = envelope(
        "evt_huge",
        "invoice.paid",
        now(),
        json!({ "filler": filler }),
    );
    let response = app.post_stripe_event(&body).await;
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "request body too large");
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn without_a_database_the_webhook_and_readiness_answer_503() {
    let app = spawn_app_without_database().await;
    let response = app.post_stripe_event(&sample("invoice.paid.json")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "database unavailable"
    );
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn health_and_readiness_answer_with_a_database() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}
