//! Reconciliation: each live order against Stripe's subscription and UChat's workspace
//! as they are now. The reads happen here, paced; the comparison is pure (`drift`); a
//! repair is planned like any change, through the planner and the queue.

pub mod drift;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use tokio::time::{interval, Interval, MissedTickBehavior};
use utoipa::ToSchema;

use crate::config::Config;
use crate::db;
use crate::db::reconcile::LiveOrder;
use crate::partner::{CallKind, PartnerClient};
use crate::plan::{self, Facts, Provisioned};
use crate::stripe::api::{StripeApi, StripeApiError};
pub use drift::{Drift, Source};

/// Live orders read a page at a time, so a run's memory and statements stay small
/// whatever the number of orders.
const PAGE: i64 = 500;

/// A live order's state, comparable (no call of it in flight).
struct OrderState {
    id: i64,
    /// One of the page's own orders; the others only count for their workspace.
    in_page: bool,
    facts: Facts,
    provisioned: Provisioned,
}

/// Which orders a run checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Order(i64),
    /// Every order on one workspace (UChat said its plan changed).
    Workspace(i64),
}

#[derive(Clone)]
pub struct Reconciler {
    /// Its own connections: a run never takes the processor's or delivery's.
    db: PgPool,
    partner: PartnerClient,
    stripe: Option<StripeApi>,
    /// The least time between two reads of either side.
    pace: Duration,
}

/// What a run found, and repaired.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Report {
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The order checked alone, if any.
    pub order: Option<i64>,
    pub repair: bool,
    pub orders_checked: usize,
    /// Orders skipped because a call of theirs is still unfinished.
    pub orders_in_flight: usize,
    pub orders_in_drift: usize,
    pub drifts: Vec<Drift>,
    /// The calls queued to repair each order, by kind.
    #[schema(value_type = Object)]
    pub repaired: BTreeMap<i64, Vec<CallKind>>,
    /// Reads that failed; their orders were not compared.
    pub errors: Vec<String>,
}

impl Reconciler {
    /// The reconciler of `serve`'s settings; `None` without a partner to read. It reads
    /// through two database connections of its own (a run reads, a repair queues), so it
    /// never waits on, nor slows, intake or delivery.
    pub fn of(config: &Config) -> Result<Option<Reconciler>, sqlx::Error> {
        let Some(delivery) = &config.delivery else {
            return Ok(None);
        };
        let db = db::pool_with_statement_timeout(
            &config.database_url,
            2,
            config.limits.pools.statement_timeout,
        )?;
        Ok(Some(Reconciler::new(
            db,
            delivery.partner.clone(),
            config.stripe_api.clone(),
            config.reconcile.reads_per_second,
        )))
    }

    pub fn new(
        db: PgPool,
        partner: PartnerClient,
        stripe: Option<StripeApi>,
        reads_per_second: f64,
    ) -> Reconciler {
        Reconciler {
            db,
            partner,
            stripe,
            pace: Duration::from_secs_f64(1.0 / reads_per_second.max(0.001)),
        }
    }

    /// Compares, repairs if asked, and stores the report. `Ok(None)`: no such order.
    pub async fn run(&self, scope: Scope, repair: bool) -> anyhow::Result<Option<Report>> {
        let (workspace, order) = match scope {
            Scope::All => (None, None),
            Scope::Workspace(id) => (Some(id), None),
            Scope::Order(id) => match db::reconcile::workspace_of(&self.db, id).await? {
                None => return Ok(None),
                Some(_) => (None, Some(id)),
            },
        };
        let mut report = Report {
            started_at: chrono::Utc::now(),
            order,
            repair,
            ..Report::default()
        };
        // One pace over every page: the sides see the same rate however the orders fall.
        let mut pace = interval(self.pace);
        pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut after = 0;
        loop {
            let orders =
                db::reconcile::live_orders_page(&self.db, workspace, order, after, PAGE).await?;
            let Some(last) = orders.iter().filter(|o| o.in_page).map(|o| o.id).max() else {
                break;
            };
            self.check_page(orders, after, &mut pace, &mut report).await;
            after = last;
        }
        if let Some(order) = report.order {
            report.drifts.retain(|drift| drift.order == order);
        }
        let mut drifting: Vec<i64> = report.drifts.iter().map(|d| d.order).collect();
        drifting.sort_unstable();
        drifting.dedup();
        report.orders_in_drift = drifting.len();
        if repair {
            for order in drifting {
                let own: Vec<Drift> = report
                    .drifts
                    .iter()
                    .filter(|d| d.order == order)
                    .cloned()
                    .collect();
                let queued = self.repair(order, &own).await?;
                if !queued.is_empty() {
                    report.repaired.insert(order, queued);
                }
            }
        }
        let value = serde_json::to_value(&report).expect("a report serializes");
        db::reconcile::store_report(
            &self.db,
            report.order,
            scope == Scope::All,
            repair,
            report.orders_in_drift as i64,
            &value,
        )
        .await?;
        tracing::info!(
            checked = report.orders_checked,
            in_drift = report.orders_in_drift,
            repaired = report.repaired.len(),
            errors = report.errors.len(),
            "reconciliation finished"
        );
        Ok(Some(report))
    }

