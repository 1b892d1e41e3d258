//! `cargo bench --bench pipeline`: the service against its physical limits, on loopback.
//!
//! 1. Intake: signed events of real sample shapes posted at concurrency 1, 8 and 32, to
//!    the default service (processing and delivery on) and to an intake-only one, against
//!    `pgbench` running the same INSERT with the same payloads and concurrency.
//! 2. End to end: sales posted and delivered to the in-process UChat sandbox.
//! 3. Slow partner: the same, with 200 ms per partner request and 64 calls in flight.
//! 4. Memory: the service's peak RSS during 1 and 2.
//!
//! Needs Postgres at 127.0.0.1:5432 and `pgbench`. Writes nothing outside its own
//! databases (`uchat_billing_bench` and `uchat_billing_bench_intake`, dropped and made
//! anew).

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use support::{percentile, sale_events, signed, Partner, Service, FIXTURES, PARTNER_TOKEN};

const DATABASE: &str = "uchat_billing_bench";
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

/// The sections, by the name that runs one alone: `cargo bench --bench pipeline -- end-to-end`.
const SECTIONS: [&str; 4] = ["intake", "end-to-end", "slow-partner", "delivery-sql"];

async fn run() -> anyhow::Result<()> {
    // Cargo passes `--bench`; any other argument names sections to run.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    if let Some(unknown) = chosen
        .iter()
        .find(|name| !SECTIONS.contains(&name.as_str()))
    {
        anyhow::bail!("no section {unknown}; sections: {}", SECTIONS.join(", "));
    }
    let runs = |section: &str| chosen.is_empty() || chosen.iter().any(|name| name == section);
    let url = support::fresh_database(DATABASE).await?;
    let db = uchat_billing::db::pool(&url, 4)?;
    if runs("intake") {
        intake(&url, &db).await?;
    }
    if runs("end-to-end") {
        let title = "End to end: no partner latency, DELIVERY_CONCURRENCY=8";
        pipeline(&url, &db, title, 0, "8", 2000).await?;
    }
    if runs("slow-partner") {
        let title = "Slow partner: 200 ms per request, DELIVERY_CONCURRENCY=64";
        pipeline(&url, &db, title, 200, "64", 1000).await?;
    }
    if runs("delivery-sql") {
        delivery_sql(&url, &db).await?;
    }
    Ok(())
}

/// Intake's events/s and latency, by concurrency, in the default service and intake-only,
/// next to pgbench running the same INSERT.
async fn intake(url: &str, db: &PgPool) -> anyhow::Result<()> {
    // The intake-only service's and pgbench's events are never processed: they go to a
    // database of their own, so the default service processes only what it takes in.
    let unprocessed = support::fresh_database(&format!("{DATABASE}_intake")).await?;
    println!("## Intake: events/s and latency; pgbench runs the same INSERT\n");
    println!(
        "Each row: {ROUNDS} rounds of {EVENTS} events, the default service (processing and \
         delivery on), the intake-only service and pgbench taking turns; medians.\n"
    );
    println!(
        "| concurrency | default serve events/s | p50 ms | p99 ms | / pgbench | intake-only events/s | / pgbench | pgbench tps |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let payloads = sample_payloads()?;
    let scripts = pgbench_scripts(&payloads)?;
    let partner = Partner::start(0).await?;
    let default_env = [
        ("UCHAT_API_BASE", partner.url.as_str()),
        ("UCHAT_API_TOKEN", PARTNER_TOKEN),
    ];
    let intake_only_env = [("PROCESS_EVENTS", "false")];
    let mut counter = 0;
    let mut peak = 0;
    let mut next_bodies = || -> Vec<Vec<u8>> {
        (0..EVENTS)
            .map(|_| {
                counter += 1;
                payloads[counter % payloads.len()].of_sale(counter)
            })
            .collect()
    };
    for concurrency in [1, 8, 32] {
        let (mut default, mut intake_only, mut pgbench) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (database, env, loads) in [
                (url, &default_env[..], &mut default),
                (unprocessed.as_str(), &intake_only_env[..], &mut intake_only),
            ] {
                let service = Service::start(database, env)?;
                loads.push(post_all(&service.url, next_bodies(), concurrency).await);
                if database == url {
                    // Each round starts with nothing left to process.
                    wait_until_processed(db).await?;
                }
                peak = peak.max(service.stop());
            }
            pgbench.push(run_pgbench(
                &unprocessed,
                &scripts,
                concurrency,
                EVENTS / concurrency,
                &[],
            )?);
        }
        let pgbench = percentile(&pgbench, 50.0);
        let default = median(&mut default);
        let intake_only = median(&mut intake_only);
        println!(
            "| {concurrency} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} | {pgbench:.0} |",
            default.per_second(),
            default.percentile(50.0),
            default.percentile(99.0),
            default.per_second() / pgbench,
            intake_only.per_second(),
            intake_only.per_second() / pgbench,
        );
    }
    println!(
        "\nIntake: the services' peak RSS {:.1} MiB\n",
        peak as f64 / 1024.0
    );
    Ok(())
}

