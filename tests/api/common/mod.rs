//! `spawn_app`: the real service on port 0, against a fresh database of its own.

pub mod browser;
pub mod db_proxy;
pub mod fake_stripe;
mod leftovers;
pub mod redelivery;
pub mod service;
pub mod story;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection, PgPool};
use uchat_billing::config::{Config, Delivery, Limits};
use uchat_billing::delivery::{DeliverySettings, RetryPolicy, Worker};
use uchat_billing::partner::PartnerClient;
use uchat_billing::plan::Catalog;
use uchat_billing::processor::Processor;
use uchat_billing::secret::Secret;
use uchat_billing::startup::Application;
use uchat_billing::stripe::signature;

pub const WEBHOOK_SECRET: &str = "whsec_test_primary";
pub const ADMIN_TOKEN: &str = "admin-test-token-0123456789abcdef";

/// Where the tests find Postgres; each test gets a database of its own there.
fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The `host:port` the tests' Postgres listens on.
pub fn database_server_address() -> String {
    let url = reqwest::Url::parse(&server_url()).expect("TEST_DATABASE_SERVER is a URL");
    format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    )
}

pub struct TestApp {
    pub address: String,
    pub db: PgPool,
    /// Dropped with the app; `None` when the app has no reachable database.
    pub database: Option<TestDatabase>,
    pub client: reqwest::Client,
    /// The app's event processor; tests drive it (`drain`) unless background work is on.
    pub processor: Processor,
    /// The app's delivery worker, when the test configured a partner.
    pub worker: Option<Worker>,
    /// What the test leaves behind on purpose; anything else fails it when the app drops.
    expected: leftovers::Expected,
}

pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

