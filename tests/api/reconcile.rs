//! Reconciliation against the UChat sandbox and a fake Stripe: a workspace changed by
//! hand is drift, and a repair puts it back through the queue, never by a direct call.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use uchat_billing::partner::{Method, PartnerClient};
use uchat_billing::sandbox::{Faults, SandboxHandle};
use uchat_billing::secret::Secret;

use crate::common;
use common::fake_stripe::spawn_with_stripe_and;
use common::story::{self, Buyer, Sub};
use common::*;

/// Ada's plan with one bot add-on, delivered: the order's id and the workspace's.
async fn provisioned(app: &TestApp, sandbox: &SandboxHandle) -> (i64, u64) {
    let items = [("price_business", 1), ("price_bot", 1)];
    app.run_events(&story::story_sale(&items)).await;
    let order: i64 = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    (order, sandbox.workspaces()[0].id)
}

async fn reconcile(app: &TestApp, request: Value) -> Value {
    let (status, report) = app.admin_post("/admin/reconcile", &request).await;
    assert_eq!(status, 200, "{report}");
    report
}

fn drifts(report: &Value) -> Vec<(String, Value, Value, String)> {
    report["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_owned(),
                d["expected"].clone(),
                d["actual"].clone(),
                d["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn drift_gauge(app: &TestApp) -> String {
    let line = app.metric_line("uchat_billing_orders_in_drift").await;
    line.expect("the drift gauge is always there")
}

#[tokio::test]
async fn a_workspace_changed_by_hand_is_drift_and_repair_puts_it_back_through_the_queue() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let app = spawn_app_delivering_to(&base).await;
    let (order, workspace) = provisioned(&app, &sandbox).await;
    assert_eq!(reconcile(&app, json!({})).await["orders_in_drift"], 0);
    assert_eq!(drift_gauge(&app).await, "uchat_billing_orders_in_drift 0");

    assert!(sandbox.edit_workspace(workspace, |w| {
        w.plan = "free".into();
        w.is_paused = true;
        w.addons.clear();
    }));
    let report = reconcile(&app, json!({})).await;
    assert_eq!(
        drifts(&report),
        [
            (
                "plan".into(),
                json!("business"),
                json!("free"),
                "uchat".into()
            ),
            ("paused".into(), json!(false), json!(true), "uchat".into()),
            ("addon:bot".into(), json!(1), json!(0), "uchat".into()),
        ]
    );
    assert!(report["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["order"] == order));
    assert_eq!(drift_gauge(&app).await, "uchat_billing_orders_in_drift 1");
    let (status, last) = app.admin_get("/admin/reconcile").await;
    assert_eq!((status, &last), (reqwest::StatusCode::OK, &report));

    let requests_before = sandbox.requests().len();
    let report = reconcile(&app, json!({ "order": order, "repair": true })).await;
    assert_eq!(
        report["repaired"][order.to_string()],
        json!(["change-plan", "add-addon", "active"])
    );
    let writes: Vec<String> = sandbox.requests()[requests_before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.path.clone())
        .collect();
    assert!(
        writes.is_empty(),
        "a repair sends nothing itself: {writes:?}"
    );
    let queued: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT kind, status, event_id FROM partner_calls WHERE order_id = $1 AND event_id IS NULL ORDER BY position",
    )
    .bind(order)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let kinds: Vec<&str> = queued.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["change-plan", "add-addon", "active"]);
    assert!(queued.iter().all(|(_, status, _)| status == "pending"));

    app.deliver_all().await;
    let back = sandbox.workspace(workspace).unwrap();
    assert_eq!(
        (
            back.plan.as_str(),
            back.is_paused,
            back.addons.get("bot").copied()
        ),
        ("business", false, Some(1))
    );
    assert_eq!(reconcile(&app, json!({})).await["orders_in_drift"], 0);
    assert_eq!(drift_gauge(&app).await, "uchat_billing_orders_in_drift 0");
}

#[tokio::test]
async fn calls_in_flight_are_not_drift_and_a_plan_changed_by_hand_is_repaired() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let app = spawn_app_delivering_to(&base).await;
    let items = [("price_business", 1)];
    app.post_stripe_events(&story::story_sale(&items)).await;
    app.process_events().await;
    let report = reconcile(&app, json!({})).await;
    assert_eq!(
        (
            report["orders_in_flight"].clone(),
            report["orders_in_drift"].clone()
        ),
        (json!(1), json!(0))
    );

    app.deliver_all().await;
    let workspace = sandbox.workspaces()[0].id;
    sandbox.edit_workspace(workspace, |w| w.plan = "business_plus".into());
    let report = reconcile(&app, json!({ "repair": true })).await;
    assert_eq!(report["orders_in_drift"], 1, "{report}");
    app.deliver_all().await;
    assert_eq!(sandbox.workspace(workspace).unwrap().plan, "business");
}

