//! `uchat-billing demo`: the service and the UChat sandbox together on this machine,
//! fed a short signed Stripe story, printing each partner call and the end state.
//!
//! Each run has a database of its own on the Postgres server `DATABASE_URL` names,
//! created at start and dropped at exit, and a sandbox of its own: nothing another run
//! or the service left behind can disturb it, and it waits only on its own rows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};

use crate::config::{self, Config, Delivery, Limits, DATABASE_URL, STRIPE_API_KEY};
use crate::db;
use crate::db::calls::{CallRecord, CallStatus};
use crate::delivery::{DeliverySettings, RetryPolicy};
use crate::env::Env;
use crate::partner::PartnerClient;
use crate::plan::Catalog;
use crate::sandbox::{self, SandboxConfig};
use crate::secret::Secret;
use crate::start_error::{listen, masked, StartError};
use crate::startup::{shutdown_signal, Application};
use crate::store::StoreSettings;
use crate::stripe::api::StripeApi;
use crate::stripe::signature;

/// The catalog the demo sells from: the documented example.
const CATALOG: &str = include_str!("../catalog.example.toml");

/// How long one step of the story may take to settle.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// What to do when Postgres does not answer.
const START_POSTGRES: &str = "Start Postgres (README, \"Prerequisites\"): on Debian/Ubuntu \
    `sudo pg_ctlcluster 15 main start` (in a container without systemd: \
    `pg_ctlcluster --skip-systemctl-redirect 15 main start`), on macOS \
    `brew services start postgresql@15`, or with Docker `docker compose up -d postgres` \
    and DATABASE_URL=postgres://postgres@127.0.0.1:5433/uchat_billing.";

pub struct DemoOptions {
    /// Names the Postgres server; the demo makes a database of its own there.
    pub database_url: String,
    pub bind: SocketAddr,
    pub sandbox_bind: SocketAddr,
    pub keep_running: bool,
    /// The sandbox's settings (`SANDBOX_*`), faults included; its token is generated.
    pub sandbox: SandboxConfig,
    /// A test-mode `STRIPE_API_KEY`'s API: turns the storefront's pages on.
    pub stripe_api: Option<StripeApi>,
}

/// `STRIPE_API_KEY`'s API for the demo's storefront. Only a test-mode key: the pages
/// start real Checkout sessions.
pub fn test_mode_stripe(env: &mut Env) -> Option<StripeApi> {
    let key = env.get(&STRIPE_API_KEY)?;
    if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
        env.report(format!(
            "the demo takes a test-mode {} (sk_test_... or rk_test_...), not a live one",
            STRIPE_API_KEY.name
        ));
        return None;
    }
    config::stripe_api(env)
}

/// One step of the story: what happens in Stripe, and the events it sends.
struct Step {
    title: &'static str,
    events: Vec<Value>,
}

/// What the run made up: secrets and where everything listens.
struct Run {
    service_url: String,
    /// The storefront's pages, and whether they are served (with a Stripe key).
    store_url: String,
    store_on: bool,
    sandbox_url: String,
    webhook_secret: Secret,
    admin_token: String,
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    // Everything that can be wrong with the flags and the database, reported together.
    let (service, sandbox, database) = (
        listen("--bind", options.bind).await,
        listen("--sandbox-bind", options.sandbox_bind).await,
        DemoDatabase::create(&options.database_url).await,
    );
    let (service, sandbox, database) = match (service, sandbox, database) {
        (Ok(service), Ok(sandbox), Ok(database)) => (service, sandbox, database),
        (service, sandbox, database) => {
            let database = match database {
                Ok(database) => {
                    database.drop().await;
                    None
                }
                Err(problem) => Some(problem),
            };
            let problems = StartError::all([service.err(), sandbox.err(), database]);
            return Err(problems.expect("one of them failed").into());
        }
    };

    // Ctrl-C at any point ends the run, and the database goes with it.
    let outcome = tokio::select! {
        outcome = demonstrate(&options, service, sandbox, &database) => outcome,
        () = shutdown_signal() => Ok(()),
    };
    database.drop().await;
    outcome
}

/// The run's own database, dropped when the run ends.
struct DemoDatabase {
    url: String,
    name: String,
    pool: PgPool,
}

