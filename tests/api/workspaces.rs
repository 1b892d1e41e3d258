//! Who owns which workspace, end to end against the UChat sandbox: each plan its own
//! workspace, a named one only once its owner is checked, a returning customer's old one
//! resumed unless UChat deleted it.

use crate::common;

use common::story::{self, Buyer, Sub};
use common::*;
use serde_json::json;
use uchat_billing::sandbox::{Faults, SandboxHandle, Workspace};

/// Ada's second subscription: same customer, its own ids.
fn second_subscription() -> Buyer {
    Buyer {
        subscription: "sub_story_two".into(),
        checkout_session: "cs_story_two".into(),
        ..Buyer::story()
    }
}

async fn spawn() -> (TestApp, SandboxHandle, String) {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let app = spawn_app_delivering_to(&base).await;
    (app, sandbox, base)
}

/// Posts the events, applies them and delivers every call.
async fn run(app: &TestApp, events: &[Vec<u8>]) {
    app.post_stripe_events(events).await;
    app.process_events().await;
    app.deliver_all().await;
}

fn owned_by(sandbox: &SandboxHandle, email: &str) -> Vec<Workspace> {
    sandbox
        .workspaces()
        .into_iter()
        .filter(|w| w.owner_email.eq_ignore_ascii_case(email))
        .collect()
}

fn canceled(buyer: &Buyer, id: &str, created: i64, items: &[(&'static str, u32)]) -> Vec<u8> {
    story::subscription_of(
        buyer,
        id,
        "customer.subscription.deleted",
        created,
        &Sub::active(items).with_status("canceled"),
    )
}

/// A write of the partner API (anything but a read) that went to this workspace.
fn writes_to(sandbox: &SandboxHandle, id: u64) -> Vec<String> {
    let prefix = format!("/partner/workspace/{id}");
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.starts_with(&prefix))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn a_second_subscription_gets_a_second_workspace_and_cancelling_one_leaves_the_other() {
    let (app, sandbox, _) = spawn().await;
    let ada = Buyer::story();
    let two = second_subscription();
    run(
        &app,
        &story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]),
    )
    .await;
    run(
        &app,
        &story::subscription_sale(&two, "evt_b", 200, &[("price_business_plus", 1)]),
    )
    .await;
    let mut workspaces = owned_by(&sandbox, story::EMAIL);
    workspaces.sort_by_key(|w| w.id);
    let plans: Vec<&str> = workspaces.iter().map(|w| w.plan.as_str()).collect();
    assert_eq!(plans, ["business", "business_plus"]);

    run(
        &app,
        &[canceled(
            &two,
            "evt_b_end",
            300,
            &[("price_business_plus", 1)],
        )],
    )
    .await;
    let first = sandbox.workspace(workspaces[0].id).unwrap();
    let second = sandbox.workspace(workspaces[1].id).unwrap();
    assert!(second.is_paused && !second.auto_renew, "{second:?}");
    assert!(!first.is_paused && first.auto_renew, "{first:?}");
    assert_eq!(first.plan, "business");
}

#[tokio::test]
async fn a_resubscription_resumes_the_old_workspace() {
    let (app, sandbox, _) = spawn().await;
    let ada = Buyer::story();
    run(
        &app,
        &story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]),
    )
    .await;
    run(
        &app,
        &[canceled(&ada, "evt_a_end", 200, &[("price_business", 1)])],
    )
    .await;
    let [old] = &owned_by(&sandbox, story::EMAIL)[..] else {
        panic!("one workspace expected")
    };
    assert!(old.is_paused && !old.auto_renew);

    let again = second_subscription();
    run(
        &app,
        &story::subscription_sale(&again, "evt_c", 300, &[("price_business_plus", 1)]),
    )
    .await;
    let [resumed] = &owned_by(&sandbox, story::EMAIL)[..] else {
        panic!("still one workspace expected")
    };
    assert_eq!(resumed.id, old.id);
    assert_eq!(resumed.plan, "business_plus");
    assert!(!resumed.is_paused && resumed.auto_renew, "{resumed:?}");
    let (workspace_id,): (Option<i64>,) =
        sqlx::query_as("SELECT workspace_id FROM orders o JOIN order_links l ON l.order_id = o.id WHERE l.stripe_key = $1")
            .bind(format!("sub:{}", again.subscription))
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(workspace_id, Some(old.id as i64));
}

