//! Group commit at intake: webhooks arriving together share one INSERT and one commit,
//! and each is still answered only once its own row is stored, once.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::service::{serve_env, ServiceProcess};
use common::story::{self, Buyer};
use common::*;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// Posts every body, `concurrency` at a time; the statuses in the bodies' order.
async fn post_all(app: &TestApp, bodies: &[Vec<u8>], concurrency: usize) -> Vec<u16> {
    stream::iter(bodies)
        .map(|body| async move { app.post_stripe_event(body).await.status().as_u16() })
        .buffered(concurrency)
        .collect()
        .await
}

/// How many transactions wrote the stored events (a row's `xmin` is its writer's).
async fn writing_transactions(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// A transaction holding a lock every INSERT into `events` waits for, until it ends.
async fn block_intake(app: &TestApp) -> PgConnection {
    block_inserts(&app.database.as_ref().expect("a database").url).await
}

async fn block_inserts(url: &str) -> PgConnection {
    let mut blocker = PgConnection::connect(url).await.unwrap();
    blocker
        .execute("BEGIN; LOCK TABLE events IN SHARE MODE")
        .await
        .unwrap();
    blocker
}

/// Waits until an INSERT into `events` waits for the blocker's lock, then a little more,
/// so that every webhook posted meanwhile has reached intake.
async fn wait_until_intake_waits(app: &TestApp) {
    wait_until_an_insert_waits(&app.db).await
}

async fn wait_until_an_insert_waits(db: &PgPool) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE 'INSERT INTO events%'",
        )
        .fetch_one(db)
        .await
        .unwrap();
        if waiting > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no INSERT ever waited for the blocker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_webhooks_at_concurrency_32_are_each_stored_once_and_processed() {
    const EVENTS: usize = 2000;
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    let created = now() - EVENTS as i64;
    let bodies: Vec<Vec<u8>> = (0..EVENTS)
        .map(|n| {
            let id = format!("evt_group_{n}");
            story::subscription_checkout_of(&Buyer::numbered(n), &id, created + n as i64)
        })
        .collect();

    let statuses = post_all(&app, &bodies, 32).await;
    assert!(statuses.iter().all(|&status| status == 200), "{statuses:?}");

    // Each row holds its own event: the batch's columns did not slip against each other.
    let stored: Vec<(String, String, Value, String, Vec<String>)> =
        sqlx::query_as("SELECT stripe_event_id, raw_body, payload, status, order_keys FROM events")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(stored.len(), EVENTS);
    let posted: HashMap<String, &Vec<u8>> = bodies
        .iter()
        .map(|body| {
            let event: Value = serde_json::from_slice(body).unwrap();
            (event["id"].as_str().unwrap().to_owned(), body)
        })
        .collect();
    for (id, raw_body, payload, status, order_keys) in &stored {
        let body = posted[id];
        assert_eq!(raw_body.as_bytes(), &body[..], "{id}");
        assert_eq!(payload, &serde_json::from_slice::<Value>(body).unwrap());
        assert_eq!(status, "pending");
        let n = id.trim_start_matches("evt_group_");
        assert!(
            order_keys.contains(&format!("sub:sub_buyer{n}")),
            "{id}: {order_keys:?}"
        );
    }
    let transactions = writing_transactions(&app).await;
    // About 3 events a commit in a debug build on two busy cores; one each without
    // batching. (`webhooks_waiting_together_share_a_commit` pins it down exactly.)
    assert!(
        transactions <= EVENTS as i64 * 3 / 4,
        "{transactions} transactions stored {EVENTS} events: few shared a commit"
    );

    let drains = (0..4).map(|_| app.processor.drain());
    let handled: usize = futures::future::try_join_all(drains)
        .await
        .unwrap()
        .into_iter()
        .sum();
    assert_eq!(handled, EVENTS);
    let processed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE status = 'processed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(processed, EVENTS as i64);
}

