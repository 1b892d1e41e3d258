//! `cargo bench --bench burst`: how a burst and a backlog drain when the service planned
//! its statements on empty tables, as it does in a new database (Postgres caches a
//! prepared statement's generic plan after five runs).
//!
//! 1. Burst: 1,500 subscription sales (3,000 signed events) posted as fast as the service
//!    accepts them, timed until the sandbox holds every workspace and every call is done.
//! 2. Distinct orders: 10,000 pending events (5,000 sales) appear at once; no partner.
//! 3. One order: 1,000, then 5,000 pending events of one subscription appear at once; no
//!    partner.
//!
//! In each case the release binary of the service first idles for a few seconds against
//! its new, empty database. Needs Postgres at 127.0.0.1:5432; writes nothing outside its
//! own database (`uchat_billing_burst`, dropped and made anew for each case).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use support::{sale_events, signed, Partner, Service, PARTNER_TOKEN};
use uchat_billing::stripe::decode::parse_event;

const DATABASE: &str = "uchat_billing_burst";
/// Long enough for any of the cases here, short enough that a service whose claims grow
/// with the backlog shows how far it got instead of running for hours.
const DEADLINE: Duration = Duration::from_secs(300);
/// How long the service idles before the load: every claim runs many times meanwhile.
const IDLE: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        burst().await?;
        distinct_orders().await?;
        // Linear: five times the backlog drains in about five times as long.
        println!("## Backlog: pending events of one order, no partner\n");
        Drain::header();
        one_order(1000).await?.print();
        one_order(5000).await?.print();
        println!();
        Ok(())
    })
}

/// The service on a new database; `env` adds to its settings. Returns once it has idled.
async fn idle_service(env: &[(&str, &str)]) -> anyhow::Result<(Service, PgPool)> {
    let url = support::fresh_database(DATABASE).await?;
    let mut settings = vec![("EVENT_SETTLE_MS", "0")];
    settings.extend_from_slice(env);
    let service = Service::start(&url, &settings)?;
    tokio::time::sleep(IDLE).await;
    Ok((service, uchat_billing::db::pool(&url, 2)?))
}