impl DemoDatabase {
    /// A new database, migrated, on the server `database_url` names.
    async fn create(database_url: &str) -> Result<DemoDatabase, StartError> {
        let name = format!("uchat_billing_demo_{}", random_token(10).to_lowercase());
        let mut url = reqwest::Url::parse(database_url).map_err(|error| {
            StartError::database(DATABASE_URL.name, database_url, &error.into())
        })?;
        url.set_path(&name);
        let url = url.to_string();
        let pool = db::pool(&url, 10).map_err(|error| {
            StartError::database(DATABASE_URL.name, database_url, &error.into())
        })?;
        if let Err(error) = db::prepare(&url).await {
            let problem = StartError::database(DATABASE_URL.name, database_url, &error);
            let _ = Postgres::force_drop_database(&url).await;
            return Err(if StartError::is_unreachable(&error) {
                problem.with_hint(START_POSTGRES)
            } else {
                problem
            });
        }
        Ok(DemoDatabase { url, name, pool })
    }

    async fn drop(self) {
        self.pool.close().await;
        if let Err(error) = Postgres::force_drop_database(&self.url).await {
            eprintln!(
                "warning: the demo database {} is left behind ({error}); drop it with \
                 `dropdb --force {}` and the options of DATABASE_URL",
                self.name, self.name
            );
        }
    }
}

/// Runs the story against the service and the sandbox, then keeps them up if asked to.
async fn demonstrate(
    options: &DemoOptions,
    service_listener: tokio::net::TcpListener,
    sandbox_listener: tokio::net::TcpListener,
    database: &DemoDatabase,
) -> anyhow::Result<()> {
    let webhook_secret = Secret::new(format!("whsec_{}", random_token(32)));
    let sandbox_token = random_token(24);
    // Long enough for any rule an operator's own token must meet.
    let admin_token = random_token(40);
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr()?);
    let (sandbox_router, _) = sandbox::router(SandboxConfig {
        token: sandbox_token.clone(),
        ..options.sandbox.clone()
    });
    tokio::spawn(async move { axum::serve(sandbox_listener, sandbox_router).await });

    let timeout = Duration::from_secs(5);
    let delivery = DeliverySettings {
        // Faults (`SANDBOX_FAIL_RATE`, say) show retries within the story's time.
        retry: RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
        },
        held_retry: Duration::from_secs(5),
        ..DeliverySettings::for_timeout(timeout)
    };
    let service_url = format!("http://{}", service_listener.local_addr()?);
    let store_url = format!("{service_url}/store/");
    let store = match &options.stripe_api {
        Some(_) => Some(store_settings(&store_url, &sandbox_url)?),
        None => None,
    };
    let config = Config {
        database_url: database.url.clone(),
        bind_addr: service_listener.local_addr()?,
        webhook_secrets: vec![webhook_secret.clone()],
        catalog: Arc::new(Catalog::parse_named("catalog.example.toml", CATALOG)?),
        stripe_api: options.stripe_api.clone(),
        backfill_every: None,
        settle: Duration::from_millis(200),
        delivery: Some(Delivery {
            partner: PartnerClient::new(&sandbox_url, Secret::new(sandbox_token.clone()), timeout)?,
            settings: delivery,
        }),
        credit_poll: Duration::from_secs(5),
        admin_token: Some(Secret::new(admin_token.clone())),
        metrics_public: false,
        console_secure_cookie: false,
        paid_not_provisioned_after: Duration::from_secs(15 * 60),
        background_work: true,
        limits: Limits::default(),
        store,
        reconcile: Default::default(),
        uchat_webhook_token: None,
    };
    let db = database.pool.clone();
    let app = Application::with_listener(&config, service_listener)?;
    let run = Run {
        service_url,
        store_on: config.store.is_some(),
        store_url,
        sandbox_url,
        webhook_secret,
        admin_token,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    print_header(&run, &database.name, &options.database_url, &sandbox_token);
    let told = tell_story(&run, &db).await;
    let outcome = match told {
        Ok(()) => {
            print_final_state(&run).await?;
            if options.keep_running {
                print_try_more(&run);
                shutdown_signal().await;
            }
            Ok(())
        }
        Err(Stuck) if options.keep_running => {
            println!("\nThe service stays up so these commands work (Ctrl-C to stop).");
            shutdown_signal().await;
            Err(anyhow::anyhow!(
                "the story stopped at partner calls that were stuck"
            ))
        }
        Err(Stuck) => Err(anyhow::anyhow!(
            "the story stopped at partner calls that were stuck (above); \
             `uchat-billing demo --keep-running` keeps the service up to unstick them"
        )),
    };
    let _ = stop.send(());
    service.await?;
    outcome
}