#[tokio::test]
async fn a_workspace_uchat_deleted_leads_to_a_new_one() {
    let (app, sandbox, base) = spawn().await;
    let ada = Buyer::story();
    run(
        &app,
        &story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]),
    )
    .await;
    run(
        &app,
        &[canceled(&ada, "evt_a_end", 200, &[("price_business", 1)])],
    )
    .await;
    let [old] = &owned_by(&sandbox, story::EMAIL)[..] else {
        panic!("one workspace expected")
    };
    // Deleted in UChat meanwhile (by the owner, or by UChat after the lapse).
    let deleted = reqwest::Client::new()
        .delete(format!("{base}/partner/workspace/{}", old.id))
        .bearer_auth(PARTNER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let writes_before = writes_to(&sandbox, old.id);

    let again = second_subscription();
    run(
        &app,
        &story::subscription_sale(&again, "evt_c", 300, &[("price_business", 1)]),
    )
    .await;
    let [new] = &owned_by(&sandbox, story::EMAIL)[..] else {
        panic!("one new workspace expected")
    };
    assert_ne!(new.id, old.id);
    assert_eq!(new.plan, "business");
    assert!(!new.is_paused && new.auto_renew);
    // Nothing but the look went to the deleted workspace.
    assert_eq!(writes_to(&sandbox, old.id), writes_before);
}

#[tokio::test]
async fn another_owners_named_workspace_is_never_called() {
    let (app, sandbox, base) = spawn().await;
    app.expect_dead_calls();
    app.expect_unfinished_calls();
    let created = reqwest::Client::new()
        .post(format!("{base}/partner/workspace/create"))
        .bearer_auth(PARTNER_TOKEN)
        .json(
            &json!({"name": "Mallory", "email": "mallory@example.com", "password": "pw",
                      "team_name": "Mallory's", "require_email_verification": "no"}),
        )
        .send()
        .await
        .unwrap();
    let theirs: serde_json::Value = created.json().await.unwrap();
    let theirs = theirs["data"]["id"].as_u64().unwrap();
    let before = sandbox.workspace(theirs).unwrap();

    let ada = Buyer::story();
    let mut sale = story::subscription_sale(
        &ada,
        "evt_a",
        100,
        &[("price_business", 1), ("price_bot", 2)],
    );
    sale[0] = story::patched(
        sale[0].clone(),
        json!({ "client_reference_id": theirs.to_string() }),
    );
    run(&app, &sale).await;

    assert_eq!(writes_to(&sandbox, theirs), Vec::<String>::new());
    assert_eq!(sandbox.workspace(theirs).unwrap(), before);
    assert!(owned_by(&sandbox, story::EMAIL).is_empty());
    let (status, attention) = app.order_status(None).await;
    assert_eq!(status, "needs_attention");
    let attention = attention.unwrap();
    assert!(
        attention.contains(&format!("workspace {theirs} belongs to another account")),
        "{attention}"
    );
}

#[tokio::test]
async fn a_named_workspace_of_the_buyer_gets_the_calls() {
    let (app, sandbox, base) = spawn().await;
    let created = reqwest::Client::new()
        .post(format!("{base}/partner/workspace/create"))
        .bearer_auth(PARTNER_TOKEN)
        .json(
            &json!({"name": "Ada", "email": story::EMAIL.to_uppercase(), "password": "pw",
                      "team_name": "Ada's", "require_email_verification": "no"}),
        )
        .send()
        .await
        .unwrap();
    let hers: serde_json::Value = created.json().await.unwrap();
    let hers = hers["data"]["id"].as_u64().unwrap();

    let ada = Buyer::story();
    let mut sale = story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]);
    sale[0] = story::patched(
        sale[0].clone(),
        json!({ "metadata": { "uchat_workspace_id": hers.to_string() } }),
    );
    run(&app, &sale).await;
    let [only] = &sandbox.workspaces()[..] else {
        panic!("no workspace but hers expected")
    };
    assert_eq!(only.id, hers);
    assert_eq!(only.plan, "business");
}

#[tokio::test]
async fn an_addon_subscription_goes_to_the_customers_workspace_and_takes_back_only_its_addons() {
    let (app, sandbox, _) = spawn().await;
    let ada = Buyer::story();
    run(
        &app,
        &story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]),
    )
    .await;
    let bots = second_subscription();
    run(
        &app,
        &story::subscription_sale(&bots, "evt_b", 200, &[("price_bot", 2)]),
    )
    .await;
    let [workspace] = &sandbox.workspaces()[..] else {
        panic!("one workspace expected")
    };
    assert_eq!(workspace.addons.get("bot"), Some(&2));

    run(
        &app,
        &[canceled(&bots, "evt_b_end", 300, &[("price_bot", 2)])],
    )
    .await;
    let workspace = sandbox.workspace(workspace.id).unwrap();
    assert_eq!(workspace.addons.get("bot"), None);
    assert!(!workspace.is_paused && workspace.auto_renew);
    assert_eq!(workspace.plan, "business");
}

