//! The whole pipeline under what production throws at it: the service killed mid-work
//! and restarted, a flaky partner, a database outage under load. Afterwards every
//! acknowledged event is stored and applied, and every sale is provisioned exactly once.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::db_proxy::DbProxy;
use common::redelivery::{self, Post, StripeSender};
use common::service::{serve_env, ServiceProcess};
use common::story::{self, Buyer, Sub};
use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use uchat_billing::sandbox::{Faults, SandboxHandle};

/// One subscription sale: Business with `bots` extra bots, and for some buyers a later
/// upgrade to Business Plus with one bot more.
struct Sale {
    n: usize,
    buyer: Buyer,
    bots: u32,
    upgraded: bool,
}

impl Sale {
    /// Checkout, subscription created and, if upgraded, subscription updated, in
    /// Stripe's order.
    fn events(&self) -> Vec<(String, Vec<u8>)> {
        let n = self.n;
        let created = 1_000_000 + 10 * n as i64;
        let with_bots = |plan: &'static str, bots: u32| {
            let mut items = vec![(plan, 1)];
            if bots > 0 {
                items.push(("price_bot", bots));
            }
            Sub::active(&items)
        };
        let mut events = vec![
            (
                format!("evt_{n}_checkout"),
                story::subscription_checkout_of(&self.buyer, &format!("evt_{n}_checkout"), created),
            ),
            (
                format!("evt_{n}_created"),
                story::subscription_of(
                    &self.buyer,
                    &format!("evt_{n}_created"),
                    "customer.subscription.created",
                    created + 1,
                    &with_bots("price_business", self.bots),
                ),
            ),
        ];
        if self.upgraded {
            events.push((
                format!("evt_{n}_upgrade"),
                story::subscription_of(
                    &self.buyer,
                    &format!("evt_{n}_upgrade"),
                    "customer.subscription.updated",
                    created + 5,
                    &with_bots("price_business_plus", self.bots + 1),
                ),
            ));
        }
        events
    }

    fn plan(&self) -> &'static str {
        if self.upgraded {
            "business_plus"
        } else {
            "business"
        }
    }

    fn bots(&self) -> u64 {
        u64::from(self.bots) + u64::from(self.upgraded)
    }
}

/// `count` sales to distinct buyers: 0, 1 or 2 bots, every other one upgraded.
fn sales(count: usize) -> Vec<Sale> {
    (0..count)
        .map(|n| Sale {
            n,
            buyer: Buyer::numbered(n),
            bots: (n % 3) as u32,
            upgraded: n % 2 == 0,
        })
        .collect()
}

/// Every event of every sale as Stripe delivers them: at least once (about one in three
/// twice) and in no fixed order.
fn as_stripe_sends(sales: &[Sale], rng: &mut impl Rng) -> Vec<(String, Vec<u8>)> {
    let mut deliveries: Vec<(String, Vec<u8>)> = sales.iter().flat_map(Sale::events).collect();
    let again: Vec<_> = deliveries
        .iter()
        .filter(|_| rng.gen_bool(1.0 / 3.0))
        .cloned()
        .collect();
    deliveries.extend(again);
    deliveries.shuffle(rng);
    deliveries
}

fn seeded_rng() -> StdRng {
    let seed = rand::random();
    eprintln!("rng seed {seed}");
    StdRng::seed_from_u64(seed)
}

/// Exactly one workspace per sale, on the plan sold, with exactly the bots sold: no
/// create, add-on or top-up happened twice.
fn assert_provisioned_once(sandbox: &SandboxHandle, sales: &[Sale]) {
    let mut by_owner: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for workspace in sandbox.workspaces() {
        by_owner
            .entry(workspace.owner_email.clone())
            .or_default()
            .push(workspace);
    }
    assert_eq!(by_owner.len(), sales.len(), "one owner per sale");
    for sale in sales {
        let email = &sale.buyer.email;
        let workspaces = &by_owner[email];
        assert_eq!(workspaces.len(), 1, "{email}: one sale, one workspace");
        let workspace = &workspaces[0];
        assert_eq!(workspace.plan, sale.plan(), "{email}");
        assert_eq!(
            workspace.addons.get("bot").copied().unwrap_or(0),
            sale.bots(),
            "{email}: bots"
        );
        assert_eq!(workspace.points, 0.0, "{email}: no points were sold");
        assert!(!workspace.is_paused && workspace.auto_renew, "{email}");
    }
}

/// Each event that got a 2xx is stored, and so is every event at all (Stripe retried
/// the others until they did).
async fn assert_every_acknowledged_event_is_stored(db: &PgPool, posts: &[Post], sales: &[Sale]) {
    let stored: BTreeSet<String> = sqlx::query_scalar("SELECT stripe_event_id FROM events")
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let acknowledged = redelivery::acknowledged(posts);
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let sent: BTreeSet<String> = sales
        .iter()
        .flat_map(Sale::events)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(stored, sent);
}