/// A fresh, empty database, dropped again when the value is dropped.
pub async fn fresh_database() -> TestDatabase {
    let name = format!("uchat_billing_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("Postgres must be running for the tests (see README)");
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap();
    TestDatabase {
        url: format!("{}/{name}", server_url()),
        name,
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn test_catalog() -> Catalog {
    Catalog::load(&fixture_path("catalog.toml")).unwrap()
}

/// The service's settings for a test: port 0, the test catalog, no settle delay, and
/// no background work (tests drive the processor).
pub fn config(database_url: &str, secrets: &[&str]) -> Config {
    Config {
        database_url: database_url.to_owned(),
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        webhook_secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        catalog: Arc::new(test_catalog()),
        stripe_api: None,
        backfill_every: None,
        settle: Duration::ZERO,
        delivery: None,
        credit_poll: Duration::ZERO,
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        metrics_public: false,
        console_secure_cookie: false,
        paid_not_provisioned_after: Duration::from_secs(15 * 60),
        background_work: false,
        limits: Limits::default(),
        store: None,
        reconcile: Default::default(),
        uchat_webhook_token: None,
    }
}

pub const PARTNER_TOKEN: &str = "partner-test-token";

/// Delivery to a partner at `base`, with time scaled down: a short request timeout and
/// retry waits in milliseconds.
pub fn delivery_to(base: &str) -> Delivery {
    delivery_with_timeout(base, Duration::from_millis(500))
}

/// [`delivery_to`] with another partner request timeout; the lease is four of them.
pub fn delivery_with_timeout(base: &str, timeout: Duration) -> Delivery {
    let mut settings = DeliverySettings::for_timeout(timeout);
    settings.retry = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
    };
    settings.held_retry = Duration::from_millis(100);
    settings.max_poll = Duration::from_millis(100);
    // Longer than one try (up to three requests), short enough for crash tests.
    settings.lease = timeout * 4;
    Delivery {
        partner: PartnerClient::new(base, Secret::new(PARTNER_TOKEN), timeout).unwrap(),
        settings,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with_secrets(secrets: &[&str]) -> TestApp {
    spawn_app_with(|config| {
        config.webhook_secrets = secrets.iter().map(|s| Secret::new(*s)).collect();
    })
    .await
}

/// The app with its test settings changed by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = fresh_database().await;
    let mut config = config(&database.url, &[WEBHOOK_SECRET]);
    adjust(&mut config);
    let app = Application::build(&config).await.expect("app builds");
    let db = uchat_billing::db::pool(&database.url, 2).unwrap();
    start(app, db, Some(database))
}

/// The service over a pool whose database cannot be reached.
pub async fn spawn_app_without_database() -> TestApp {
    let config = config("postgres://postgres@127.0.0.1:1/nowhere", &[WEBHOOK_SECRET]);
    let db = uchat_billing::db::pool(&config.database_url, 1).unwrap();
    let app = Application::connect(&config).await.unwrap();
    start(app, db, None)
}

fn start(app: Application, db: PgPool, database: Option<TestDatabase>) -> TestApp {
    let address = format!("http://{}", app.local_addr());
    let processor = app.processor();
    let worker = app.worker();
    tokio::spawn(app.run(std::future::pending()));
    TestApp {
        address,
        db,
        database,
        client: reqwest::Client::new(),
        processor,
        worker,
        expected: Default::default(),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

/// Drops a test database, connections and all.
pub fn drop_database(name: &str) {
    let statement = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
    let _ = on_own_runtime(async move {
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", server_url())).await {
            let _ = admin.execute(statement.as_str()).await;
        }
    });
}

/// Runs `work` on a thread and runtime of its own, for `Drop`, which may run inside a
/// test's runtime, where blocking on a future panics. `Err` if `work` panicked.
fn on_own_runtime<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> std::thread::Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs as Stripe signs: `t=<now>,v1=<hmac>` with the first configured secret.
pub fn sign(body: &[u8]) -> String {
    signature::header_for(&Secret::new(WEBHOOK_SECRET), now(), body)
}

impl TestApp {
    pub async fn post_webhook(
        &self,
        body: impl Into<Vec<u8>>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/stripe", self.address))
            .header("content-type", "application/json")
            .body(body.into());
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        request.send().await.expect("request reaches the app")
    }

    /// Posts a body signed the way Stripe signs it.
    pub async fn post_stripe_event(&self, body: &[u8]) -> reqwest::Response {
        self.post_webhook(body.to_vec(), Some(&sign(body))).await
    }

    /// Posts each event, signed, and checks it was accepted.
    pub async fn post_stripe_events(&self, events: &[Vec<u8>]) {
        for event in events {
            assert_eq!(self.post_stripe_event(event).await.status(), 200);
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// A request to the app with the admin token.
    pub fn admin_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// `GET` with the admin token: the status and the JSON body.
    pub async fn admin_get(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        json_answer(self.admin_request(reqwest::Method::GET, path)).await
    }

    /// `POST` of a JSON body with the admin token: the status and the JSON body.
    pub async fn admin_post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        json_answer(self.admin_request(reqwest::Method::POST, path).json(body)).await
    }

    /// `GET /metrics` with the admin token: the text.
    pub async fn metrics(&self) -> String {
        let response = self.admin_request(reqwest::Method::GET, "/metrics");
        response.send().await.unwrap().text().await.unwrap()
    }

    /// The line of a metric series (`name` or `name{labels}`) in `/metrics`.
    pub async fn metric_line(&self, series: &str) -> Option<String> {
        let text = self.metrics().await;
        let line = text.lines().find(|line| {
            line.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' '))
        });
        line.map(str::to_owned)
    }

    /// Posts the events, applies them and delivers every call they queue.
    pub async fn run_events(&self, events: &[Vec<u8>]) {
        self.post_stripe_events(events).await;
        self.process_events().await;
        self.deliver_all().await;
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

/// Sends the request; every answer of the app, error or not, is JSON.
async fn json_answer(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request.send().await.expect("request reaches the app");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text}"));
    (status, body)
}

pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stripe")
}

/// The samples that are whole Stripe events (the others are a bare object, a fixture set
/// and a signature vector).
pub const EVENT_SAMPLES: &[&str] = &[
    "checkout.session.completed.json",
    "invoice.paid.json",
    "customer.subscription.updated.json",
    "customer.subscription.deleted.json",
    "charge.refunded.json",
    "refund.created.json",
    "charge.dispute.created.json",
];

/// A sample's exact bytes.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(samples_dir().join(name)).unwrap_or_else(|e| panic!("sample {name}: {e}"))
}

/// An event envelope around an object, as Stripe would send it.
pub fn envelope(id: &str, event_type: &str, created: i64, object: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "livemode": false,
        "type": event_type,
        "data": { "object": object },
    }))
    .unwrap()
}

/// A planned call as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedCall {
    pub kind: String,
    pub body: serde_json::Value,
}