#[tokio::test]
async fn addons_bought_while_the_customers_workspace_is_created_wait_for_it() {
    let (app, sandbox, _) = spawn().await;
    let ada = Buyer::story();
    let bots = second_subscription();
    let mut events = story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]);
    events.extend(story::subscription_sale(
        &bots,
        "evt_b",
        100,
        &[("price_bot", 2)],
    ));
    app.post_stripe_events(&events).await;
    app.process_events().await;
    let (error,): (Option<String>,) =
        sqlx::query_as("SELECT error FROM events WHERE status = 'pending' LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(error.unwrap().contains("still being created"));
    // The create goes through; the add-on order's event is tried again and follows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        app.deliver_all().await;
        app.process_events().await;
        let workspaces = sandbox.workspaces();
        if workspaces.len() == 1 && workspaces[0].addons.get("bot") == Some(&2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{workspaces:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `create`'s body for Ada, as the planner stores it.
fn adas_create() -> serde_json::Value {
    json!({"email": story::EMAIL, "name": "Ada", "team_name": "Ada's team", "require_email_verification": "no"})
}

async fn workspace_of(app: &TestApp, order: i64) -> Option<u64> {
    let id: Option<i64> = sqlx::query_scalar("SELECT workspace_id FROM orders WHERE id = $1")
        .bind(order)
        .fetch_one(&app.db)
        .await
        .unwrap();
    id.map(|id| id as u64)
}

/// Delivers the due calls while every write times out without taking effect, so each
/// create's first try is lost; then delivers everything.
async fn deliver_after_a_lost_first_try(app: &TestApp, sandbox: &SandboxHandle) {
    sandbox.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_ms: 1500,
        ..Faults::default()
    });
    app.worker().deliver_due().await.unwrap();
    sandbox.set_faults(Faults::default());
    app.deliver_all().await;
}

#[tokio::test]
async fn a_repeated_create_never_takes_the_workspace_of_the_customers_other_order() {
    let (app, sandbox, _) = spawn().await;
    let first = app
        .queue_calls(None, story::EMAIL, &[("create", adas_create())])
        .await;
    app.deliver_all().await;
    let theirs = workspace_of(&app, first).await.unwrap();

    // Same owner, same team name, made a moment ago: only its order tells it apart.
    let second = app
        .queue_calls(None, story::EMAIL, &[("create", adas_create())])
        .await;
    deliver_after_a_lost_first_try(&app, &sandbox).await;

    let owned = owned_by(&sandbox, story::EMAIL);
    assert_eq!(owned.len(), 2, "{owned:?}");
    let made = workspace_of(&app, second).await.unwrap();
    assert_ne!(made, theirs);
    assert_eq!(workspace_of(&app, first).await, Some(theirs));
    assert_eq!(
        app.attempt_outcomes(second).await.last().unwrap().0,
        "succeeded"
    );
}

#[tokio::test]
async fn a_repeated_create_never_takes_a_workspace_made_before_its_first_try() {
    let (app, sandbox, base) = spawn().await;
    // Ada's own, made in UChat an hour ago with the same team name, and no order's.
    let created = reqwest::Client::new()
        .post(format!("{base}/partner/workspace/create"))
        .bearer_auth(PARTNER_TOKEN)
        .json(
            &json!({"name": "Ada", "email": story::EMAIL, "password": "pw",
                      "team_name": "Ada's team", "require_email_verification": "no"}),
        )
        .send()
        .await
        .unwrap();
    let hers: serde_json::Value = created.json().await.unwrap();
    let hers = hers["data"]["id"].as_u64().unwrap();
    assert!(sandbox.edit_workspace(hers, |w| w.created_at -= chrono::TimeDelta::hours(1)));

    let order = app
        .queue_calls(None, story::EMAIL, &[("create", adas_create())])
        .await;
    deliver_after_a_lost_first_try(&app, &sandbox).await;

    assert_eq!(owned_by(&sandbox, story::EMAIL).len(), 2);
    let made = workspace_of(&app, order).await.unwrap();
    assert_ne!(made, hers);
    let outcomes = app.attempt_outcomes(order).await;
    assert_eq!(outcomes.first().unwrap().0, "retry");
    assert_eq!(outcomes.last().unwrap().0, "succeeded", "{outcomes:?}");
}
