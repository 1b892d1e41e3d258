//! Recovering missed Stripe events: what the webhook never delivered is read back from a
//! fake Stripe's event list, stored as intake stores it (marked recovered), applied in
//! Stripe's order and provisioned in the sandbox, exactly once however often it runs.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::fake_stripe::{spawn_with_stripe_and, Account};
use common::story::{self, Buyer, Sub};
use common::*;
use serde_json::{json, Value};
use uchat_billing::backfill::{Backfill, Report};
use uchat_billing::db::backfill::StartedBy;
use uchat_billing::db::stats::PAID_NOT_PROVISIONED;
use uchat_billing::sandbox::{Faults, SandboxHandle};
use uchat_billing::secret::Secret;
use uchat_billing::stripe::api::StripeApi;

fn value(event: &[u8]) -> Value {
    serde_json::from_slice(event).unwrap()
}

/// Ada's story, created over the last hour: a sale of Business, an upgrade to Business
/// Plus with two bots, her first invoice, then a third bot.
fn story_events() -> Vec<Vec<u8>> {
    let t = now() - 3000;
    vec![
        story::subscription_checkout("evt_b1", t),
        story::subscription(
            "evt_b2",
            "customer.subscription.created",
            t + 1,
            &Sub::active(&[("price_business", 1)]),
        ),
        story::invoice(
            "evt_b3",
            "invoice.paid",
            t + 2,
            "subscription_create",
            "price_business",
        ),
        story::subscription(
            "evt_b4",
            "customer.subscription.updated",
            t + 600,
            &Sub::active(&[("price_business_plus", 1), ("price_bot", 2)]),
        ),
        story::subscription(
            "evt_b5",
            "customer.subscription.updated",
            t + 1200,
            &Sub::active(&[("price_business_plus", 1), ("price_bot", 3)]),
        ),
    ]
}

struct World {
    app: TestApp,
    account: Arc<Mutex<Account>>,
    sandbox: SandboxHandle,
}

impl World {
    /// The app delivering to a sandbox, and a Stripe whose account holds `events` (and
    /// `objects`, by path).
    async fn new(events: &[Vec<u8>], objects: &[(&str, Value)]) -> World {
        let (base, sandbox) = spawn_sandbox(Faults::default()).await;
        let delivery = delivery_to(&base);
        let (app, account) =
            spawn_with_stripe_and(objects, move |config| config.delivery = Some(delivery)).await;
        account.lock().unwrap().events = events.iter().map(|e| value(e)).collect();
        World {
            app,
            account,
            sandbox,
        }
    }

    fn backfill(&self) -> Backfill {
        let base = self.account.lock().unwrap().base.clone();
        Backfill::new(
            self.app.db.clone(),
            StripeApi::new(&base, Secret::new("rk_test_fake")),
        )
    }

    /// A backfill of the last two hours, as the command runs it.
    async fn backfill_two_hours(&self) -> Report {
        let since = Utc::now() - chrono::TimeDelta::hours(2);
        self.backfill()
            .run(since, StartedBy::Command)
            .await
            .unwrap()
    }

    async fn settle(&self) {
        self.app.process_events().await;
        self.app.deliver_all().await;
    }

    /// The sandbox's workspaces as a buyer sees them (ids and dates aside).
    fn workspaces(&self) -> Vec<Value> {
        self.sandbox
            .workspaces()
            .iter()
            .map(|w| {
                json!({
                    "owner": w.owner_email, "plan": w.plan, "addons": w.addons,
                    "paused": w.is_paused, "auto_renew": w.auto_renew,
                })
            })
            .collect()
    }

    /// Each order's status and provisioned state, its workspace id aside.
    async fn orders(&self) -> Vec<(String, Value)> {
        let rows: Vec<(String, Value)> =
            sqlx::query_as("SELECT status, provisioned FROM orders ORDER BY id")
                .fetch_all(&self.app.db)
                .await
                .unwrap();
        rows.into_iter()
            .map(|(status, mut provisioned)| {
                provisioned.as_object_mut().unwrap().remove("workspace");
                (status, provisioned)
            })
            .collect()
    }

    async fn recovered_event_ids(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT stripe_event_id FROM events WHERE recovered ORDER BY stripe_event_id",
        )
        .fetch_all(&self.app.db)
        .await
        .unwrap()
    }
}

