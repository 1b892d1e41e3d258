//! `cargo bench --bench pipeline`: the service against its physical limits, on loopback.
//!
//! 1. Intake: signed events of real sample shapes posted at concurrency 1, 8 and 32,
//!    against `pgbench` running the same INSERT with the same payloads and concurrency.
//! 2. End to end: sales posted and delivered to the in-process UChat sandbox.
//! 3. Slow partner: the same, with 200 ms per partner request and 64 calls in flight.
//! 4. Memory: the service's peak RSS during 1 and 2.
//!
//! Needs Postgres at 127.0.0.1:5432 and `pgbench`. Writes nothing outside its own
//! database (`uchat_billing_bench`, dropped and made anew).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uchat_billing::sandbox::{self, Faults, SandboxConfig};
use uchat_billing::secret::Secret;
use uchat_billing::stripe::signature;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DATABASE: &str = "uchat_billing_bench";
const SECRET: &str = "whsec_bench";
const PARTNER_TOKEN: &str = "bench-token";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// Intake rounds per concurrency, and events per round: the machine's noise is large
/// next to a single round.
const ROUNDS: usize = 5;
const EVENTS: usize = 3000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let url = format!("{SERVER}/{DATABASE}");
    let mut admin = PgConnection::connect(&format!("{SERVER}/postgres")).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)").as_str())
        .await?;
    let status = Command::new(env!("CARGO_BIN_EXE_uchat-billing"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .status()?;
    anyhow::ensure!(status.success(), "migrate failed");
    let db = uchat_billing::db::pool(&url, 4)?;

    println!("## Intake: events/s and latency; pgbench runs the same INSERT\n");
    println!("Each row: {ROUNDS} rounds of {EVENTS} events, the service and pgbench taking turns; medians.\n");
    println!(
        "| concurrency | service events/s | p50 ms | p99 ms | pgbench tps | service / pgbench |"
    );
    println!("|---|---|---|---|---|---|");
    let payloads = sample_payloads()?;
    let scripts = pgbench_scripts(&payloads)?;
    let intake = Service::start(&url, &[("PROCESS_EVENTS", "false")])?;
    let mut counter = 0;
    for concurrency in [1, 8, 32] {
        let (mut service, mut pgbench) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let bodies: Vec<Vec<u8>> = (0..EVENTS)
                .map(|_| {
                    counter += 1;
                    payloads[counter % payloads.len()].with_id(&format!("\"evt_bench_{counter}\""))
                })
                .collect();
            service.push(post_all(&intake.url, bodies, concurrency).await);
            pgbench.push(run_pgbench(&url, &scripts, concurrency, EVENTS)?);
        }
        service.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
        let load = &service[ROUNDS / 2];
        let pgbench = percentile(&pgbench, 50.0);
        println!(
            "| {concurrency} | {:.0} | {:.2} | {:.2} | {pgbench:.0} | {:.2} |",
            load.per_second(),
            load.percentile(50.0),
            load.percentile(99.0),
            load.per_second() / pgbench,
        );
    }
    let intake_peak = intake.stop();

    for (title, latency_ms, delivery_concurrency, sales) in [
        (
            "End to end: no partner latency, DELIVERY_CONCURRENCY=8",
            0,
            "8",
            2000,
        ),
        (
            "Slow partner: 200 ms per request, DELIVERY_CONCURRENCY=64",
            200,
            "64",
            1000,
        ),
    ] {
        sqlx::query("TRUNCATE events, orders, order_links, partner_calls, attempts CASCADE")
            .execute(&db)
            .await?;
        // Flush the intake phase's writes now, not in the middle of the measurement.
        sqlx::query("CHECKPOINT").execute(&db).await?;
        let partner = Partner::start(latency_ms).await?;
        let service = Service::start(
            &url,
            &[
                ("UCHAT_API_BASE", partner.url.as_str()),
                ("UCHAT_API_TOKEN", PARTNER_TOKEN),
                ("DELIVERY_CONCURRENCY", delivery_concurrency),
                ("EVENT_SETTLE_MS", "0"),
            ],
        )?;
        // Throughput: a burst of sales, 32 senders at once.
        let burst = end_to_end(&service.url, &db, &partner, 0..sales, 32, None).await?;
        // Latency: sales at a pace the pipeline keeps up with (25 a second), so the time
        // from the 200 to the partner's first call is not time spent queueing.
        let paced = 1_000_000..1_000_000 + 200;
        let paced = end_to_end(
            &service.url,
            &db,
            &partner,
            paced,
            1,
            Some(Duration::from_millis(40)),
        )
        .await?;
        let peak = service.stop();
        println!("\n## {title}\n");
        println!("| burst sales | partner calls | calls/s | burst: first call after 200, p50 / p99 ms | paced (25 sales/s): p50 / p99 ms | service peak RSS MiB |");
        println!("|---|---|---|---|---|---|");
        println!(
            "| {sales} | {} | {:.0} | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} |",
            burst.calls,
            burst.calls as f64 / burst.elapsed.as_secs_f64(),
            burst.first_call.percentile(50.0),
            burst.first_call.percentile(99.0),
            paced.first_call.percentile(50.0),
            paced.first_call.percentile(99.0),
            peak as f64 / 1024.0,
        );
    }
    println!(
        "\nIntake service peak RSS: {:.1} MiB",
        intake_peak as f64 / 1024.0
    );
    Ok(())
}

