//! The processor applies events in batches, one transaction each: many orders' events at
//! once, yet every order ends exactly as one event at a time would leave it, and one
//! event's failure costs the others nothing.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::story::{self, Buyer, Sub};
use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;

/// Buyers numbered from here, all with four digits, so one's number is never part of
/// another's.
const FIRST_BUYER: usize = 1000;

/// Buyer `n`'s four events in Stripe's order: checkout, subscription created with some
/// bots, an upgrade with one bot more, then the bots cut back. `n % 3` picks the bots.
fn order_events(n: usize) -> Vec<Vec<u8>> {
    let buyer = Buyer::numbered(n);
    let created = 1_000_000 + 10 * n as i64;
    let bots = (n % 3) as u32;
    let sub = |plan: &'static str, bots: u32| {
        let mut items = vec![(plan, 1)];
        if bots > 0 {
            items.push(("price_bot", bots));
        }
        Sub::active(&items)
    };
    let updated = "customer.subscription.updated";
    vec![
        story::subscription_checkout_of(&buyer, &format!("evt_{n}_1"), created),
        story::subscription_of(
            &buyer,
            &format!("evt_{n}_2"),
            "customer.subscription.created",
            created + 1,
            &sub("price_business", bots),
        ),
        story::subscription_of(
            &buyer,
            &format!("evt_{n}_3"),
            updated,
            created + 5,
            &sub("price_business_plus", bots + 1),
        ),
        story::subscription_of(
            &buyer,
            &format!("evt_{n}_4"),
            updated,
            created + 7,
            &sub("price_business_plus", bots),
        ),
    ]
}

/// Each buyer's order as the tests compare it: its status and attention, and its calls
/// with the buyer's number taken out, so orders of one shape compare equal.
async fn orders_by_buyer(app: &TestApp) -> BTreeMap<usize, String> {
    let rows: Vec<(String, String, Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT o.stripe_customer, o.status, o.attention,
                COALESCE(jsonb_agg(jsonb_build_array(c.kind, c.body) ORDER BY c.position)
                         FILTER (WHERE c.id IS NOT NULL), '[]')
         FROM orders o LEFT JOIN partner_calls c ON c.order_id = o.id
         GROUP BY o.id ORDER BY o.id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(customer, status, attention, calls)| {
            let n: usize = customer.trim_start_matches("cus_buyer").parse().unwrap();
            let outcome = json!([status, attention, calls])
                .to_string()
                .replace(&format!("buyer{n}"), "buyerN")
                .replace(&format!("Buyer {n}"), "Buyer N");
            (n, outcome)
        })
        .collect()
}

/// How the events' verdicts were recorded: events by status, and the transactions they
/// were recorded in (an event's `processed_at` is its transaction's start).
async fn verdicts(app: &TestApp) -> (BTreeMap<String, i64>, i64) {
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM events GROUP BY status")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT processed_at) FROM events WHERE processed_at IS NOT NULL",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    (statuses.into_iter().collect(), transactions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_orders_shuffled_and_batched_end_as_one_event_at_a_time_leaves_them() {
    const ORDERS: usize = 500;
    let buyers = FIRST_BUYER..FIRST_BUYER + ORDERS;

    // One event at a time, in Stripe's order: each shape of order once.
    let reference = spawn_app().await;
    reference.expect_unfinished_calls();
    for n in FIRST_BUYER..FIRST_BUYER + 3 {
        for event in order_events(n) {
            reference.post_stripe_events(&[event]).await;
            assert_eq!(reference.processor.drain().await.unwrap(), 1);
        }
    }
    let shapes = orders_by_buyer(&reference).await;

    // Every order's events at once, arriving in any order, applied by four processors.
    let app = Arc::new(spawn_app().await);
    app.expect_unfinished_calls();
    let mut events: Vec<Vec<u8>> = buyers.clone().flat_map(order_events).collect();
    events.shuffle(&mut StdRng::seed_from_u64(18));
    let senders: Vec<_> = events
        .chunks(events.len() / 8)
        .map(|chunk| {
            let (app, chunk) = (app.clone(), chunk.to_vec());
            tokio::spawn(async move { app.post_stripe_events(&chunk).await })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let drains: Vec<_> = (0..4)
        .map(|_| {
            let processor = app.processor.clone();
            tokio::spawn(async move { processor.drain().await.unwrap() })
        })
        .collect();
    let mut handled = 0;
    for drain in drains {
        handled += drain.await.unwrap();
    }
    assert_eq!(handled, events.len());

    let orders = orders_by_buyer(&app).await;
    assert_eq!(orders.len(), ORDERS, "one order per sale");
    for (n, outcome) in &orders {
        let shape = FIRST_BUYER + (n - FIRST_BUYER) % 3;
        assert_eq!(outcome, &shapes[&shape], "buyer {n}");
    }
    let (statuses, transactions) = verdicts(&app).await;
    assert_eq!(
        statuses,
        BTreeMap::from([("processed".to_owned(), events.len() as i64)])
    );
    assert!(
        transactions * 8 <= events.len() as i64,
        "{} events recorded in {transactions} transactions",
        events.len()
    );
}

#[tokio::test]
async fn an_event_that_fails_in_a_batch_costs_the_others_nothing() {
    let app = spawn_app().await;
    app.expect_failed_events();
    app.expect_unfinished_calls();
    // Refused by the database when its order is written: an email far past what an
    // index entry holds (and random, so it does not compress to fit).
    let mut poisoned = Buyer::numbered(FIRST_BUYER);
    let local: String = rand::distributions::DistString::sample_string(
        &rand::distributions::Alphanumeric,
        &mut rand::thread_rng(),
        3000,
    );
    poisoned.email = format!("{local}@example.com");
    let mut events = vec![
        story::subscription_checkout_of(&poisoned, "evt_poison", 1_000_000),
        envelope(
            "evt_broken",
            "customer.subscription.updated",
            1_000_001,
            json!({"object": "subscription"}),
        ),
    ];
    events.extend((FIRST_BUYER + 1..FIRST_BUYER + 6).flat_map(order_events));
    app.post_stripe_events(&events).await;

    assert_eq!(
        app.processor.process_next().await.unwrap(),
        uchat_billing::processor::Step::Handled
    );

    let (statuses, transactions) = verdicts(&app).await;
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("failed".to_owned(), 1),
            ("pending".to_owned(), 1),
            ("processed".to_owned(), 20),
        ]),
        "the unusable event failed, the refused one waits, the rest are applied"
    );
    assert_eq!(transactions, 1, "all in one batch");
    let (error,): (Option<String>,) =
        sqlx::query_as("SELECT error FROM events WHERE stripe_event_id = 'evt_poison'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(error.is_some_and(|e| e.contains("index row")));
    let orders = orders_by_buyer(&app).await;
    assert_eq!(
        orders.keys().copied().collect::<Vec<_>>(),
        Vec::from_iter(FIRST_BUYER + 1..FIRST_BUYER + 6),
        "nothing of the refused event's writes is kept"
    );
    assert!(orders.values().all(|outcome| outcome.contains("create")));
}