/// The story's subscription as Stripe has it now: Business Plus with three bots.
fn subscription_now() -> (String, Value) {
    let last = story_events().pop().unwrap();
    (
        format!("/v1/subscriptions/{}", story::SUBSCRIPTION),
        value(&last)["data"]["object"].clone(),
    )
}

#[tokio::test]
async fn events_the_webhook_never_delivered_are_recovered_and_provisioned_exactly_once() {
    let (path, subscription) = subscription_now();
    let world = World::new(&story_events(), &[(&path, subscription)]).await;

    let report = world.backfill_two_hours().await;
    assert_eq!(
        (report.listed, report.stored, report.already_known),
        (5, 5, 0)
    );
    world.settle().await;

    assert_eq!(
        world.workspaces(),
        [json!({
            "owner": story::EMAIL, "plan": "business_plus", "addons": {"bot": 3},
            "paused": false, "auto_renew": true,
        })]
    );
    assert_eq!(
        world.recovered_event_ids().await,
        ["evt_b1", "evt_b2", "evt_b3", "evt_b4", "evt_b5"]
    );
    // One workspace created, once; every call made once.
    let creates = world
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/workspace/create"))
        .count();
    assert_eq!(creates, 1);
    let tries: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM partner_calls")
        .fetch_all(&world.app.db)
        .await
        .unwrap();
    assert!(
        !tries.is_empty() && tries.iter().all(|&n| n == 1),
        "{tries:?}"
    );

    // Stripe was asked only for the types the service acts on, since the time given.
    let account = world.account.lock().unwrap();
    let lists: Vec<&String> = account
        .requests
        .iter()
        .filter(|r| r.starts_with("/v1/events?"))
        .collect();
    assert_eq!(lists.len(), 2, "22 types, at most 20 a request: {lists:?}");
    for list in lists {
        assert!(list.contains("created[gte]="), "{list}");
        assert!(list.contains("types[0]="), "{list}");
    }
}

#[tokio::test]
async fn running_backfill_twice_changes_nothing() {
    let world = World::new(&story_events(), &[]).await;
    world.backfill_two_hours().await;
    world.settle().await;
    let before = (
        world.app.event_count().await,
        world.app.queued_calls().await,
        world.workspaces(),
        world.orders().await,
    );

    let again = world.backfill_two_hours().await;
    assert_eq!((again.listed, again.stored, again.already_known), (5, 0, 5));
    world.settle().await;
    let after = (
        world.app.event_count().await,
        world.app.queued_calls().await,
        world.workspaces(),
        world.orders().await,
    );
    assert_eq!(before, after);

    // The operators' view shows the last run.
    let (status, view) = world.app.admin_get("/admin/backfill").await;
    assert_eq!(status, 200);
    let run = &view["last_run"];
    assert_eq!(run["started_by"], "command");
    assert_eq!(
        (&run["listed"], &run["stored"], &run["already_known"]),
        (&json!(5), &json!(0), &json!(5))
    );
    assert!(
        run["finished_at"].is_string() && run["error"].is_null(),
        "{run}"
    );
}

#[tokio::test]
async fn a_stream_received_partly_by_webhook_ends_as_if_all_came_by_webhook() {
    // No subscription object at Stripe: each event applies its own snapshot, so the
    // order in which they arrive is what is tested.
    let events = story_events();
    let by_webhook = World::new(&events, &[]).await;
    by_webhook.app.post_stripe_events(&events).await;
    by_webhook.settle().await;

    // The sale and the upgrade by webhook, applied first; the rest, older and newer,
    // recovered afterwards.
    let partly = World::new(&events, &[]).await;
    partly
        .app
        .post_stripe_events(&[events[0].clone(), events[3].clone()])
        .await;
    partly.settle().await;
    let report = partly.backfill_two_hours().await;
    assert_eq!(
        (report.listed, report.stored, report.already_known),
        (5, 3, 2)
    );
    partly.settle().await;

    assert_eq!(
        partly.recovered_event_ids().await,
        ["evt_b2", "evt_b3", "evt_b5"]
    );
    assert_eq!(partly.workspaces(), by_webhook.workspaces());
    assert_eq!(partly.orders().await, by_webhook.orders().await);
    assert_eq!(
        partly.workspaces()[0]["addons"],
        json!({"bot": 3}),
        "the newest state"
    );
}