/// Every call ended with exactly one try that succeeded (or found its effect there), and
/// none is pending, running, held or dead.
async fn assert_each_call_succeeded_once(db: &PgPool) {
    let unfinished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM partner_calls WHERE status <> 'succeeded'")
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!(unfinished, 0);
    let successes_per_call: Vec<i64> = sqlx::query_scalar(
        "SELECT count(a.id) FROM partner_calls c
         LEFT JOIN attempts a ON a.call_id = c.id AND a.outcome IN ('succeeded', 'already_applied')
         GROUP BY c.id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    assert!(!successes_per_call.is_empty());
    assert!(
        successes_per_call.iter().all(|&n| n == 1),
        "a call succeeded more or less than once"
    );
}

/// How many tries ended each way.
async fn outcomes(db: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT outcome, count(*) FROM attempts GROUP BY outcome")
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_service_five_times_mid_load_loses_and_doubles_nothing() {
    let started = Instant::now();
    let mut rng = seeded_rng();
    let (base, sandbox) = spawn_sandbox(Faults {
        // Calls take a moment, so kills land in the middle of some.
        latency_jitter_ms: 20,
        ..Faults::default()
    })
    .await;
    let database = fresh_database().await;
    let mut env = serve_env(&database.url);
    env.extend([
        ("UCHAT_API_BASE", base.clone()),
        ("UCHAT_API_TOKEN", PARTNER_TOKEN.into()),
        ("UCHAT_TIMEOUT_SECS", "2".into()),
        // Calls cut off by a kill are taken back after 3 s, not the default 18 s.
        ("LEASE_SECS", "3".into()),
        ("EVENT_SETTLE_MS", "0".into()),
        ("RETRY_BASE_SECS", "1".into()),
        ("RETRY_CAP_SECS", "2".into()),
        ("RUST_LOG", "info".into()),
    ]);
    let mut service = ServiceProcess::start(&env).await;
    let db = uchat_billing::db::pool(&database.url, 2).unwrap();

    let sales = sales(300);
    let deliveries = as_stripe_sends(&sales, &mut rng);
    assert!(deliveries.len() >= 900, "{} posts", deliveries.len());
    let sender = StripeSender {
        concurrency: 4,
        // About ten seconds of posting, so the kills land while events still arrive.
        pace: Duration::from_millis(30),
        ..StripeSender::default()
    };
    let address = service.address.clone();
    let posting = tokio::spawn(async move { sender.send(&address, deliveries).await });

    let mut kills_mid_work = 0;
    for kill in 1..=5 {
        let uptime = Duration::from_millis(rng.gen_range(300..2000));
        tokio::time::sleep(uptime).await;
        let (stored, unfinished): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events),
                    (SELECT count(*) FROM partner_calls WHERE status <> 'succeeded')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        service.kill();
        eprintln!("kill -9 #{kill} after {uptime:?} up: {stored} events stored, {unfinished} calls unfinished");
        kills_mid_work += i32::from(unfinished > 0);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
        service.restart().await;
    }
    assert!(
        kills_mid_work > 0,
        "no kill landed while calls were unfinished"
    );

    let posts = match posting.await {
        Ok(posts) => posts,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    wait_until_all_delivered(&db, Duration::from_secs(90)).await;
    eprintln!(
        "{} posts, all delivered {:?} after the start",
        posts.len(),
        started.elapsed()
    );

    // A post got a 200, or no answer at all while the service was down: never an error.
    let refused: Vec<_> = posts
        .iter()
        .filter(|post| matches!(post.answer, Ok(status) if status != 200))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert!(
        posts.iter().any(|post| post.answer.is_err()),
        "no post found the service down"
    );
    assert_every_acknowledged_event_is_stored(&db, &posts, &sales).await;
    let unprocessed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE status <> 'processed'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(unprocessed, 0);
    assert_each_call_succeeded_once(&db).await;
    assert_provisioned_once(&sandbox, &sales);

    // A create reached the sandbox twice only if its first try was cut off by a kill and
    // the look before the repeat found nothing (the kill landed before the sandbox applied it).
    let mut creates: BTreeMap<String, usize> = BTreeMap::new();
    for request in sandbox.requests() {
        if request.method == "POST" && request.path == "/partner/workspace/create" {
            let email = request.json()["email"].as_str().unwrap().to_owned();
            *creates.entry(email).or_default() += 1;
        }
    }
    let cut_off: BTreeSet<String> = sqlx::query_scalar(
        "SELECT DISTINCT o.email FROM attempts a JOIN partner_calls c ON c.id = a.call_id
         JOIN orders o ON o.id = c.order_id
         WHERE c.kind IN ('create', 'create-for-existing-user') AND a.outcome = 'lease_expired'",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for (email, count) in &creates {
        assert!(
            *count == 1 || cut_off.contains(email),
            "{email}: {count} creates sent without a cut-off try"
        );
    }
    eprintln!("attempts: {:?}", outcomes(&db).await);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_partner_gets_every_sale_provisioned_exactly_once() {
    let mut rng = seeded_rng();
    let (base, sandbox) = spawn_sandbox(Faults {
        fail_rate: 0.1,
        timeout_rate: 0.1,
        apply_then_timeout_rate: 0.1,
        timeout_ms: 1500,
        ..Faults::default()
    })
    .await;
    let mut delivery = delivery_with_timeout(&base, Duration::from_secs(1));
    // Three writes in ten fail: with twelve tries a call dies once in two million.
    delivery.settings.retry.max_attempts = 12;
    let app = spawn_app_with(move |config| {
        config.delivery = Some(delivery);
        config.background_work = true;
    })
    .await;

    let sales = sales(100);
    let posts = StripeSender::default()
        .send(&app.address, as_stripe_sends(&sales, &mut rng))
        .await;
    assert!(posts.iter().all(Post::acknowledged));
    wait_until_all_delivered(&app.db, Duration::from_secs(120)).await;

    assert_each_call_succeeded_once(&app.db).await;
    assert_provisioned_once(&sandbox, &sales);
    let outcomes = outcomes(&app.db).await;
    eprintln!("attempts: {outcomes:?}");
    assert!(outcomes.get("retry") > Some(&0), "{outcomes:?}");
    assert!(
        outcomes.get("already_applied") > Some(&0),
        "no try found its effect already there: {outcomes:?}"
    );
    let statuses: BTreeSet<Option<i32>> =
        sqlx::query_scalar("SELECT DISTINCT http_status FROM attempts WHERE outcome = 'retry'")
            .fetch_all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert!(statuses.contains(&Some(500)), "{statuses:?}");
    assert!(
        statuses.contains(&None),
        "timeouts have no status: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_under_load_answers_503_and_heals_by_itself() {
    let mut rng = seeded_rng();
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let proxy = DbProxy::start(&database_server_address()).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(|config| {
        config.database_url = proxy.url_through(&config.database_url);
        config.delivery = Some(delivery);
        config.background_work = true;
    })
    .await;

    let sales = sales(150);
    let sender = StripeSender {
        concurrency: 4,
        pace: Duration::from_millis(20),
        retry_after: Duration::from_millis(100),
        ..StripeSender::default()
    };
    let address = app.address.clone();
    let deliveries = as_stripe_sends(&sales, &mut rng);
    let posting = tokio::spawn(async move { sender.send(&address, deliveries).await });

    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    let restored_at = Instant::now();

    let deadline = restored_at + Duration::from_secs(15);
    while app.get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "not ready 15 s after the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("ready {:?} after the outage", restored_at.elapsed());

    let posts = match posting.await {
        Ok(posts) => posts,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    wait_until_all_delivered(&app.db, Duration::from_secs(60)).await;

    // Stripe only ever heard "stored" or "try again later".
    let odd: Vec<_> = posts
        .iter()
        .filter(|post| !matches!(post.answer, Ok(200 | 503)))
        .collect();
    assert!(odd.is_empty(), "answers other than 200 and 503: {odd:?}");
    // Posts answered while the database was away (past those in flight at the cut) all
    // got a 503.
    let during: Vec<_> = posts
        .iter()
        .filter(|post| {
            post.finished > cut_at + Duration::from_millis(500) && post.finished < restored_at
        })
        .collect();
    assert!(!during.is_empty(), "no post was answered during the outage");
    assert!(
        during.iter().all(|post| post.answer == Ok(503)),
        "{during:?}"
    );
    eprintln!(
        "{} posts, {} answered 503",
        posts.len(),
        posts.iter().filter(|post| post.answer == Ok(503)).count()
    );
    assert_every_acknowledged_event_is_stored(&app.db, &posts, &sales).await;
    assert_each_call_succeeded_once(&app.db).await;
    assert_provisioned_once(&sandbox, &sales);
}

#[tokio::test]
async fn an_event_the_database_refuses_does_not_stop_the_events_after_it() {
    let app = spawn_app().await;
    app.expect_unfinished_calls();
    // An email far past what an index entry holds (and random, so it does not compress
    // to fit): its order can never be written.
    let mut poisoned = Buyer::numbered(1);
    let local: String = rand::distributions::DistString::sample_string(
        &rand::distributions::Alphanumeric,
        &mut rand::thread_rng(),
        3000,
    );
    poisoned.email = format!("{local}@example.com");
    let healthy = Sale {
        n: 2,
        buyer: Buyer::numbered(2),
        bots: 1,
        upgraded: false,
    };
    let poison = story::subscription_checkout_of(&poisoned, "evt_poison", 100);
    assert_eq!(app.post_stripe_event(&poison).await.status(), 200);
    for (_, event) in healthy.events() {
        assert_eq!(app.post_stripe_event(&event).await.status(), 200);
    }

    app.processor
        .drain()
        .await
        .expect("the processor carries on");
    let kinds: Vec<String> = app
        .queued_calls()
        .await
        .into_iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(kinds, ["create", "change-plan", "add-addon"]);
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM events WHERE stripe_event_id = 'evt_poison'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "pending", "kept, to be tried again later");
    assert!(
        error.is_some_and(|e| e.contains("index row")),
        "the reason is on record"
    );
}