impl TestApp {
    /// Every queued call of every order, in each order's sequence.
    pub async fn queued_calls(&self) -> Vec<QueuedCall> {
        sqlx::query_as("SELECT kind, body FROM partner_calls ORDER BY order_id, position")
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    /// Processes every stored event.
    pub async fn process_events(&self) {
        self.processor.drain().await.unwrap();
    }

    /// Empties every table, so one app serves many generated cases.
    pub async fn reset(&self) {
        sqlx::query("TRUNCATE events, orders, order_links, partner_calls CASCADE")
            .execute(&self.db)
            .await
            .unwrap();
    }
}

/// The stateful UChat fake on a port of its own; its token is `PARTNER_TOKEN`.
pub async fn spawn_sandbox(
    faults: uchat_billing::sandbox::Faults,
) -> (String, uchat_billing::sandbox::SandboxHandle) {
    let config = uchat_billing::sandbox::SandboxConfig {
        token: PARTNER_TOKEN.to_owned(),
        credit: 1_000_000.0,
        faults,
        ..Default::default()
    };
    let (router, handle) = uchat_billing::sandbox::router(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, handle)
}

/// The app delivering to the partner at `base`.
pub async fn spawn_app_delivering_to(base: &str) -> TestApp {
    let delivery = delivery_to(base);
    spawn_app_with(move |config| config.delivery = Some(delivery)).await
}

impl TestApp {
    pub fn worker(&self) -> &Worker {
        self.worker.as_ref().expect("the test configured delivery")
    }

    /// An order with `calls` queued directly, as the processor would queue them.
    pub async fn queue_calls(
        &self,
        workspace_id: Option<i64>,
        email: &str,
        calls: &[(&str, serde_json::Value)],
    ) -> i64 {
        let order_id: i64 = sqlx::query_scalar(
            "INSERT INTO orders (email, workspace_id, status) VALUES ($1, $2, 'active') RETURNING id",
        )
        .bind(email)
        .bind(workspace_id)
        .fetch_one(&self.db)
        .await
        .unwrap();
        for (position, (kind, body)) in calls.iter().enumerate() {
            sqlx::query("INSERT INTO partner_calls (order_id, position, kind, body) VALUES ($1, $2, $3, $4)")
                .bind(order_id)
                .bind(position as i32 + 1)
                .bind(kind)
                .bind(body)
                .execute(&self.db)
                .await
                .unwrap();
        }
        order_id
    }

    /// Runs the worker until no call is running or waiting its turn, waiting out retry
    /// delays. Calls behind a dead or held call stay pending.
    pub async fn deliver_all(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.worker().deliver_due().await.unwrap();
            let unfinished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM partner_calls c
                 WHERE c.status = 'running'
                    OR (c.status = 'pending' AND NOT EXISTS (
                        SELECT 1 FROM partner_calls earlier
                        WHERE earlier.order_id = c.order_id AND earlier.position < c.position
                          AND earlier.status NOT IN ('succeeded', 'canceled')))",
            )
            .fetch_one(&self.db)
            .await
            .unwrap();
            if unfinished == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "calls still unfinished after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An order's status and the reason it needs attention, if it does; `None` for the
    /// only order there is.
    pub async fn order_status(&self, order_id: Option<i64>) -> (String, Option<String>) {
        sqlx::query_as("SELECT status, attention FROM orders WHERE $1::bigint IS NULL OR id = $1")
            .bind(order_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// (kind, status, attempts) of an order's calls, in order.
    pub async fn call_states(&self, order_id: i64) -> Vec<(String, String, i32)> {
        sqlx::query_as("SELECT kind, status, attempts FROM partner_calls WHERE order_id = $1 ORDER BY position")
            .bind(order_id)
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    /// (outcome, http status) of each try of an order's calls, in order.
    pub async fn attempt_outcomes(&self, order_id: i64) -> Vec<(String, Option<i32>)> {
        sqlx::query_as(
            "SELECT a.outcome, a.http_status FROM attempts a JOIN partner_calls c ON c.id = a.call_id
             WHERE c.order_id = $1 ORDER BY c.position, a.id",
        )
        .bind(order_id)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }
}

/// Waits until every stored event has been applied and every planned call has succeeded,
/// failing at once on a dead call, and after `timeout` with what is left.
pub async fn wait_until_all_delivered(db: &PgPool, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT 'event', status, count(*) FROM events WHERE status IN ('pending', 'failed') GROUP BY status
             UNION ALL
             SELECT 'call', status, count(*) FROM partner_calls WHERE status <> 'succeeded' GROUP BY status",
        )
        .fetch_all(db)
        .await
        .unwrap();
        if left.is_empty() {
            return;
        }
        let broken: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT kind, last_error FROM partner_calls WHERE status = 'dead'
             UNION ALL SELECT event_type, error FROM events WHERE status = 'failed'",
        )
        .fetch_all(db)
        .await
        .unwrap();
        assert!(broken.is_empty(), "dead calls or failed events: {broken:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "unfinished after {timeout:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