    /// Compares one page: each of its orders with Stripe's subscription, and each
    /// workspace met first on this page with UChat's, against every live order of the
    /// workspace (later pages' too; one met on an earlier page was compared then).
    async fn check_page(
        &self,
        orders: Vec<LiveOrder>,
        after: i64,
        pace: &mut Interval,
        report: &mut Report,
    ) {
        let mut by_workspace: BTreeMap<i64, Vec<OrderState>> = BTreeMap::new();
        let mut compared_before = BTreeSet::new();
        for order in orders {
            let group = order.workspace_id.unwrap_or(-order.id);
            if order.id <= after {
                compared_before.insert(group);
            }
            if order.in_page {
                report.orders_checked += 1;
                if order.in_flight {
                    report.orders_in_flight += 1;
                }
            }
            if order.in_flight {
                continue;
            }
            let (Ok(facts), Ok(provisioned)) = (
                serde_json::from_value(order.facts),
                serde_json::from_value::<Provisioned>(order.provisioned),
            ) else {
                if order.in_page {
                    report
                        .errors
                        .push(format!("order {}: unreadable state", order.id));
                }
                continue;
            };
            if provisioned.deleted {
                continue;
            }
            by_workspace.entry(group).or_default().push(OrderState {
                id: order.id,
                in_page: order.in_page,
                facts,
                provisioned,
            });
        }

        for (workspace_id, orders) in &by_workspace {
            for order in orders.iter().filter(|o| o.in_page) {
                report.drifts.extend(
                    self.stripe_drift(pace, order.id, &order.facts, &mut report.errors)
                        .await,
                );
            }
            if *workspace_id > 0 && !compared_before.contains(workspace_id) {
                pace.tick().await;
                let seen = match self.partner.get_workspace(*workspace_id).await {
                    Ok(seen) => Some(seen),
                    Err(error) if error.status() == Some(404) => None,
                    Err(error) => {
                        report
                            .errors
                            .push(format!("workspace {workspace_id}: {error}"));
                        continue;
                    }
                };
                let states: Vec<(i64, &Provisioned)> = orders
                    .iter()
                    .map(|order| (order.id, &order.provisioned))
                    .collect();
                report
                    .drifts
                    .extend(drift::uchat_drift(*workspace_id, &states, seen.as_ref()));
            }
        }
    }

    async fn stripe_drift(
        &self,
        pace: &mut Interval,
        order: i64,
        facts: &Facts,
        errors: &mut Vec<String>,
    ) -> Vec<Drift> {
        let (Some(stripe), Some(id)) = (&self.stripe, facts.subscription_id()) else {
            return Vec::new();
        };
        pace.tick().await;
        match stripe.subscription(id).await {
            Ok(now) => drift::stripe_drift(order, facts, Some(&now)),
            Err(StripeApiError::Refused(_)) => drift::stripe_drift(order, facts, None),
            Err(error) => {
                errors.push(format!("order {order}: {error}"));
                Vec::new()
            }
        }
    }

    /// Queues the calls that bring the order's workspace back to what it provisioned,
    /// unless the order changed meanwhile (a call was queued, or its state moved on).
    async fn repair(&self, order: i64, drifts: &[Drift]) -> anyhow::Result<Vec<CallKind>> {
        let mut tx = self.db.begin().await?;
        let Some(state) = db::reconcile::settled_state_for_update(&mut tx, order).await? else {
            return Ok(Vec::new());
        };
        let want: Provisioned = serde_json::from_value(state)?;
        let calls = plan::restore(&want, &drift::seen_state(&want, drifts), "reconciliation");
        db::calls::append(&mut tx, order, None, &calls).await?;
        tx.commit().await?;
        if !calls.is_empty() {
            tracing::info!(order, calls = calls.len(), "repair queued");
        }
        Ok(calls.iter().map(|call| call.kind()).collect())
    }

    /// Runs over every order every `every`, until `stop`.
    pub async fn run_every(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if let Err(error) = self.run(Scope::All, false).await {
                tracing::warn!(error = %format!("{error:#}"), "reconciliation failed");
            }
        }
    }
}
