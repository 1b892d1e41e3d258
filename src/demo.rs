//! `uchat-billing demo`: the service and the UChat sandbox together on this machine,
//! fed a short signed Stripe story, printing each partner call and the end state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::config::{Config, Delivery, Limits};
use crate::db;
use crate::delivery::DeliverySettings;
use crate::partner::PartnerClient;
use crate::plan::Catalog;
use crate::sandbox::{self, SandboxConfig};
use crate::secret::Secret;
use crate::startup::Application;
use crate::stripe::signature;

/// The catalog the demo sells from: the documented example.
const CATALOG: &str = include_str!("../catalog.example.toml");

pub struct DemoOptions {
    pub database_url: String,
    pub bind: std::net::SocketAddr,
    pub sandbox_bind: std::net::SocketAddr,
    pub keep_running: bool,
}

/// One step of the story: what happens in Stripe, and the events it sends.
struct Step {
    title: &'static str,
    events: Vec<Value>,
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let database_url = options.database_url;
    let db = db::pool(&database_url, 10)?;
    if let Err(error) = db::prepare(&database_url).await {
        bail!(
            "Postgres is not reachable at {database_url} ({error:#}).\n\
             Start one with `docker compose up -d postgres`, or on Debian:\n  \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        );
    }

    let webhook_secret = Secret::new(format!("whsec_{}", random_token(32)));
    let sandbox_token = random_token(24);
    let admin_token = random_token(32);
    let sandbox_listener = tokio::net::TcpListener::bind(options.sandbox_bind)
        .await
        .with_context(|| format!("binding the sandbox to {}", options.sandbox_bind))?;
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr()?);
    let (sandbox_router, _) = sandbox::router(SandboxConfig {
        token: sandbox_token.clone(),
        ..SandboxConfig::default()
    });
    tokio::spawn(async move { axum::serve(sandbox_listener, sandbox_router).await });

    let timeout = Duration::from_secs(5);
    let config = Config {
        database_url,
        bind_addr: options.bind,
        webhook_secrets: vec![webhook_secret.clone()],
        catalog: Arc::new(Catalog::parse_named("catalog.example.toml", CATALOG)?),
        stripe_api: None,
        settle: Duration::from_millis(200),
        delivery: Some(Delivery {
            partner: PartnerClient::new(&sandbox_url, Secret::new(sandbox_token.clone()), timeout)?,
            settings: DeliverySettings::for_timeout(timeout),
        }),
        admin_token: Some(Secret::new(admin_token.clone())),
        metrics_public: false,
        background_work: true,
        limits: Limits::default(),
    };
    let app = Application::connect(&config).await?;
    let service_url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    println!("uchat-billing demo");
    println!("  service        {service_url}");
    println!("  UChat sandbox  {sandbox_url}  (state: {sandbox_url}/sandbox/state)");
    println!(
        "  webhook secret {}  (generated for this run; shown once)",
        webhook_secret.expose()
    );
    println!("  sandbox token  {sandbox_token}");
    println!("  admin token    {admin_token}  (curl -H 'Authorization: Bearer {admin_token}' {service_url}/admin/orders)");
    println!();

    let http = reqwest::Client::new();
    let run_id = random_token(8).to_lowercase();
    for (number, step) in story(&run_id).into_iter().enumerate() {
        println!("{}. {}", number + 1, step.title);
        let since = db::calls::last_id(&db).await?;
        for event in &step.events {
            post_signed(&http, &service_url, &webhook_secret, event).await?;
        }
        wait_until_settled(&db).await?;
        print_calls_since(&db, since).await?;
    }

    let state: Value = http
        .get(format!("{sandbox_url}/sandbox/state"))
        .send()
        .await?
        .json()
        .await?;
    println!(
        "\nFinal sandbox state:\n{}",
        serde_json::to_string_pretty(&state)?
    );

    if options.keep_running {
        println!("\nStill running. Try more (Ctrl-C to stop):");
        println!("  curl -s {sandbox_url}/sandbox/state");
        println!("  curl -s {service_url}/readyz");
        println!(
            "  BODY='{{\"id\":\"evt_try_1\",\"type\":\"customer.subscription.updated\",\"created\":'$(date +%s)',\"data\":{{\"object\":{{\"id\":\"sub_demo_{run_id}\",\"customer\":\"cus_demo_{run_id}\",\"status\":\"active\",\"cancel_at_period_end\":false,\"pause_collection\":null,\"items\":{{\"data\":[{{\"price\":{{\"id\":\"price_1PBusiness\"}},\"quantity\":1}}]}}}}}}}}'"
        );
        println!("  T=$(date +%s); SIG=$(printf '%s.%s' \"$T\" \"$BODY\" | openssl dgst -sha256 -hmac '{}' | sed 's/^.*= //')", webhook_secret.expose());
        println!("  curl -s -X POST {service_url}/webhooks/stripe -H \"Stripe-Signature: t=$T,v1=$SIG\" --data-raw \"$BODY\"");
        crate::startup::shutdown_signal().await;
    }
    let _ = stop.send(());
    service.await?;
    Ok(())
}

