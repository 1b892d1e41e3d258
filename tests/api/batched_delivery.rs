//! Delivery under load: calls are claimed and their tries recorded many to a
//! transaction, yet every call runs once, in its order's sequence, with every try kept.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;
use uchat_billing::db::calls::{self, AttemptRecord, FinishedTry, Verdict};
use uchat_billing::sandbox::Faults;

const ORDERS: i64 = 1000;
const CALLS_PER_ORDER: i64 = 3;

/// Transactions committed in the app's database so far. The statistics reach the view
/// a moment after a connection goes idle.
async fn commits(db: &PgPool) -> i64 {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// Workspaces made at the sandbox directly: their ids, in order.
async fn workspaces_at(base: &str, count: i64) -> Vec<i64> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..count {
        let created: serde_json::Value = client
            .post(format!("{base}/partner/workspace/create"))
            .bearer_auth(PARTNER_TOKEN)
            .json(
                &json!({"email": format!("buyer{n}@example.com"), "name": "Buyer",
                          "password": "secret-secret", "team_name": "Team",
                          "require_email_verification": "no"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(created["data"]["id"].as_i64().unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_calls_are_delivered_once_each_in_order_sharing_commits() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let mut delivery = delivery_to(&base);
    delivery.settings.concurrency = 32;
    let app = spawn_app_with(move |config| config.delivery = Some(delivery)).await;
    let workspaces = workspaces_at(&base, ORDERS).await;
    // Each order: three plan changes that must reach UChat in this order.
    sqlx::query(
        "WITH created AS (
             INSERT INTO orders (email, workspace_id, status)
             SELECT 'buyer' || n || '@example.com', workspace_id, 'active'
             FROM unnest($1::bigint[]) WITH ORDINALITY AS w(workspace_id, n)
             RETURNING id
         )
         INSERT INTO partner_calls (order_id, position, kind, body)
         SELECT created.id, plan.position, 'change-plan', jsonb_build_object('plan', plan.name, 'auto_renew', 'yes')
         FROM created,
              (VALUES (1, 'business'), (2, 'business_plus'), (3, 'business_large')) AS plan(position, name)
         ORDER BY created.id, plan.position",
    )
    .bind(&workspaces)
    .execute(&app.db)
    .await
    .unwrap();
    let calls = ORDERS * CALLS_PER_ORDER;

    let commits_before = commits(&app.db).await;
    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(app.worker().clone().run(stopped));
    wait_until_all_delivered(&app.db, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    stop.send(true).unwrap();
    worker.await.unwrap();
    let committed = commits(&app.db).await - commits_before;
    println!(
        "{calls} calls in {elapsed:.2?}: {:.0} calls/s, {committed} commits",
        calls as f64 / elapsed.as_secs_f64()
    );

    let tries: Vec<(String, i32)> = sqlx::query_as(
        "SELECT a.outcome, c.attempts FROM partner_calls c JOIN attempts a ON a.call_id = c.id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(tries.len() as i64, calls, "one recorded try per call");
    assert!(tries
        .iter()
        .all(|(outcome, attempts)| outcome == "succeeded" && *attempts == 1));

    // The sandbox saw each workspace's plan changes once each, in order.
    let mut plans: HashMap<String, Vec<String>> = HashMap::new();
    for request in sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/change-plan"))
    {
        plans
            .entry(request.path.clone())
            .or_default()
            .push(request.json()["plan"].as_str().unwrap().to_owned());
    }
    assert_eq!(plans.len() as i64, ORDERS);
    assert!(
        plans
            .values()
            .all(|p| p == &["business", "business_plus", "business_large"]),
        "plan changes out of order or repeated"
    );

    // One commit per call would be 3,000 for the records alone, and as many claims.
    assert!(
        committed < calls / 3,
        "{committed} commits for {calls} calls: tries are not recorded in batches"
    );
}

fn succeeded(workspace_id: Option<i64>) -> Verdict {
    Verdict::Succeeded {
        workspace_id,
        kind: None,
        already_applied: false,
    }
}

fn try_of(call: &calls::ClaimedCall, verdict: Verdict) -> FinishedTry {
    FinishedTry {
        call: call.clone(),
        attempt: AttemptRecord {
            started_at: chrono::Utc::now(),
            duration: Duration::from_millis(5),
            http_status: Some(200),
            response_excerpt: None,
            error: None,
        },
        verdict,
    }
}

#[tokio::test]
async fn a_superseded_try_recorded_with_others_moves_nothing() {
    let app = spawn_app().await;
    let create = json!({"email": "ada@example.com", "name": "Ada", "team_name": "Ada's team", "require_email_verification": "no"});
    let late = app
        .queue_calls(None, "ada@example.com", &[("create", create.clone())])
        .await;
    let other = app
        .queue_calls(None, "bob@example.com", &[("create", create)])
        .await;
    app.expect_unfinished_calls();
    let lease = Duration::from_secs(60);
    let first = calls::claim(&app.db, 2, lease).await.unwrap();
    assert_eq!(first.len(), 2);
    let stale = first.iter().find(|c| c.order_id == late).unwrap().clone();
    let valid = first.iter().find(|c| c.order_id == other).unwrap().clone();
    // The late try's worker stalls past its lease: the call is taken back and claimed anew.
    sqlx::query(
        "UPDATE partner_calls SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(stale.id)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(calls::reclaim_expired(&app.db).await.unwrap(), 1);
    let newer = calls::claim(&app.db, 2, lease).await.unwrap().remove(0);
    assert_eq!(newer.id, stale.id);

    // The stale try claims a workspace; the newer try must retry: only the newer counts.
    let batch = [
        try_of(&stale, succeeded(Some(111))),
        try_of(
            &newer,
            Verdict::Retry {
                delay: Duration::from_secs(30),
            },
        ),
        try_of(&valid, succeeded(Some(222))),
    ];
    let mut tx = app.db.begin().await.unwrap();
    let moved = calls::record(&mut tx, &batch).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(moved, [false, true, true]);

    assert_eq!(
        app.call_states(late).await,
        [("create".into(), "pending".into(), 2)]
    );
    assert_eq!(
        app.attempt_outcomes(late).await,
        [
            ("lease_expired".into(), None),
            ("superseded".into(), Some(200)),
            ("retry".into(), Some(200)),
        ]
    );
    assert_eq!(
        app.call_states(other).await,
        [("create".into(), "succeeded".into(), 1)]
    );
    let workspaces: Vec<(i64, Option<i64>)> =
        sqlx::query_as("SELECT id, workspace_id FROM orders ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(workspaces, [(late, None), (other, Some(222))]);
}

#[tokio::test]
async fn a_stopping_worker_records_the_tries_it_finished_before_it_returns() {
    let (base, sandbox) = spawn_sandbox(Faults {
        latency_ms: 300,
        ..Faults::default()
    })
    .await;
    let mut delivery = delivery_with_timeout(&base, Duration::from_secs(2));
    delivery.settings.concurrency = 16;
    let app = spawn_app_with(move |config| config.delivery = Some(delivery)).await;
    let mut orders = Vec::new();
    for n in 0..10 {
        let email = format!("buyer{n}@example.com");
        let create = json!({"email": email, "name": "Buyer", "team_name": email, "require_email_verification": "no"});
        orders.push(app.queue_calls(None, &email, &[("create", create)]).await);
    }
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(app.worker().clone().run(stopped));
    // Stop while every create is at the partner.
    let deadline = Instant::now() + Duration::from_secs(10);
    let creates = || {
        sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/partner/workspace/create")
            .count()
    };
    while creates() < orders.len() {
        assert!(
            Instant::now() < deadline,
            "the creates never reached the partner"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    worker.await.unwrap();
    for order in orders {
        assert_eq!(
            app.call_states(order).await,
            [("create".into(), "succeeded".into(), 1)]
        );
        assert_eq!(
            app.attempt_outcomes(order).await,
            [("succeeded".into(), Some(200))]
        );
    }
}
