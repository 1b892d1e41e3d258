//! `cargo bench --bench admin`: what each operator route and `/metrics` cost at the volume
//! a partner reaches after years (1M orders, 5M partner calls, 1M events), and what an
//! operators' flood costs webhooks meanwhile.
//!
//! The rows are written straight in SQL (triggers off, then the status counts taken
//! afresh, as `recount_statuses()` does for an operator who loads rows that way), then
//! the release binary serves them. Needs Postgres at 127.0.0.1:5432; writes nothing
//! outside its own database (`uchat_billing_admin`, dropped at the end).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use support::{percentile, signed, Service};

const DATABASE: &str = "uchat_billing_admin";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const ORDERS: i64 = 1_000_000;
/// Calls per order: create, change-plan, two add-ons, points.
const CALLS_PER_ORDER: i64 = 5;
/// Requests timed per route.
const SAMPLES: usize = 400;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let url = support::fresh_database(DATABASE).await?;
        let seeded = Instant::now();
        seed(&url).await?;
        println!(
            "Seeded {ORDERS} orders, {} calls, {ORDERS} events in {:.0} s\n",
            ORDERS * CALLS_PER_ORDER,
            seeded.elapsed().as_secs_f64()
        );
        let service = Service::start(
            &url,
            &[("ADMIN_TOKEN", ADMIN_TOKEN), ("PROCESS_EVENTS", "false")],
        )?;
        routes(&service.url).await?.print();
        flood(&service.url).await?.print();
        service.stop();
        drop_database().await
    })
}

/// Writes the rows with triggers and foreign-key checks off, then counts the statuses and
/// gathers the planner's statistics, as after a restore.
async fn seed(url: &str) -> anyhow::Result<()> {
    let mut db = PgConnection::connect(url).await?;
    db.execute("SET session_replication_role = replica").await?;
    // Statuses in the shares a long-running partner has: most orders active or canceled,
    // most calls succeeded, a few needing an operator.
    db.execute(
        "INSERT INTO orders (id, stripe_customer, email, name, workspace_id, status, attention,
                             created_at, updated_at)
         SELECT n, 'cus_' || (n % 400000), CASE WHEN n % 3 = 0 THEN 'Buyer' ELSE 'buyer' END
                    || (n % 400000) || '@example.com',
                'Buyer ' || n, CASE WHEN n % 10 <> 0 THEN n END,
                CASE WHEN n % 100 = 0 THEN 'needs_attention' WHEN n % 100 < 3 THEN 'pending'
                     WHEN n % 100 < 5 THEN 'refunded' WHEN n % 100 < 9 THEN 'paused'
                     WHEN n % 100 < 29 THEN 'canceled' ELSE 'active' END,
                CASE WHEN n % 100 = 0 THEN 'unknown price price_x' END,
                now() - make_interval(secs => 1000000 - n), now()
         FROM generate_series(1, 1000000) n",
    )
    .await?;
    db.execute(
        "INSERT INTO order_links (stripe_key, order_id)
         SELECT 'sub:sub_' || n, n FROM generate_series(1, 1000000) n",
    )
    .await?;
    db.execute(
        "INSERT INTO events (id, stripe_event_id, event_type, livemode, stripe_created, raw_body,
                             payload, status, error, order_id, order_keys, received_at)
         SELECT n, 'evt_' || n, 'customer.subscription.updated', false, 1700000000 + n,
                '{\"id\":\"evt_' || n || '\"}', jsonb_build_object('id', 'evt_' || n),
                CASE WHEN n % 1000 = 0 THEN 'failed' ELSE 'processed' END,
                CASE WHEN n % 1000 = 0 THEN 'no price' END,
                n, ARRAY['sub:sub_' || n], now() - make_interval(secs => 1000000 - n)
         FROM generate_series(1, 1000000) n",
    )
    .await?;
    db.execute(
        "INSERT INTO partner_calls (id, order_id, position, kind, body, event_id, status, attempts,
                                    next_attempt_at, last_error, ready, created_at, finished_at)
         SELECT c, o, p, (ARRAY['create', 'change-plan', 'add-addon', 'add-addon', 'topup-points'])[p],
                '{\"plan\": \"business\"}', o, s, 1,
                now() - make_interval(secs => c % 3600), CASE WHEN s IN ('dead', 'held') THEN 'HTTP 500' END,
                p = 1 OR s <> 'succeeded', now() - make_interval(secs => 5000000 - c),
                CASE WHEN s IN ('succeeded', 'dead', 'canceled') THEN now() END
         FROM (SELECT c, (c - 1) / 5 + 1 AS o, (c - 1) % 5 + 1 AS p,
                      CASE WHEN c % 1000 < 5 THEN 'dead' WHEN c % 1000 < 8 THEN 'held'
                           WHEN c % 1000 < 28 THEN 'pending' WHEN c % 1000 < 30 THEN 'running'
                           WHEN c % 1000 < 40 THEN 'canceled' ELSE 'succeeded' END AS s
               FROM generate_series(1, 5000000) c) calls",
    )
    .await?;
    // One try on record for the calls of one order in ten, and for every dead call.
    db.execute(
        "INSERT INTO attempts (call_id, attempt, started_at, duration_ms, http_status, outcome)
         SELECT id, 1, created_at, 120, 200, CASE WHEN status = 'dead' THEN 'dead' ELSE 'succeeded' END
         FROM partner_calls WHERE order_id % 10 = 0 OR status = 'dead'",
    )
    .await?;
    for table in ["orders", "events", "partner_calls", "attempts"] {
        db.execute(
            format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
                .as_str(),
        )
        .await?;
    }
    db.execute("SET session_replication_role = DEFAULT").await?;
    db.execute("SELECT recount_statuses()").await?;
    db.execute("VACUUM ANALYZE").await?;
    Ok(())
}