/// A real sample event (both API eras) as Stripe sends it: pretty-printed JSON, with a
/// placeholder where its id goes.
struct Payload {
    text: String,
    id: String,
}

impl Payload {
    fn with_id(&self, id: &str) -> Vec<u8> {
        self.text.replacen(&self.id, id, 1).into_bytes()
    }
}

fn sample_payloads() -> anyhow::Result<Vec<Payload>> {
    let mut payloads = Vec::new();
    for name in [
        "checkout.session.completed.json",
        "invoice.paid.json",
        "customer.subscription.updated.json",
        "customer.subscription.deleted.json",
        "charge.refunded.json",
        "refund.created.json",
        "charge.dispute.created.json",
    ] {
        let text = std::fs::read_to_string(format!("{FIXTURES}/stripe/{name}"))?;
        let id = serde_json::from_str::<Value>(&text)?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        payloads.push(Payload {
            text,
            id: format!("\"{id}\""),
        });
    }
    let invoice: Value = serde_json::from_slice(&std::fs::read(format!(
        "{FIXTURES}/stripe/invoice.payment_failed.object.json"
    ))?)?;
    let event = json!({"id": "evt_basil", "object": "event", "type": "invoice.payment_failed",
        "api_version": "2025-03-31.basil", "created": 1_750_000_000, "livemode": false, "data": {"object": invoice}});
    payloads.push(Payload {
        text: serde_json::to_string_pretty(&event)?,
        id: "\"evt_basil\"".into(),
    });
    Ok(payloads)
}

/// One pgbench script per payload: the INSERT the service makes, with a fresh id. The
/// payloads are pretty-printed, so no `:name` in them reads as a pgbench variable.
fn pgbench_scripts(payloads: &[Payload]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dir = std::env::temp_dir().join("uchat-billing-pgbench");
    std::fs::create_dir_all(&dir)?;
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    payloads
        .iter()
        .enumerate()
        .map(|(n, payload)| {
            let body = String::from_utf8(payload.with_id("\"evt_pgbench\""))?;
            let event = uchat_billing::stripe::decode::parse_event(body.as_bytes())?;
            let keys = event.order_links();
            let sql = format!(
                "\\set n random(1, 2000000000)\n\
                 INSERT INTO events (stripe_event_id, event_type, api_version, livemode, stripe_created, raw_body, payload, status, order_keys) \
                 VALUES ('evt_pgbench_' || :client_id || '_' || :n, {}, {}, false, {}, {}, {}::jsonb, 'pending', {}::text[]) \
                 ON CONFLICT (stripe_event_id) DO NOTHING;\n",
                quote(&event.event_type),
                event.api_version.as_deref().map_or("NULL".into(), quote),
                event.created,
                quote(&body),
                quote(&body),
                order_keys(&keys),
            );
            let path = dir.join(format!("insert_{n}.sql"));
            std::fs::write(&path, sql)?;
            Ok(path)
        })
        .collect()
}

/// The order keys as an SQL array, with the colon of `sub:sub_123` kept apart from the
/// id, which pgbench would otherwise read as a `:variable`.
fn order_keys(keys: &[String]) -> String {
    let items: Vec<String> = keys
        .iter()
        .map(|key| {
            let (kind, id) = key.split_once(':').unwrap_or((key, ""));
            format!("'{kind}' || ':' || '{id}'")
        })
        .collect();
    format!("ARRAY[{}]", items.join(", "))
}

