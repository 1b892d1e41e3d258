//! What the benchmarks share: the service binary as a child process, the sandbox as
//! the partner, fresh databases, and signed sales.

// Each benchmark compiles this module for itself and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use uchat_billing::sandbox::{self, Faults, SandboxConfig};
use uchat_billing::secret::Secret;
use uchat_billing::stripe::signature;

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const SECRET: &str = "whsec_bench";
pub const PARTNER_TOKEN: &str = "bench-token";
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Drops the database `name` if it exists and makes it anew, migrated; returns its URL.
pub async fn fresh_database(name: &str) -> anyhow::Result<String> {
    let url = format!("{SERVER}/{name}");
    let mut admin = PgConnection::connect(&format!("{SERVER}/postgres")).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    let status = Command::new(env!("CARGO_BIN_EXE_uchat-billing"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .status()?;
    anyhow::ensure!(status.success(), "migrate failed");
    Ok(url)
}

/// The release binary of the service, with its peak RSS watched.
pub struct Service {
    child: Child,
    pub url: String,
}

impl Service {
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> anyhow::Result<Service> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_uchat-billing"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("CATALOG_PATH", format!("{FIXTURES}/catalog.toml"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Service { child, url })
    }

    /// Stops the service; returns its peak RSS in KiB.
    pub fn stop(mut self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let peak = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        peak
    }
}

/// The sandbox, with the arrival time of each workspace create by owner email.
pub struct Partner {
    pub url: String,
    pub creates: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Partner {
    pub async fn start(latency_ms: u64) -> anyhow::Result<Partner> {
        let (router, _) = sandbox::router(SandboxConfig {
            token: PARTNER_TOKEN.into(),
            credit: 1e12,
            faults: Faults {
                latency_ms,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        });
        let creates = Arc::new(Mutex::new(HashMap::new()));
        let router = router.layer(axum::middleware::from_fn_with_state(
            creates.clone(),
            note_create,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Partner { url, creates })
    }
}

async fn note_create(
    State(creates): State<Arc<Mutex<HashMap<String, Instant>>>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/partner/workspace/create" {
        return next.run(request).await;
    }
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    if let Some(email) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|b| b["email"].as_str().map(str::to_owned))
    {
        creates.lock().unwrap().entry(email).or_insert(arrived);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

pub fn signed(body: &[u8]) -> String {
    signature::header_for(&Secret::new(SECRET), chrono::Utc::now().timestamp(), body)
}

/// A subscription sale in the 2025+ shape: Checkout completed, then the subscription.
pub fn sale_events(sale: usize, email: &str) -> Vec<Vec<u8>> {
    let now = chrono::Utc::now().timestamp();
    let (customer, subscription) = (format!("cus_bench_{sale}"), format!("sub_bench_{sale}"));
    let event = |n: usize, event_type: &str, object: Value| {
        serde_json::to_vec(&json!({"id": format!("evt_sale_{sale}_{n}"), "object": "event", "type": event_type,
            "api_version": "2025-03-31.basil", "created": now, "livemode": false, "data": {"object": object}}))
        .expect("JSON serializes")
    };
    vec![
        event(
            1,
            "checkout.session.completed",
            json!({"id": format!("cs_bench_{sale}"), "object": "checkout.session",
            "mode": "subscription", "payment_status": "paid", "customer": customer, "subscription": subscription,
            "customer_details": {"email": email, "name": "Bench Buyer"}}),
        ),
        event(
            2,
            "customer.subscription.created",
            json!({"id": subscription, "object": "subscription",
            "customer": customer, "status": "active", "cancel_at_period_end": false, "pause_collection": null,
            "items": {"data": [{"price": {"id": "price_business"}, "quantity": 1}]}}),
        ),
    ]
}

/// The `p`th percentile (0 to 100) of `values`, nearest rank; NaN when there are none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}
