//! UChat's partner webhooks: a secret path token, every event stored once, and what
//! they do: a deleted workspace gets no more calls, a lack of credit raises the alert.

use serde_json::{json, Value};
use uchat_billing::partner::{Method, PartnerClient};
use uchat_billing::sandbox::{Faults, SandboxHandle};
use uchat_billing::secret::Secret;

use crate::common;
use common::story::{self, Buyer, Sub};
use common::*;

const TOKEN: &str = "uchat-hook-token-0123456789abcdef";

async fn spawn() -> (TestApp, SandboxHandle) {
    let (app, sandbox, _) = spawn_with_base().await;
    (app, sandbox)
}

/// The app, the sandbox it delivers to, and the sandbox's base URL.
async fn spawn_with_base() -> (TestApp, SandboxHandle, String) {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(move |config| {
        config.delivery = Some(delivery);
        config.uchat_webhook_token = Some(Secret::new(TOKEN));
    })
    .await;
    (app, sandbox, base)
}

async fn post(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/webhooks/uchat/{token}", app.address))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Ada buys the business plan; her workspace is set up (or its calls held).
async fn sell_a_plan(app: &TestApp) {
    let items = [("price_business", 1)];
    app.run_events(&story::story_sale(&items)).await;
}

async fn stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM uchat_events")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_deleted_workspace_gets_no_more_calls_and_its_order_needs_attention() {
    let (app, sandbox) = spawn().await;
    let ada = Buyer::story();
    sell_a_plan(&app).await;
    let workspace = sandbox.workspaces()[0].id;
    // A bot bought, its call queued but not yet delivered.
    let more = Sub::active(&[("price_business", 1), ("price_bot", 1)]);
    app.post_stripe_events(&[story::subscription_of(
        &ada,
        "evt_b",
        "customer.subscription.updated",
        200,
        &more,
    )])
    .await;
    app.process_events().await;

    let deleted = json!({ "event_type": "workspace_deleted", "workspace_id": workspace, "owner_email": story::EMAIL });
    assert_eq!(
        post(&app, TOKEN, &deleted).await,
        (200, json!({ "received": true, "duplicate": false }))
    );
    assert_eq!(
        post(&app, TOKEN, &deleted).await,
        (200, json!({ "received": true, "duplicate": true }))
    );
    assert_eq!(stored(&app).await, 1, "a redelivery is stored once");

    let requests_before = sandbox.requests().len();
    app.deliver_all().await;
    let more = Sub::active(&[("price_business", 1), ("price_bot", 3)]);
    app.run_events(&[story::subscription_of(
        &ada,
        "evt_c",
        "customer.subscription.updated",
        300,
        &more,
    )])
    .await;
    assert_eq!(
        sandbox.requests().len(),
        requests_before,
        "no call went to the deleted workspace"
    );

    let (status, attention) = app.order_status(None).await;
    assert_eq!(status, "needs_attention");
    assert!(attention
        .unwrap()
        .contains(&format!("deleted workspace {workspace}")));
    let unfinished: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM partner_calls WHERE status NOT IN ('succeeded', 'canceled')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(unfinished, 0);
}

#[tokio::test]
async fn the_path_token_is_checked_and_the_route_is_off_without_one() {
    let (app, _sandbox) = spawn().await;
    let event = json!({ "event_type": "workspace_created", "workspace_id": 1 });
    for wrong in ["nope", &TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")] {
        assert_eq!(post(&app, wrong, &event).await.0, 404, "{wrong}");
    }
    assert_eq!(stored(&app).await, 0);

    let off = spawn_app().await;
    assert_eq!(post(&off, TOKEN, &event).await.0, 404);
}

#[tokio::test]
async fn unknown_events_and_odd_shapes_are_stored_and_acknowledged() {
    let (app, _sandbox) = spawn().await;
    for body in [
        json!({ "event_type": "user_registered", "owner_email": "a@example.com" }),
        json!({ "event": "something_new", "data": { "x": 1 } }),
        json!(["not", "an", "object"]),
    ] {
        assert_eq!(post(&app, TOKEN, &body).await.0, 200, "{body}");
    }
    let plain = app
        .client
        .post(format!("{}/webhooks/uchat/{TOKEN}", app.address))
        .body("event_type=overdue")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(stored(&app).await, 4);
}