/// pgbench's transactions per second for `count` INSERTs at `concurrency`.
fn run_pgbench(
    url: &str,
    scripts: &[std::path::PathBuf],
    concurrency: usize,
    count: usize,
) -> anyhow::Result<f64> {
    let mut command = Command::new("pgbench");
    // Simple protocol: each INSERT carries its payload over the wire, as the service's
    // does (a prepared pgbench statement would hold the payload as a constant).
    command.args([
        "-n",
        "-M",
        "simple",
        "-c",
        &concurrency.to_string(),
        "-j",
        &concurrency.min(2).to_string(),
    ]);
    command.args(["-t", &(count / concurrency).to_string()]);
    for script in scripts {
        command.arg("-f").arg(script);
    }
    let output = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output:\n{text}"))
}

/// The release binary of the service, with its peak RSS watched.
struct Service {
    child: Child,
    url: String,
}

impl Service {
    fn start(database_url: &str, env: &[(&str, &str)]) -> anyhow::Result<Service> {
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
    fn stop(mut self) -> u64 {
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
struct Partner {
    url: String,
    creates: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Partner {
    async fn start(latency_ms: u64) -> anyhow::Result<Partner> {
        let (router, _) = sandbox::router(SandboxConfig {
            token: PARTNER_TOKEN.into(),
            credit: 1e12,
            faults: Faults {
                latency_ms,
                ..Faults::default()
            },
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

/// Latencies in milliseconds and the wall time they took.
struct Load {
    latencies: Vec<f64>,
    elapsed: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

fn signed(body: &[u8]) -> String {
    signature::header_for(&Secret::new(SECRET), chrono::Utc::now().timestamp(), body)
}

/// Posts every body, `concurrency` at a time; every answer must be 200.
async fn post_all(service: &str, bodies: Vec<Vec<u8>>, concurrency: usize) -> Load {
    let client = reqwest::Client::new();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, bodies, next, url) = (
                client.clone(),
                bodies.clone(),
                next.clone(),
                format!("{service}/webhooks/stripe"),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("stripe-signature", signed(body))
                        .body(body.clone())
                        .send()
                        .await;
                    assert_eq!(response.map(|r| r.status().as_u16()).ok(), Some(200));
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    Load {
        latencies,
        elapsed: started.elapsed(),
    }
}

struct EndToEnd {
    calls: i64,
    elapsed: Duration,
    first_call: Load,
}

/// Subscription sales (checkout, then subscription created), each needing a workspace
/// create and a change-plan, posted by `senders` tasks; with `pace`, each sender waits
/// that long between sales. Returns when every call they need has succeeded.
async fn end_to_end(
    service: &str,
    db: &PgPool,
    partner: &Partner,
    sales: std::ops::Range<usize>,
    senders: usize,
    pace: Option<Duration>,
) -> anyhow::Result<EndToEnd> {
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM partner_calls WHERE status = 'succeeded'",
        )
        .fetch_one(db)
        .await
    };
    let before = succeeded().await?;
    let client = reqwest::Client::new();
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(sales.start));
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (client, next, accepted, url, end) = (
                client.clone(),
                next.clone(),
                accepted.clone(),
                format!("{service}/webhooks/stripe"),
                sales.end,
            );
            tokio::spawn(async move {
                loop {
                    let sale = next.fetch_add(1, Ordering::Relaxed);
                    if sale >= end {
                        return;
                    }
                    let email = format!("buyer{sale}@example.com");
                    for body in sale_events(sale, &email) {
                        let response = client
                            .post(&url)
                            .header("stripe-signature", signed(&body))
                            .body(body)
                            .send()
                            .await;
                        assert_eq!(response.map(|r| r.status().as_u16()).ok(), Some(200));
                    }
                    accepted.lock().unwrap().insert(email, Instant::now());
                    if let Some(pace) = pace {
                        tokio::time::sleep(pace).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let expected = before + 2 * sales.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(600);
    let calls = loop {
        let done = succeeded().await?;
        if done >= expected {
            break done - before;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {expected} calls done"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    let creates = partner.creates.lock().unwrap();
    let accepted = accepted.lock().unwrap();
    let latencies = accepted
        .iter()
        .filter_map(|(email, at)| {
            creates
                .get(email)
                .map(|arrived| arrived.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    Ok(EndToEnd {
        calls,
        elapsed,
        first_call: Load { latencies, elapsed },
    })
}

/// A subscription sale in the 2025+ shape: Checkout completed, then the subscription.
fn sale_events(sale: usize, email: &str) -> Vec<Vec<u8>> {
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