fn print_header(run: &Run, database: &str, database_url: &str, sandbox_token: &str) {
    let Run {
        service_url,
        store_url,
        store_on,
        sandbox_url,
        webhook_secret,
        admin_token,
    } = run;
    let server = reqwest::Url::parse(database_url)
        .ok()
        .and_then(|url| {
            Some(format!(
                "{}:{}",
                url.host_str()?,
                url.port().unwrap_or(5432)
            ))
        })
        .unwrap_or_else(|| masked(database_url));
    println!("uchat-billing demo");
    println!("  service        {service_url}");
    println!("  UChat sandbox  {sandbox_url}  (state: {sandbox_url}/sandbox/state)");
    println!("  database       {database} on {server}  (dropped when the demo ends)");
    println!(
        "  webhook secret {}  (generated for this run)",
        webhook_secret.expose()
    );
    println!("  sandbox token  {sandbox_token}");
    println!("  admin token    {admin_token}");
    println!("  console        {service_url}/console  (sign in with the admin token)");
    if *store_on {
        println!(
            "  storefront     {store_url}  (prices and Checkout in STRIPE_API_KEY's test mode)"
        );
    } else {
        println!(
            "  storefront     {store_url} once STRIPE_API_KEY (a Stripe test-mode key) is set: \
             the pages list prices and start Checkout with it"
        );
    }
    println!();
    println!("For the README's admin examples and examples/post-events.sh, in another shell:");
    println!(
        "  export BASE={service_url} ADMIN_TOKEN={admin_token} STRIPE_WEBHOOK_SECRET={}",
        webhook_secret.expose()
    );
    println!();
}

/// The storefront on the demo's own pages; "logging in" shows the sandbox's workspaces.
fn store_settings(store_url: &str, sandbox_url: &str) -> anyhow::Result<StoreSettings> {
    Ok(StoreSettings {
        success_url: format!("{store_url}thanks.html").parse()?,
        cancel_url: store_url.parse()?,
        login_url: format!("{sandbox_url}/sandbox/state").parse()?,
        allowed_origins: Vec::new(),
        rate_per_minute: 10,
        catalog_refresh: Duration::from_secs(300),
    })
}

/// The story stopped at calls that wait for an operator; they were printed.
struct Stuck;

async fn tell_story(run: &Run, db: &PgPool) -> Result<(), Stuck> {
    let http = reqwest::Client::new();
    for (number, step) in story().into_iter().enumerate() {
        println!("{}. {}", number + 1, step.title);
        let told = async {
            let since = db::calls::last_id(db).await?;
            for event in &step.events {
                post_signed(&http, &run.service_url, &run.webhook_secret, event).await?;
            }
            let unfinished = wait_until_settled(db).await?;
            print_calls_since(db, since).await?;
            anyhow::Ok(unfinished)
        };
        match told.await {
            Ok(unfinished) if unfinished.is_empty() => {}
            Ok(unfinished) => {
                print_stuck(run, &unfinished);
                return Err(Stuck);
            }
            Err(error) => {
                println!("   the step failed: {error:#}");
                return Err(Stuck);
            }
        }
    }
    Ok(())
}

async fn print_final_state(run: &Run) -> anyhow::Result<()> {
    let state: Value = reqwest::get(format!("{}/sandbox/state", run.sandbox_url))
        .await?
        .json()
        .await?;
    println!(
        "\nFinal sandbox state:\n{}",
        serde_json::to_string_pretty(&state)?
    );
    Ok(())
}