#[tokio::test]
async fn no_enough_credit_raises_the_alert_until_credit_is_back() {
    let (app, sandbox) = spawn().await;
    let alert = || app.metric_line("uchat_billing_partner_credit_alert");
    assert_eq!(
        alert().await.as_deref(),
        Some("uchat_billing_partner_credit_alert 0")
    );
    assert_eq!(
        post(&app, TOKEN, &json!({ "event_type": "no_enough_credit" }))
            .await
            .0,
        200
    );
    assert_eq!(
        alert().await.as_deref(),
        Some("uchat_billing_partner_credit_alert 1")
    );

    // The plan's change-plan is held for credit, then succeeds once credit is back.
    sandbox.set_credit(0.0);
    sell_a_plan(&app).await;
    sandbox.set_credit(1000.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        app.deliver_all().await;
        let held: i64 =
            sqlx::query_scalar("SELECT count(*) FROM partner_calls WHERE status <> 'succeeded'")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if held == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "calls still held");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        alert().await.as_deref(),
        Some("uchat_billing_partner_credit_alert 0")
    );
}

#[tokio::test]
async fn the_webhook_endpoints_set_show_and_remove_it_and_uchat_posts_a_deletion_to_it() {
    let (app, sandbox, base) = spawn_with_base().await;
    let partner = PartnerClient::new(
        &base,
        Secret::new(PARTNER_TOKEN),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(partner.webhook().await.unwrap(), None);
    let url = format!("{}/webhooks/uchat/{TOKEN}", app.address);
    partner.set_webhook(&url).await.unwrap();
    assert_eq!(partner.webhook().await.unwrap(), Some(url.clone()));
    let contract: Vec<(String, String, Value)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.json()))
        .collect();
    assert_eq!(
        contract,
        [
            ("GET".into(), "/partner/webhook".into(), Value::Null),
            (
                "POST".into(),
                "/partner/set-webhook".into(),
                json!({ "url": url })
            ),
            ("GET".into(), "/partner/webhook".into(), Value::Null),
        ]
    );

    sell_a_plan(&app).await;
    let workspace = sandbox.workspaces()[0].id;
    partner
        .send(
            Method::DELETE,
            &format!("/partner/workspace/{workspace}"),
            None,
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.order_status(None).await.0 != "needs_attention" {
        assert!(
            std::time::Instant::now() < deadline,
            "UChat's deletion never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stored(&app).await, 1);

    partner.remove_webhook().await.unwrap();
    assert_eq!(partner.webhook().await.unwrap(), None);
    assert_eq!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/partner/remove-webhook")
            .count(),
        1
    );
}

/// `uchat-billing uchat-webhook <action>` against the partner at `base`, with `env`
/// added; whatever it prints, the token is not in it.
async fn uchat_webhook_command(
    base: &str,
    action: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut command = crate::cli::command();
    command
        .args(["uchat-webhook", action])
        .env("UCHAT_API_BASE", base)
        .env("UCHAT_API_TOKEN", PARTNER_TOKEN)
        .envs(env.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!printed.contains(TOKEN), "token printed: {printed}");
    output
}

#[tokio::test]
async fn the_uchat_webhook_command_registers_shows_and_removes_the_url_never_printing_the_token() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let public = "https://billing.example.com/";
    let register = [("PUBLIC_BASE_URL", public), ("UCHAT_WEBHOOK_TOKEN", TOKEN)];

    let registered = uchat_webhook_command(&base, "register", &register).await;
    assert!(registered.status.success(), "{registered:?}");
    assert_eq!(
        sandbox.webhook_url().as_deref(),
        Some(format!("https://billing.example.com/webhooks/uchat/{TOKEN}").as_str())
    );
    let shown = uchat_webhook_command(&base, "show", &[]).await;
    assert!(shown.status.success(), "{shown:?}");
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        "https://billing.example.com/webhooks/uchat/***\n"
    );
    let removed = uchat_webhook_command(&base, "remove", &[]).await;
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(sandbox.webhook_url(), None);
    let shown = uchat_webhook_command(&base, "show", &[]).await;
    assert_eq!(String::from_utf8_lossy(&shown.stdout), "no webhook set\n");

    let unregistered =
        uchat_webhook_command(&base, "register", &[("UCHAT_WEBHOOK_TOKEN", TOKEN)]).await;
    assert_eq!(unregistered.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unregistered.stderr);
    assert!(stderr.contains("PUBLIC_BASE_URL"), "{stderr}");
    assert_eq!(sandbox.webhook_url(), None, "nothing registered");
}