async fn drop_database() -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{}/postgres", support::SERVER)).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)").as_str())
        .await?;
    Ok(())
}

/// One route's latencies, in milliseconds.
struct Timed {
    route: &'static str,
    millis: Vec<f64>,
}

struct Routes(Vec<Timed>);

impl Routes {
    fn print(&self) {
        println!("## Each route, {SAMPLES} requests one after another (ms)\n");
        println!("| route | p50 | p99 | max |");
        println!("|---|---|---|---|");
        for timed in &self.0 {
            println!(
                "| `{}` | {:.1} | {:.1} | {:.1} |",
                timed.route,
                percentile(&timed.millis, 50.0),
                percentile(&timed.millis, 99.0),
                percentile(&timed.millis, 100.0),
            );
        }
        println!();
    }
}

/// Times `SAMPLES` requests of a route, the `n`th to `path(n)`; every answer must be 200.
async fn time_route(
    client: &reqwest::Client,
    base: &str,
    route: &'static str,
    method: Method,
    path: impl Fn(usize) -> String,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Timed> {
    let mut millis = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        let mut request = client
            .request(method.clone(), format!("{base}{}", path(n)))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = &body {
            request = request.body(body.clone());
        }
        let sent = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        millis.push(sent.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status == 200, "{route}: {status} {text}");
    }
    Ok(Timed { route, millis })
}

async fn routes(base: &str) -> anyhow::Result<Routes> {
    let client = reqwest::Client::new();
    let get = |route: &'static str, path: fn(usize) -> String| {
        time_route(&client, base, route, Method::GET, path, None)
    };
    let post = |route: &'static str, path: fn(usize) -> String| {
        time_route(&client, base, route, Method::POST, path, None)
    };
    // Ids spread over the tables; the changes each take rows of their own.
    let dry_run = serde_json::to_vec(&json!({
        "id": "evt_dry", "object": "event", "type": "customer.subscription.updated",
        "created": 1800000000, "api_version": "2025-03-31.basil", "livemode": false,
        "data": {"object": {"id": "sub_777", "object": "subscription", "customer": "cus_777",
            "status": "active", "cancel_at_period_end": false,
            "items": {"data": [{"price": {"id": "price_business_plus"}, "quantity": 1}]}}}
    }))?;
    let timed = vec![
        get("GET /admin/orders", |_| "/admin/orders".into()).await?,
        get("GET /admin/orders?status=active", |_| {
            "/admin/orders?status=active".into()
        })
        .await?,
        get("GET /admin/orders?status=needs_attention", |_| {
            "/admin/orders?status=needs_attention".into()
        })
        .await?,
        get("GET /admin/orders?email= (any case)", |n| {
            format!("/admin/orders?email=BUYER{}@example.COM", n * 997 % 400000)
        })
        .await?,
        get("GET /admin/orders?email= (no such buyer)", |n| {
            format!("/admin/orders?email=nobody{n}@example.com")
        })
        .await?,
        get("GET /admin/orders?customer=", |n| {
            format!("/admin/orders?customer=cus_{}", n * 991 % 400000)
        })
        .await?,
        get("GET /admin/orders?workspace_id=", |n| {
            format!("/admin/orders?workspace_id={}", n * 2503 + 1)
        })
        .await?,
        get("GET /admin/orders?cursor= (page deep in the table)", |n| {
            format!("/admin/orders?cursor={}", 500_000 - n * 1000)
        })
        .await?,
        get("GET /admin/orders/{id}", |n| {
            format!("/admin/orders/{}", n * 2477 + 10)
        })
        .await?,
        get("GET /admin/calls", |_| "/admin/calls".into()).await?,
        get("GET /admin/calls?status=succeeded", |_| {
            "/admin/calls?status=succeeded".into()
        })
        .await?,
        get("GET /admin/calls?status=dead", |_| {
            "/admin/calls?status=dead".into()
        })
        .await?,
        get("GET /admin/calls?status=held", |_| {
            "/admin/calls?status=held".into()
        })
        .await?,
        get("GET /admin/stats", |_| "/admin/stats".into()).await?,
        get("GET /metrics", |_| "/metrics".into()).await?,
        get("GET /admin/openapi.json", |_| "/admin/openapi.json".into()).await?,
        // Dead calls are ids 1000k+1 to 1000k+5 (k ≥ 0); pending ones 1000k+9 to 1000k+28;
        // failed events every 1000th.
        post("POST /admin/calls/{id}/retry", |n| {
            format!("/admin/calls/{}/retry", n * 1000 + 1001)
        })
        .await?,
        post("POST /admin/calls/{id}/cancel", |n| {
            format!("/admin/calls/{}/cancel", n * 1000 + 1010)
        })
        .await?,
        post("POST /admin/events/{id}/reprocess", |n| {
            format!("/admin/events/{}/reprocess", n * 1000 + 1000)
        })
        .await?,
        time_route(
            &client,
            base,
            "POST /admin/dry-run",
            Method::POST,
            |_| "/admin/dry-run".into(),
            Some(dry_run),
        )
        .await?,
    ];
    Ok(Routes(timed))
}