#[tokio::test]
async fn copies_of_one_event_posted_in_one_burst_are_stored_and_applied_once() {
    const COPIES: usize = 48;
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    let [checkout, subscription] = &story::story_sale(&[("price_business", 1)])[..] else {
        unreachable!("a sale is two events")
    };
    assert_eq!(app.post_stripe_event(checkout).await.status(), 200);
    let signature = sign(subscription);
    let responses = futures::future::join_all(
        (0..COPIES).map(|_| app.post_webhook(subscription.clone(), Some(&signature))),
    )
    .await;
    for response in responses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.event_count().await, 2);
    let metrics = app.metrics().await;
    // The series come in the order they were first recorded: either may be first.
    let mut outcomes: Vec<&str> = metrics
        .lines()
        .filter(|line| {
            line.starts_with(r#"uchat_billing_webhooks_total{type="customer.subscription.created""#)
        })
        .collect();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [
            &format!(
                r#"uchat_billing_webhooks_total{{type="customer.subscription.created",outcome="duplicate"}} {}"#,
                COPIES - 1
            ),
            r#"uchat_billing_webhooks_total{type="customer.subscription.created",outcome="stored"} 1"#,
        ]
    );

    assert_eq!(app.processor.drain().await.unwrap(), 2);
    let calls = app.queued_calls().await;
    assert!(!calls.is_empty(), "the sale plans its calls");
    let mut kinds: Vec<&str> = calls.iter().map(|call| call.kind.as_str()).collect();
    kinds.dedup();
    assert_eq!(kinds.len(), calls.len(), "a call planned twice: {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_waiting_together_share_a_commit() {
    const EVENTS: usize = 32;
    let app = spawn_app().await;
    let bodies: Vec<Vec<u8>> = (0..EVENTS)
        .map(|n| {
            envelope(
                &format!("evt_shared_{n}"),
                "customer.created",
                now(),
                json!({}),
            )
        })
        .collect();

    let blocker = block_intake(&app).await;
    let (statuses, ()) = tokio::join!(post_all(&app, &bodies, EVENTS), async {
        wait_until_intake_waits(&app).await;
        blocker.close().await.unwrap();
    });
    assert_eq!(statuses, [200; EVENTS]);
    assert_eq!(app.event_count().await, EVENTS as i64);
    let transactions = writing_transactions(&app).await;
    assert!(
        transactions <= EVENTS as i64 / 2,
        "{transactions} transactions stored {EVENTS} webhooks that waited together"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_postgres_refuses_fails_only_its_own_webhook() {
    const GOOD: usize = 31;
    let app = spawn_app().await;
    let good: Vec<Vec<u8>> = (0..GOOD)
        .map(|n| {
            envelope(
                &format!("evt_good_{n}"),
                "customer.created",
                now(),
                json!({}),
            )
        })
        .collect();
    // Valid JSON, and authentic, but a number jsonb cannot hold.
    let bad = br#"{"id":"evt_bad","object":"event","type":"customer.created","created":1,"livemode":false,"data":{"object":{"balance":1e-20000}}}"#.to_vec();
    assert_eq!(
        app.post_stripe_event(&bad).await.status(),
        400,
        "alone, Postgres refuses the row"
    );

    // The good ones take the flushes and queue up behind them, the bad one last: it is
    // flushed in one batch with good ones.
    let blocker = block_intake(&app).await;
    let (good_statuses, bad_answer) = tokio::join!(post_all(&app, &good, GOOD), async {
        wait_until_intake_waits(&app).await;
        let (bad_answer, ()) = tokio::join!(app.post_stripe_event(&bad), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            blocker.close().await.unwrap();
        });
        bad_answer
    });

    assert_eq!(bad_answer.status(), 400);
    let answer: Value = bad_answer.json().await.unwrap();
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|error| error.contains("cannot store")),
        "{answer}"
    );
    assert_eq!(good_statuses, [200; GOOD]);
    assert_eq!(app.event_count().await, GOOD as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_webhooks_in_hand_are_stored_before_the_service_exits() {
    const EVENTS: usize = 16;
    let database = fresh_database().await;
    let mut service = ServiceProcess::start(&serve_env(&database.url)).await;
    let db = uchat_billing::db::pool(&database.url, 1).unwrap();
    let client = reqwest::Client::new();
    let post = |n: usize| {
        let body = envelope(
            &format!("evt_stop_{n}"),
            "customer.created",
            now(),
            json!({}),
        );
        let request = client
            .post(format!("{}/webhooks/stripe", service.address))
            .header("stripe-signature", sign(&body))
            .body(body);
        async move {
            request
                .send()
                .await
                .map(|response| response.status().as_u16())
        }
    };

    let blocker = block_inserts(&database.url).await;
    let (statuses, ()) = tokio::join!(futures::future::join_all((0..EVENTS).map(post)), async {
        wait_until_an_insert_waits(&db).await;
        service.terminate();
        tokio::time::sleep(Duration::from_millis(300)).await;
        blocker.close().await.unwrap();
    });

    let statuses: Vec<u16> = statuses.into_iter().map(Result::unwrap).collect();
    assert_eq!(statuses, [200; EVENTS], "{}", service.log_tail());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, EVENTS as i64);
    let status = service.exit_within(Duration::from_secs(10)).await;
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "{}",
        service.log_tail()
    );
}