fn random_token(length: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), length)
}

/// A subscription sale, an upgrade, a points top-up and a cancellation. Ids carry the
/// run id, so each run is a new customer even against a database that kept the last.
fn story(run: &str) -> Vec<Step> {
    let now = chrono::Utc::now().timestamp();
    let customer = format!("cus_demo_{run}");
    let subscription = format!("sub_demo_{run}");
    let event = |n: i64, event_type: &str, object: Value| {
        json!({
            "id": format!("evt_demo_{run}_{n}"),
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": now + n,
            "livemode": false,
            "type": event_type,
            "data": { "object": object },
        })
    };
    let subscription_object = |price: &str, status: &str| {
        json!({
            "id": subscription, "object": "subscription", "customer": customer, "status": status,
            "cancel_at_period_end": false, "pause_collection": null, "metadata": {},
            "items": { "object": "list", "data": [
                { "id": format!("si_{run}"), "object": "subscription_item", "quantity": 1,
                  "price": { "id": price, "object": "price" } }
            ] }
        })
    };
    vec![
        Step {
            title:
                "Ada subscribes to Business (checkout, subscription created, first invoice paid)",
            events: vec![
                event(
                    1,
                    "checkout.session.completed",
                    json!({
                        "id": format!("cs_sub_{run}"), "object": "checkout.session", "mode": "subscription",
                        "payment_status": "paid", "status": "complete", "customer": customer,
                        "subscription": subscription, "amount_total": 2900,
                        "customer_details": { "email": format!("ada+{run}@example.com"), "name": "Ada Lovelace" },
                        "custom_fields": [], "metadata": {}
                    }),
                ),
                event(
                    2,
                    "customer.subscription.created",
                    subscription_object("price_1PBusiness", "active"),
                ),
                event(
                    3,
                    "invoice.paid",
                    json!({
                        "id": format!("in_{run}"), "object": "invoice", "billing_reason": "subscription_create",
                        "customer": customer, "amount_paid": 2900, "status": "paid",
                        "parent": { "type": "subscription_details", "subscription_details": { "subscription": subscription } },
                        "lines": { "object": "list", "data": [
                            { "id": format!("il_{run}"), "object": "line_item", "quantity": 1,
                              "pricing": { "type": "price_details", "price_details": { "price": "price_1PBusiness" } } }
                        ] }
                    }),
                ),
            ],
        },
        Step {
            title: "Ada upgrades to Business Plus",
            events: vec![event(
                10,
                "customer.subscription.updated",
                subscription_object("price_1PBusinessPlus", "active"),
            )],
        },
        Step {
            title: "Ada buys a 1,000-point pack (one-off Checkout payment)",
            events: vec![event(
                20,
                "checkout.session.completed",
                json!({
                    "id": format!("cs_points_{run}"), "object": "checkout.session", "mode": "payment",
                    "payment_status": "paid", "status": "complete", "customer": customer,
                    "payment_intent": format!("pi_points_{run}"), "amount_total": 1000,
                    "customer_details": { "email": format!("ada+{run}@example.com"), "name": "Ada Lovelace" },
                    "custom_fields": [], "metadata": {},
                    // Stripe sends no line items in the event; the service reads them with
                    // STRIPE_API_KEY. The demo has no Stripe account, so it sends them expanded.
                    "line_items": { "object": "list", "data": [
                        { "id": format!("li_{run}"), "object": "item", "quantity": 1, "price": { "id": "price_1PPoints1000" } }
                    ] }
                }),
            )],
        },
        Step {
            title: "Ada cancels: the subscription is deleted",
            events: vec![event(
                30,
                "customer.subscription.deleted",
                subscription_object("price_1PBusinessPlus", "canceled"),
            )],
        },
    ]
}

async fn post_signed(
    http: &reqwest::Client,
    service: &str,
    secret: &Secret,
    event: &Value,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(event)?;
    let header = signature::header_for(secret, chrono::Utc::now().timestamp(), &body);
    let response = http
        .post(format!("{service}/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "the service refused a demo event: {} {}",
            response.status(),
            response.text().await?
        );
    }
    Ok(())
}

/// Waits until every event is applied and every call delivered (or stuck for an operator).
async fn wait_until_settled(db: &PgPool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let unsettled = db::stats::unsettled(db).await?;
        if unsettled == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the demo did not settle within a minute: {unsettled} events or calls still open"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn print_calls_since(db: &PgPool, since: i64) -> anyhow::Result<()> {
    let calls = db::calls::since(db, since).await?;
    if calls.is_empty() {
        println!("   (no partner calls)");
    }
    for call in calls {
        let body = if call.body.is_null() {
            String::new()
        } else {
            call.body.to_string()
        };
        println!("   -> {} {body}  [{}]", call.kind, call.status);
    }
    Ok(())
}
