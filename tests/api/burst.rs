//! A burst of sales larger than Postgres' prepared-statement threshold is provisioned in
//! full, by a service whose statements were planned while its tables were still empty.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::story::{self, Buyer, Sub};
use common::*;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uchat_billing::sandbox::Faults;

/// Sales in the burst: two events each, 2,000 events across distinct orders.
const SALES: usize = 1000;

/// The processor's loops and the delivery worker, as `serve` runs them, until `stop`.
fn start_background_work(app: &TestApp, stop: &watch::Receiver<bool>) -> JoinSet<()> {
    let mut work = JoinSet::new();
    for _ in 0..4 {
        work.spawn(app.processor.clone().run(stop.clone()));
    }
    work.spawn(app.worker().clone().run(stop.clone()));
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sales_is_provisioned_in_full() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let app = Arc::new(
        spawn_app_with(move |config| {
            config.delivery = Some(delivery);
            // The worst Postgres may do: every statement keeps the plan it was first given.
            config.database_url += "?options=-c%20plan_cache_mode%3Dforce_generic_plan";
        })
        .await,
    );
    // A service with a history: its statistics say pending events are rare, and a burst
    // of a few thousand is too small a change for autovacuum to analyze again.
    sqlx::query(
        "INSERT INTO events (stripe_event_id, event_type, livemode, stripe_created, raw_body,
                             payload, status, order_keys)
         SELECT 'evt_history_' || n, 'invoice.paid', false, 1600000000 + n, '{}', '{}',
                'processed', ARRAY['sub:sub_history_' || n]
         FROM generate_series(1, 50000) n",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("ANALYZE events")
        .execute(&app.db)
        .await
        .unwrap();

    // Idle, the processor and the worker run their claims many times against no pending
    // rows: Postgres caches a generic plan for each, on each pooled connection, after
    // five runs. Then the burst arrives faster than it is applied: here, while the
    // background work is stopped.
    let (stop, stopped) = watch::channel(false);
    let mut idle = start_background_work(&app, &stopped);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.send(true).unwrap();
    while idle.join_next().await.is_some() {}

    let business = Sub::active(&[("price_business", 1)]);
    // A sale a second, as a promotion brings them: in Stripe's order each sale's
    // subscription comes right after its checkout.
    let first = now() - SALES as i64;
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let (app, business) = (app.clone(), business.clone());
            tokio::spawn(async move {
                for sale in (sender..SALES).step_by(8) {
                    let (buyer, created) = (Buyer::numbered(sale), first + sale as i64);
                    app.post_stripe_events(&[
                        story::subscription_checkout_of(&buyer, &format!("evt_cs_{sale}"), created),
                        story::subscription_of(
                            &buyer,
                            &format!("evt_sub_{sale}"),
                            "customer.subscription.created",
                            created,
                            &business,
                        ),
                    ])
                    .await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }

    let (stop, stopped) = watch::channel(false);
    let mut work = start_background_work(&app, &stopped);
    // Generous, yet a claim whose cost grows with the backlog misses it by far: it drains
    // this burst in tens of minutes.
    wait_until_all_delivered(&app.db, Duration::from_secs(120)).await;
    stop.send(true).unwrap();
    while work.join_next().await.is_some() {}

    let workspaces = sandbox.workspaces();
    assert_eq!(workspaces.len(), SALES);
    assert!(workspaces.iter().all(|w| w.plan == "business"));
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(statuses, [("active".to_owned(), SALES as i64)]);
}