async fn burst() -> anyhow::Result<()> {
    const SALES: usize = 1500;
    let partner = Partner::start(0).await?;
    let (service, db) = idle_service(&[
        ("UCHAT_API_BASE", &partner.url),
        ("UCHAT_API_TOKEN", PARTNER_TOKEN),
    ])
    .await?;
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            let url = format!("{}/webhooks/stripe", service.url);
            tokio::spawn(async move {
                loop {
                    let sale = next.fetch_add(1, Ordering::Relaxed);
                    if sale >= SALES {
                        return;
                    }
                    for body in sale_events(sale, &format!("buyer{sale}@example.com")) {
                        let response = client
                            .post(&url)
                            .header("stripe-signature", signed(&body))
                            .body(body)
                            .send()
                            .await;
                        assert_eq!(response.map(|r| r.status().as_u16()).ok(), Some(200));
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await?;
    }
    let posted = started.elapsed();
    let drained = wait_for(started, DEADLINE, || async {
        let calls: i64 =
            sqlx::query_scalar("SELECT count(*) FROM partner_calls WHERE status = 'succeeded'")
                .fetch_one(&db)
                .await?;
        Ok(calls == 2 * SALES as i64)
    })
    .await?;
    let creates = partner.creates.lock().unwrap().clone();
    let last_create = creates.values().max().copied();
    service.stop();
    println!("## Burst: {SALES} sales, 3,000 events, posted by 32 senders\n");
    println!(
        "| events posted in | every workspace made in | every call done in | partner calls/s |"
    );
    println!("|---|---|---|---|");
    match (drained, last_create) {
        (Some(elapsed), Some(last_create)) => println!(
            "| {:.1} s | {:.1} s | {:.1} s | {:.0} |\n",
            posted.as_secs_f64(),
            last_create.duration_since(started).as_secs_f64(),
            elapsed.as_secs_f64(),
            (2 * SALES) as f64 / elapsed.as_secs_f64(),
        ),
        _ => println!(
            "| {:.1} s | not in {} s: {} of {SALES} | - | - |\n",
            posted.as_secs_f64(),
            DEADLINE.as_secs(),
            creates.len(),
        ),
    }
    Ok(())
}

async fn distinct_orders() -> anyhow::Result<()> {
    const SALES: usize = 5000;
    let (service, db) = idle_service(&[]).await?;
    let events: Vec<Vec<u8>> = (0..SALES)
        .flat_map(|sale| sale_events(sale, &format!("buyer{sale}@example.com")))
        .collect();
    let drain = drain(&db, &events).await?;
    service.stop();
    println!("## Backlog: 10,000 pending events of 5,000 distinct orders, no partner\n");
    Drain::header();
    drain.print();
    println!();
    Ok(())
}

/// One order's backlog of `events` events: a sale, then the buyer changing the bot
/// add-on's quantity back and forth, once a second.
async fn one_order(events: usize) -> anyhow::Result<Drain> {
    let (service, db) = idle_service(&[]).await?;
    let mut bodies = sale_events(0, "buyer0@example.com");
    let created = chrono::Utc::now().timestamp();
    bodies.extend((2..events).map(|n| {
        let bots = 1 + n % 2;
        serde_json::to_vec(&json!({"id": format!("evt_update_{n}"), "object": "event",
            "type": "customer.subscription.updated", "api_version": "2025-03-31.basil",
            "created": created + n as i64, "livemode": false, "data": {"object": {
                "id": "sub_bench_0", "object": "subscription", "customer": "cus_bench_0",
                "status": "active", "cancel_at_period_end": false, "pause_collection": null,
                "items": {"data": [{"price": {"id": "price_business"}, "quantity": 1},
                                   {"price": {"id": "price_bot"}, "quantity": bots}]}}}}))
        .expect("JSON serializes")
    }));
    let drain = drain(&db, &bodies).await?;
    service.stop();
    Ok(drain)
}

/// How a backlog drained: when each thousand of its events was done.
struct Drain {
    events: usize,
    thousands: Vec<Duration>,
    done: usize,
}

impl Drain {
    fn header() {
        println!("| events | drained in | events/s | ms per 1,000: first / last |");
        println!("|---|---|---|---|");
    }

    fn print(&self) {
        match self.thousands.last() {
            Some(total) if self.done == self.events => {
                let first = self.thousands[0];
                let n = self.thousands.len();
                let last = *total
                    - if n > 1 {
                        self.thousands[n - 2]
                    } else {
                        Duration::ZERO
                    };
                println!(
                    "| {} | {:.1} s | {:.0} | {:.0} / {:.0} |",
                    self.events,
                    total.as_secs_f64(),
                    self.events as f64 / total.as_secs_f64(),
                    first.as_secs_f64() * 1000.0,
                    last.as_secs_f64() * 1000.0,
                );
            }
            _ => println!(
                "| {} | not in {} s: {} done | - | - |",
                self.events,
                DEADLINE.as_secs(),
                self.done
            ),
        }
    }
}

/// Stores the events at once, as intake would have stored them, and times the processor
/// through them.
async fn drain(db: &PgPool, bodies: &[Vec<u8>]) -> anyhow::Result<Drain> {
    store_at_once(db, bodies).await?;
    let started = Instant::now();
    let mut thousands = Vec::new();
    let mut done = 0;
    while done < bodies.len() && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let processed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE status <> 'pending'")
                .fetch_one(db)
                .await?;
        done = processed as usize;
        while thousands.len() < done / 1000 {
            thousands.push(started.elapsed());
        }
    }
    Ok(Drain {
        events: bodies.len(),
        thousands,
        done,
    })
}

/// One statement, so every event appears in the queue at the same moment.
async fn store_at_once(db: &PgPool, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut ids: Vec<String> = Vec::new();
    let mut types: Vec<String> = Vec::new();
    let mut created: Vec<i64> = Vec::new();
    let mut raw: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for body in bodies {
        let event = parse_event(body)?;
        keys.push(event.order_links().join(" "));
        ids.push(event.id);
        types.push(event.event_type);
        created.push(event.created);
        raw.push(String::from_utf8(body.clone())?);
    }
    sqlx::query(
        "INSERT INTO events (stripe_event_id, event_type, livemode, stripe_created, raw_body,
                             payload, status, order_keys)
         SELECT id, type, false, created, raw, raw::jsonb, 'pending', string_to_array(keys, ' ')
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
              AS e(id, type, created, raw, keys)",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&created)
    .bind(&raw)
    .bind(&keys)
    .execute(db)
    .await?;
    Ok(())
}

/// Polls `done` until it answers true or `deadline` has passed since `started`; the time
/// since `started`, or `None` past the deadline.
async fn wait_for<F, Fut>(
    started: Instant,
    deadline: Duration,
    mut done: F,
) -> anyhow::Result<Option<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    while started.elapsed() < deadline {
        if done().await? {
            return Ok(Some(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}