#[tokio::test]
async fn a_failed_listing_stores_nothing_and_is_shown_with_its_error() {
    let world = World::new(&story_events(), &[]).await;
    // A Stripe that cannot be reached: nothing is listed.
    let refused = Backfill::new(
        world.app.db.clone(),
        StripeApi::new("http://127.0.0.1:1", Secret::new("rk_test_fake")),
    );
    let error = refused
        .run(Utc::now(), StartedBy::Command)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("listing Stripe's events"),
        "{error:#}"
    );
    assert_eq!(world.app.event_count().await, 0);
    let (_, view) = world.app.admin_get("/admin/backfill").await;
    assert!(
        view["last_run"]["error"]
            .as_str()
            .unwrap()
            .contains("Stripe API unavailable"),
        "{view}"
    );
}

#[tokio::test]
async fn serve_backfills_by_itself_from_the_newest_stored_event() {
    let events = story_events();
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let (app, account) = spawn_with_stripe_and(&[], move |config| {
        config.delivery = Some(delivery);
        config.background_work = true;
        config.backfill_every = Some(Duration::from_millis(200));
    })
    .await;
    account.lock().unwrap().events = events.iter().map(|e| value(e)).collect();
    // The webhook brings only the last event; the backfill reaches back an hour before it.
    app.post_stripe_events(&events[4..]).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.event_count().await < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "not recovered in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until_all_delivered(&app.db, Duration::from_secs(30)).await;
    let workspaces = sandbox.workspaces();
    assert_eq!(workspaces.len(), 1);
    assert_eq!(workspaces[0].plan, "business_plus");

    let metrics = app
        .admin_request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("uchat_billing_events_recovered_total 4\n"),
        "{metrics}"
    );
    let (_, view) = app.admin_get("/admin/backfill").await;
    assert_eq!(view["last_run"]["started_by"], "serve");
    let since = chrono::DateTime::parse_from_rfc3339(view["last_run"]["since"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let newest = value(&events[4])["created"].as_i64().unwrap();
    assert_eq!(since, newest - 3600, "the newest stored event less an hour");
}

#[tokio::test]
async fn the_command_recovers_and_says_how_many() {
    let world = World::new(&story_events(), &[]).await;
    world.app.post_stripe_events(&story_events()[..2]).await;
    let base = world.account.lock().unwrap().base.clone();
    let url = world.app.database.as_ref().unwrap().url.clone();
    let output = tokio::task::spawn_blocking(move || {
        crate::cli::command()
            .args(["backfill", "--since", "2h"])
            .env("DATABASE_URL", url)
            .env("STRIPE_API_KEY", "rk_test_fake")
            .env("STRIPE_API_BASE", base)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(": 5 listed, 3 recovered (stored now), 2 already known"),
        "{stdout}"
    );
    world.settle().await;
    assert_eq!(world.workspaces().len(), 1);
}

#[test]
fn the_command_needs_a_stripe_key_and_a_readable_since() {
    let output = crate::cli::command()
        .args(["backfill", "--since", "2h"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STRIPE_API_KEY is required"), "{stderr}");

    let output = crate::cli::command()
        .args(["backfill", "--since", "last tuesday"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("neither a time"), "{stderr}");
}

#[tokio::test]
async fn orders_paid_without_a_workspace_for_15_minutes_are_counted_through_an_index() {
    // No partner: the sale is planned but never delivered.
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    app.post_stripe_events(&story::subscription_sale(
        &Buyer::story(),
        "evt_p",
        now(),
        &[("price_business", 1)],
    ))
    .await;
    app.process_events().await;
    let gauge = || async {
        let text = app
            .admin_request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("uchat_billing_paid_not_provisioned "))
            .unwrap_or_else(|| panic!("no gauge in {text}"))
            .to_owned()
    };
    assert_eq!(gauge().await, "0", "paid just now");
    let set = |sql: &'static str| async { sqlx::query(sql).execute(&app.db).await.unwrap() };
    set("UPDATE orders SET paid_at = now() - interval '16 minutes'").await;
    assert_eq!(gauge().await, "1");
    set("UPDATE orders SET workspace_id = 4242").await;
    assert_eq!(gauge().await, "0", "provisioned");

    // Among 20,000 provisioned orders, the count reads only the index of those waiting.
    set("INSERT INTO orders (status, workspace_id, paid_at)
         SELECT 'active', n, now() - interval '1 day' FROM generate_series(1, 20000) n")
    .await;
    set("ANALYZE orders").await;
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {PAID_NOT_PROVISIONED}"))
        .bind(900.0_f64)
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        plan.iter()
            .any(|line| line.contains("orders_awaiting_workspace")),
        "{plan:#?}"
    );
}