/// Lines that post more events, each time with fresh ids and the current time, and
/// change the sandbox visibly.
fn print_try_more(run: &Run) {
    let Run {
        service_url,
        sandbox_url,
        webhook_secret,
        ..
    } = run;
    let secret = webhook_secret.expose();
    println!("\nStill running. Try more (Ctrl-C to stop and drop the demo database):");
    println!("  # sign and post an event:");
    println!(
        "  post() {{ T=$(date +%s); SIG=$(printf '%s.%s' \"$T\" \"$1\" | openssl dgst -sha256 -hmac '{secret}' | sed 's/^.*= //'); curl -s -X POST {service_url}/webhooks/stripe -H 'Content-Type: application/json' -H \"Stripe-Signature: t=$T,v1=$SIG\" --data-raw \"$1\"; echo; }}"
    );
    println!("  # Ada buys another 1,000 points: her workspace's points go up");
    println!(
        "  N=$(date +%s); R=$N$RANDOM; post '{{\"id\":\"evt_try_'$R'\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"created\":'$N',\"data\":{{\"object\":{{\"id\":\"cs_try_'$R'\",\"object\":\"checkout.session\",\"mode\":\"payment\",\"payment_status\":\"paid\",\"customer\":\"{ADA}\",\"payment_intent\":\"pi_try_'$R'\",\"amount_total\":1000,\"customer_details\":{{\"email\":\"{ADA_EMAIL}\",\"name\":\"Ada Lovelace\"}},\"line_items\":{{\"data\":[{{\"quantity\":1,\"price\":{{\"id\":\"price_1PPoints1000\"}}}}]}}}}}}}}'"
    );
    println!("  # a new buyer subscribes to Business: a new workspace appears");
    println!(
        "  N=$(date +%s); R=$N$RANDOM; post '{{\"id\":\"evt_try_'$R'\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"created\":'$N',\"data\":{{\"object\":{{\"id\":\"cs_try_'$R'\",\"object\":\"checkout.session\",\"mode\":\"subscription\",\"payment_status\":\"paid\",\"customer\":\"cus_try_'$R'\",\"subscription\":\"sub_try_'$R'\",\"customer_details\":{{\"email\":\"buyer'$R'@example.com\",\"name\":\"Buyer '$R'\"}},\"line_items\":{{\"data\":[{{\"quantity\":1,\"price\":{{\"id\":\"price_1PBusiness\"}}}}]}}}}}}}}'"
    );
    println!("  # then look at the sandbox, and (with the exports above) at Ada's orders:");
    println!("  curl -s {sandbox_url}/sandbox/state");
    println!(
        "  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" \"$BASE/admin/orders?email={ADA_EMAIL}\""
    );
}

/// The story's buyer, as the README's admin examples name her.
const ADA_EMAIL: &str = "ada@example.com";
/// Her Stripe customer: every run's database is new, so the id need not be.
const ADA: &str = "cus_demo_ada";

fn random_token(length: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), length)
}

/// A subscription sale, an upgrade, a points top-up and a cancellation, stamped now.
/// The ids need not differ between runs: each run's database and sandbox are new.
fn story() -> Vec<Step> {
    let now = chrono::Utc::now().timestamp();
    let run = "ada";
    let customer = ADA;
    let subscription = "sub_demo_ada";
    let event = |n: i64, event_type: &str, object: Value| {
        json!({
            "id": format!("evt_demo_{n}"),
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
                        "customer_details": { "email": ADA_EMAIL, "name": "Ada Lovelace" },
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
                    "customer_details": { "email": ADA_EMAIL, "name": "Ada Lovelace" },
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

/// Waits until every event is applied and every call has succeeded or waits for an
/// operator (dead, held, or behind one of those), at most [`STEP_TIMEOUT`]. The database
/// is the run's own, so every row in it is the run's. Returns the calls not done.
async fn wait_until_settled(db: &PgPool) -> anyhow::Result<Vec<CallRecord>> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while db::stats::unsettled(db).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(db::calls::unfinished(db).await?)
}

async fn print_calls_since(db: &PgPool, since: i64) -> anyhow::Result<()> {
    let calls = db::calls::since(db, since).await?;
    if calls.is_empty() {
        println!("   (no partner calls)");
    }
    for call in calls {
        println!("   -> {}", describe(&call));
    }
    Ok(())
}

/// `kind body  [status: last error]`.
fn describe(call: &CallRecord) -> String {
    let body = if call.body.is_null() {
        String::new()
    } else {
        format!(" {}", call.body)
    };
    let error = match (&call.status, &call.last_error) {
        (CallStatus::Succeeded, _) | (_, None) => String::new(),
        (_, Some(error)) => format!(": {error}"),
    };
    format!("{}{body}  [{}{error}]", call.kind, call.status)
}

/// Each call that did not finish, and the operator's command that unsticks it.
fn print_stuck(run: &Run, calls: &[CallRecord]) {
    let admin = |id: i64, action: &str| {
        format!(
            "curl -s -X POST -H 'Authorization: Bearer {}' {}/admin/calls/{id}/{action}",
            run.admin_token, run.service_url
        )
    };
    println!("\nThe story cannot go on: these partner calls did not finish.");
    for call in calls {
        println!("   call {} {}", call.id, describe(call));
        match call.status {
            CallStatus::Dead | CallStatus::Held => {
                println!("      try it again:  {}", admin(call.id, "retry"));
                println!("      give it up:    {}", admin(call.id, "cancel"));
            }
            CallStatus::Pending => {
                println!("      (waits for a retry, or for the call before it); give it up:");
                println!("      {}", admin(call.id, "cancel"));
            }
            _ => println!("      (a partner request in flight)"),
        }
    }
}