/// Sales posted and delivered to the sandbox: a burst for throughput, then a paced run
/// for the latency from the 200 to the partner's first call.
async fn pipeline(
    url: &str,
    db: &PgPool,
    title: &str,
    latency_ms: u64,
    delivery_concurrency: &str,
    sales: usize,
) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE events, orders, order_links, partner_calls, attempts CASCADE")
        .execute(db)
        .await?;
    // Flush the earlier sections' writes now, not in the middle of the measurement.
    sqlx::query("CHECKPOINT").execute(db).await?;
    let partner = Partner::start(latency_ms).await?;
    let service = Service::start(
        url,
        &[
            ("UCHAT_API_BASE", partner.url.as_str()),
            ("UCHAT_API_TOKEN", PARTNER_TOKEN),
            ("DELIVERY_CONCURRENCY", delivery_concurrency),
            ("EVENT_SETTLE_MS", "0"),
        ],
    )?;
    // Throughput: a burst of sales, 32 senders at once.
    let burst = end_to_end(&service.url, db, &partner, 0..sales, 32, None).await?;
    // Latency: sales at a pace the pipeline keeps up with (25 a second), so the time
    // from the 200 to the partner's first call is not time spent queueing.
    let paced = 1_000_000..1_000_000 + 200;
    let paced = end_to_end(
        &service.url,
        db,
        &partner,
        paced,
        1,
        Some(Duration::from_millis(40)),
    )
    .await?;
    let peak = service.stop();
    println!("## {title}\n");
    println!("| burst sales | partner calls | calls/s | burst: first call after 200, p50 / p99 ms | paced (25 sales/s): p50 / p99 ms | service peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {sales} | {} | {:.0} | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} |\n",
        burst.calls,
        burst.calls as f64 / burst.elapsed.as_secs_f64(),
        burst.first_call.percentile(50.0),
        burst.first_call.percentile(99.0),
        paced.first_call.percentile(50.0),
        paced.first_call.percentile(99.0),
        peak as f64 / 1024.0,
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

    /// The event as a new sale's would be: event `n`, every Stripe object id in it made
    /// its own (prices and products kept, so the catalog still knows them), so each event
    /// is its customer's only order and the processor's work is a real order's, not one
    /// order's ever-growing history.
    fn of_sale(&self, n: usize) -> Vec<u8> {
        let mut text = self
            .text
            .replacen(&self.id, &format!("\"evt_bench_{n}\""), 1);
        for prefix in [
            "cus_", "sub_", "cs_", "pi_", "in_", "ch_", "re_", "dp_", "py_", "si_",
        ] {
            let quoted = format!("\"{prefix}");
            let mut parts = text.split(quoted.as_str());
            let mut made = parts.next().unwrap_or_default().to_owned();
            for part in parts {
                let end = part.find('"').unwrap_or(part.len());
                made.push_str(&format!("{quoted}{}_{n}{}", &part[..end], &part[end..]));
            }
            text = made;
        }
        text.into_bytes()
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

/// pgbench's transactions per second: `transactions` runs of the scripts per client, at
/// `concurrency`, with `variables` set.
fn run_pgbench(
    url: &str,
    scripts: &[std::path::PathBuf],
    concurrency: usize,
    transactions: usize,
    variables: &[(&str, usize)],
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
    command.args(["-t", &transactions.to_string()]);
    for (name, value) in variables {
        command.args(["-D", &format!("{name}={value}")]);
    }
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

/// Waits until no event is pending and due (one put off for later does not count).
async fn wait_until_processed(db: &PgPool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let due: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE status = 'pending' AND next_attempt_at <= now()",
        )
        .fetch_one(db)
        .await?;
        if due == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{due} events still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The round with the median rate.
fn median(loads: &mut [Load]) -> &Load {
    loads.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    &loads[loads.len() / 2]
}

/// Delivery's statements at the database's own pace: pgbench claims `batch` ready calls
/// with the worker's claim, then records them as succeeded with the completer's
/// statements (the orders' locks, the fenced record of every try, the unblock), in two
/// transactions as the worker does, with no partner in between.
async fn delivery_sql(url: &str, db: &PgPool) -> anyhow::Result<()> {
    const TRANSACTIONS: usize = 400;
    println!("## Delivery's SQL: pgbench runs the worker's claim and the completer's record\n");
    println!("| calls per claim and record | pgbench clients | calls/s |");
    println!("|---|---|---|");
    let dir = std::env::temp_dir().join("uchat-billing-pgbench");
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("claim_and_complete.sql");
    std::fs::write(&script, claim_and_complete_script())?;
    for (batch, clients) in [(8, 1), (8, 4), (32, 1), (32, 4)] {
        sqlx::query("TRUNCATE events, orders, order_links, partner_calls, attempts CASCADE")
            .execute(db)
            .await?;
        // One call per order, so every call is ready; more than the run claims.
        sqlx::query(
            "WITH made AS (
                 INSERT INTO orders (status) SELECT 'pending' FROM generate_series(1, $1)
                 RETURNING id
             )
             INSERT INTO partner_calls (order_id, position, kind, body)
             SELECT id, 1, 'change-plan', '{\"plan\": \"business\", \"auto_renew\": \"yes\"}'
             FROM made",
        )
        .bind((batch * clients * TRANSACTIONS + 1000) as i64)
        .execute(db)
        .await?;
        sqlx::query("VACUUM ANALYZE partner_calls")
            .execute(db)
            .await?;
        let variables = [("batch", batch)];
        let tps = run_pgbench(
            url,
            std::slice::from_ref(&script),
            clients,
            TRANSACTIONS,
            &variables,
        )?;
        println!("| {batch} | {clients} | {:.0} |", tps * batch as f64);
    }
    println!();
    Ok(())
}

/// The pgbench script: the service's own statements, their parameters replaced by what
/// the claim returned (kept with `\gset`; pgbench puts a variable's text in place of
/// `:name`, inside quotes too) and the values of a successful try.
fn claim_and_complete_script() -> String {
    use uchat_billing::db::{calls, orders};
    // The claim's UPDATE, wrapped so that its rows come back as one row of arrays.
    let (due, update) = calls::CLAIM
        .split_once(")\n     UPDATE")
        .expect("the claim is a WITH due AS (...) UPDATE");
    let claim = format!(
        "{due}), claimed AS (UPDATE{update})\n\
         SELECT array_agg(id) AS ids, array_agg(lease_id) AS leases, \
         array_agg(order_id) AS orders, array_agg(attempt) AS attempts, count(*) AS n \
         FROM claimed"
    )
    .replace("$1", ":batch")
    .replace("$2", "300");
    let each = |value: &str| format!("array_fill({value}, ARRAY[:n])");
    let mut record = calls::RECORD_TRIES.to_owned();
    // From the highest number down, so `$1` does not match the start of `$14`.
    for (parameter, value) in [
        ("$14", "'superseded'".to_owned()),
        ("$13::text[]", each("'succeeded'::text")),
        ("$12::text[]", each("NULL::text")),
        ("$11::text[]", each("'ok'::text")),
        ("$10::int[]", each("200")),
        ("$9::int[]", each("1")),
        ("$8::timestamptz[]", each("now()")),
        ("$7::int[]", "':attempts'::int[]".to_owned()),
        ("$6::text[]", each("NULL::text")),
        ("$5::float8[]", each("NULL::float8")),
        ("$4::text[]", each("NULL::text")),
        ("$3::text[]", each("'succeeded'::text")),
        ("$2::uuid[]", "':leases'::uuid[]".to_owned()),
        ("$1::bigint[]", "':ids'::bigint[]".to_owned()),
    ] {
        assert!(record.contains(parameter), "RECORD_TRIES lost {parameter}");
        record = record.replace(parameter, &value);
    }
    let orders_param = |sql: &str| sql.replace("$1", "':orders'::bigint[]");
    // One line each, without the comments that would then hide the rest.
    let statement = |sql: String| {
        sql.lines()
            .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
            .collect::<Vec<_>>()
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    [
        statement(claim) + " \\gset",
        "BEGIN;".to_owned(),
        statement(orders_param(calls::LOCK_ORDERS)) + ";",
        statement(record) + ";",
        statement(orders_param(orders::UNBLOCK_IF_CLEAR).replace("$2", "'bench'")) + ";",
        "COMMIT;".to_owned(),
    ]
    .join("\n")
        + "\n"
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