/// Webhook latency while 40 operators search by email as fast as they can.
struct Flood {
    /// Latencies of the webhooks answered 200.
    webhooks: Vec<f64>,
    /// Webhooks answered otherwise (503: no database connection in time).
    refused: usize,
    searches: Vec<f64>,
}

impl Flood {
    fn print(&self) {
        println!("## Webhooks during a flood of 40 concurrent email searches, 10 s (ms)\n");
        println!("| requests | count | p50 | p99 | max |");
        println!("|---|---|---|---|---|");
        for (what, millis) in [
            ("webhooks answered 200 (4 senders)", &self.webhooks),
            ("email searches", &self.searches),
        ] {
            println!(
                "| {what} | {} | {:.1} | {:.1} | {:.1} |",
                millis.len(),
                percentile(millis, 50.0),
                percentile(millis, 99.0),
                percentile(millis, 100.0),
            );
        }
        println!("\nWebhooks not answered 200: {}\n", self.refused);
    }
}

async fn flood(base: &str) -> anyhow::Result<Flood> {
    const LENGTH: Duration = Duration::from_secs(10);
    let client = reqwest::Client::new();
    let done = Arc::new(AtomicBool::new(false));
    let searchers: Vec<_> = (0..40)
        .map(|searcher| {
            let (client, done, base) = (client.clone(), done.clone(), base.to_owned());
            tokio::spawn(async move {
                let mut millis = Vec::new();
                let mut n = searcher;
                while !done.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let url = format!("{base}/admin/orders?email=buyer{}@example.com", n % 400000);
                    let response = client.get(url).bearer_auth(ADMIN_TOKEN).send().await;
                    if response.is_ok_and(|r| r.status() == 200) {
                        millis.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    n += 40;
                }
                millis
            })
        })
        .collect();
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (client, done, base) = (client.clone(), done.clone(), base.to_owned());
            tokio::spawn(async move {
                let (mut millis, mut refused) = (Vec::new(), 0);
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    let body = serde_json::to_vec(&json!({
                        "id": format!("evt_flood_{sender}_{n}"), "object": "event",
                        "type": "invoice.paid", "created": chrono::Utc::now().timestamp(),
                        "livemode": false, "data": {"object": {"id": format!("in_flood_{sender}_{n}")}}
                    }))
                    .expect("JSON serializes");
                    let sent = Instant::now();
                    let response = client
                        .post(format!("{base}/webhooks/stripe"))
                        .header("stripe-signature", signed(&body))
                        .body(body)
                        .send()
                        .await?;
                    if response.status() == 200 {
                        millis.push(sent.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        refused += 1;
                    }
                    n += 1;
                }
                anyhow::Ok((millis, refused))
            })
        })
        .collect();
    tokio::time::sleep(LENGTH).await;
    done.store(true, Ordering::Relaxed);
    let mut flood = Flood {
        webhooks: Vec::new(),
        refused: 0,
        searches: Vec::new(),
    };
    for sender in senders {
        let (millis, refused) = sender.await??;
        flood.webhooks.extend(millis);
        flood.refused += refused;
    }
    for searcher in searchers {
        flood.searches.extend(searcher.await?);
    }
    Ok(flood)
}