/// The subscription object of a story event, as Stripe's API would answer it.
fn subscription_object(sub: &Sub) -> Value {
    let event = story::subscription_of(
        &Buyer::story(),
        "evt_x",
        "customer.subscription.updated",
        1,
        sub,
    );
    serde_json::from_slice::<Value>(&event).unwrap()["data"]["object"].take()
}

#[tokio::test]
async fn stripe_drift_is_reported_from_the_subscription_as_stripe_has_it() {
    let (base, _sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let key = format!("/v1/subscriptions/{}", Buyer::story().subscription);
    let sold = Sub::active(&[("price_business", 1)]);
    let (app, account) =
        spawn_with_stripe_and(&[(&key, subscription_object(&sold))], move |config| {
            config.delivery = Some(delivery)
        })
        .await;
    app.run_events(&story::story_sale(&sold.items)).await;
    assert_eq!(reconcile(&app, json!({})).await["orders_in_drift"], 0);

    let changed = Sub::active(&[("price_business", 2)]).with_status("past_due");
    account
        .lock()
        .unwrap()
        .objects
        .insert(key, subscription_object(&changed));
    let stripe: Vec<(String, Value, Value)> = drifts(&reconcile(&app, json!({})).await)
        .into_iter()
        .filter(|d| d.3 == "stripe")
        .map(|d| (d.0, d.1, d.2))
        .collect();
    assert_eq!(
        stripe,
        [
            ("status".to_owned(), json!("active"), json!("past_due")),
            (
                "items".to_owned(),
                json!({"price_business": 1}),
                json!({"price_business": 2})
            ),
        ]
    );
}

#[tokio::test]
async fn an_unknown_order_is_404_and_a_bad_request_400() {
    let (base, _sandbox) = spawn_sandbox(Faults::default()).await;
    let app = spawn_app_delivering_to(&base).await;
    let (status, _) = app
        .admin_post("/admin/reconcile", &json!({ "order": 999 }))
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .admin_post("/admin/reconcile", &json!({ "ordr": 1 }))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.admin_get("/admin/reconcile").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_reconcile_command_reports_drift_and_repair_queues_the_calls() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let app = spawn_app_delivering_to(&base).await;
    let (order, workspace) = provisioned(&app, &sandbox).await;
    sandbox.edit_workspace(workspace, |w| w.auto_renew = false);
    let database_url = app.database.as_ref().unwrap().url.clone();
    let catalog = fixture_path("catalog.toml");
    let output = tokio::task::spawn_blocking(move || {
        crate::cli::command()
            .args(["reconcile", "--repair", "--json"])
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("CATALOG_PATH", catalog)
            .env("UCHAT_API_BASE", base)
            .env("UCHAT_API_TOKEN", PARTNER_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit 1: an order is in drift"
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        drifts(&report),
        [(
            "auto_renew".into(),
            json!(true),
            json!(false),
            "uchat".into()
        )]
    );
    assert_eq!(
        report["repaired"][order.to_string()],
        json!(["enable-auto-renew"])
    );
    app.deliver_all().await;
    assert!(sandbox.workspace(workspace).unwrap().auto_renew);
}

#[tokio::test]
async fn thousands_of_live_orders_are_checked_page_by_page_and_drift_is_found_where_it_is() {
    const WORKSPACES: usize = 2_500;
    const WITH_ADDON: usize = 500;
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(move |config| {
        config.delivery = Some(delivery);
        config.reconcile.reads_per_second = 100_000.0;
    })
    .await;
    let partner =
        PartnerClient::new(&base, Secret::new(PARTNER_TOKEN), Duration::from_secs(5)).unwrap();
    stream::iter(0..WORKSPACES)
        .for_each_concurrent(8, |n| {
            let owner = json!({
                "name": format!("Owner {n}"),
                "email": format!("owner{n}@example.com"),
                "password": "Pass-word-1",
                "team_name": format!("Team {n}"),
                "require_email_verification": "no",
            });
            let partner = &partner;
            async move {
                partner
                    .send(Method::POST, "/partner/workspace/create", Some(&owner))
                    .await
                    .unwrap();
            }
        })
        .await;
    // Each workspace sold the business plan by one order; the first 500 also a bot add-on
    // by an order 2,500 ids later, pages apart from the plan's.
    let workspaces: Vec<i64> = sandbox.workspaces().iter().map(|w| w.id as i64).collect();
    for (n, id) in workspaces.iter().enumerate() {
        sandbox.edit_workspace(*id as u64, |w| {
            w.plan = "business".into();
            if n < WITH_ADDON {
                w.addons.insert("bot".into(), 1);
            }
        });
    }
    for (provisioned, on) in [
        (
            json!({ "sells_plan": true, "plan": "business", "auto_renew": true }),
            &workspaces[..],
        ),
        (json!({ "addons": { "bot": 1 } }), &workspaces[..WITH_ADDON]),
    ] {
        sqlx::query(
            "INSERT INTO orders (status, workspace_id, provisioned)
             SELECT 'active', w, $1 FROM unnest($2::bigint[]) WITH ORDINALITY AS t(w, n) ORDER BY n",
        )
        .bind(provisioned)
        .bind(on)
        .execute(&app.db)
        .await
        .unwrap();
    }
    let order_on = |workspace: i64, sells_plan: bool| {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM orders WHERE workspace_id = $1
               AND (provisioned ? 'sells_plan') = $2",
        )
        .bind(workspace)
        .bind(sells_plan)
        .fetch_one(&app.db)
    };
    let plan_order = order_on(workspaces[1_234], true).await.unwrap();
    let addon_order = order_on(workspaces[7], false).await.unwrap();

    sandbox.edit_workspace(workspaces[1_234] as u64, |w| w.plan = "free".into());
    sandbox.edit_workspace(workspaces[7] as u64, |w| w.addons.clear());
    let reads_before = sandbox.requests().len();
    let report = reconcile(&app, json!({})).await;

    assert_eq!(
        (&report["orders_checked"], &report["errors"]),
        (&json!(WORKSPACES + WITH_ADDON), &json!([]))
    );
    let mut found = drifts(&report);
    found.sort_by_key(|d| d.0.clone());
    assert_eq!(
        found,
        [
            ("addon:bot".into(), json!(1), json!(0), "uchat".into()),
            (
                "plan".into(),
                json!("business"),
                json!("free"),
                "uchat".into()
            ),
        ]
    );
    let mut drifting: Vec<i64> = report["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["order"].as_i64().unwrap())
        .collect();
    drifting.sort_unstable();
    assert_eq!(drifting, [plan_order, addon_order]);
    let mut read: Vec<String> = sandbox.requests()[reads_before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    read.sort_unstable();
    read.dedup();
    assert_eq!(
        read.len(),
        sandbox.requests().len() - reads_before,
        "each workspace read once"
    );
    assert_eq!(read.len(), WORKSPACES);
}
