//! Stored events → orders and planned partner calls, one event per transaction.
//!
//! Events apply in Stripe's order (`created`, then id) once settled; a crash anywhere
//! leaves the event pending for the next try, and the order's row lock plus the
//! snapshot stamps make two processors agree.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tracing::{field, Instrument, Span};

use crate::db;
use crate::db::events::{ClaimedEvent, EventStatus};
use crate::db::orders::{OrderRow, OrderUpdate};
use crate::domain::{CheckoutMode, Signal, Stamp};
use crate::dry_run::{DryRun, Effect};
use crate::plan::{self, Catalog, Facts, Plan, Provisioned, Workspace};
use crate::retry::RetryPolicy;
use crate::stripe::api::{StripeApi, StripeApiError};
use crate::stripe::decode::{self, Event};

/// When an event that could not be applied now is tried again: doubling from 2 s, up to
/// ten minutes, never given up on. No jitter: one order's events wait in line anyway.
const EVENT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base: Duration::from_secs(2),
    cap: Duration::from_secs(600),
};
/// How often an idle processor looks for settled events it was not told about (stored by
/// another process, or waiting out the settle delay).
const IDLE_POLL: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Processor {
    db: PgPool,
    catalog: Arc<Catalog>,
    stripe: Option<StripeApi>,
    settle: Duration,
    /// Rung by intake in this process when it stores an event.
    arrivals: Arc<Notify>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// An event was applied, or its failure or postponement recorded.
    Handled,
    /// An event was found waiting for an older pending event of its order.
    Waits,
    Idle,
}

/// Why an event could not be applied now.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event itself is unusable: mark it failed for an operator.
    #[error("{0}")]
    Unusable(String),
    /// Stripe's API is down: keep the event pending and try later.
    #[error("{0}")]
    RetryLater(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<StripeApiError> for ApplyError {
    fn from(error: StripeApiError) -> Self {
        if error.is_retryable() {
            ApplyError::RetryLater(error.to_string())
        } else {
            ApplyError::Unusable(error.to_string())
        }
    }
}

struct Applied {
    status: EventStatus,
    order_id: Option<i64>,
}

impl Processor {
    pub fn new(
        db: PgPool,
        catalog: Arc<Catalog>,
        stripe: Option<StripeApi>,
        settle: Duration,
    ) -> Processor {
        Processor {
            db,
            catalog,
            stripe,
            settle,
            arrivals: Arc::new(Notify::new()),
        }
    }

    /// This processor (its catalog, Stripe and arrivals), reading through another pool:
    /// dry runs read through the operators' own connections.
    pub fn reading_from(&self, db: PgPool) -> Processor {
        Processor { db, ..self.clone() }
    }

    /// Ring it when an event is stored: an idle processor then looks at once.
    pub fn arrivals(&self) -> Arc<Notify> {
        self.arrivals.clone()
    }

    /// Processes events until told to stop; database outages are waited out.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        tracing::info!(
            settle_ms = self.settle.as_millis() as u64,
            "event processor started"
        );
        while !*stop.borrow() {
            let pause = match self.process_next().await {
                Ok(Step::Handled | Step::Waits) => continue,
                Ok(Step::Idle) => IDLE_POLL,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "event processing failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.arrivals.notified() => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("event processor stopped");
    }

    /// Processes every settled pending event, then returns how many it handled.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut handled = 0;
        loop {
            match self.process_next().await? {
                Step::Handled => handled += 1,
                Step::Waits => {}
                Step::Idle => return Ok(handled),
            }
        }
    }

    /// Claims the next settled event and applies it in one transaction, unless an older
    /// event of its order is still pending: then it is set to wait for that one.
    pub async fn process_next(&self) -> anyhow::Result<Step> {
        let mut tx = self.db.begin().await?;
        let Some(event) = db::events::claim_next(&mut tx, self.settle).await? else {
            return Ok(Step::Idle);
        };
        // Every line logged while the event is processed carries these.
        let span = tracing::info_span!(
            "event",
            event.id = event.id,
            event.type = field::Empty,
            order.id = field::Empty
        );
        self.process(tx, &event).instrument(span).await
    }

    /// Applies a claimed event, or records why it could not be applied now. An event
    /// with an older pending event of its order waits for that one instead.
    async fn process(
        &self,
        mut tx: Transaction<'static, Postgres>,
        event: &ClaimedEvent,
    ) -> anyhow::Result<Step> {
        // Serializes work on the event's orders: two processors never create two orders
        // for one purchase, and the check below sees every older event that is done.
        db::orders::lock_keys(&mut tx, &event.order_keys).await?;
        if let Some(predecessor) = db::events::wait_for_predecessor(&mut tx, event).await? {
            tx.commit().await?;
            tracing::debug!(predecessor, "event waits for an older event of its order");
            return Ok(Step::Waits);
        }
        match self.apply(&mut tx, event).await {
            Ok(applied) => {
                db::events::finish(&mut tx, event.id, applied.status, None, applied.order_id)
                    .await?;
                tx.commit().await?;
            }
            Err(ApplyError::Unusable(error)) => {
                // Nothing of the event's own writes survive; only the verdict does.
                tx.rollback().await?;
                let mut tx = self.db.begin().await?;
                db::orders::lock_keys(&mut tx, &event.order_keys).await?;
                db::events::finish(&mut tx, event.id, EventStatus::Failed, Some(&error), None)
                    .await?;
                tx.commit().await?;
                tracing::warn!(%error, "event failed");
            }
            Err(ApplyError::RetryLater(error)) => {
                tx.rollback().await?;
                let delay = retry_delay(event.attempts);
                db::events::postpone(&self.db, event.id, &error, delay).await?;
                tracing::warn!(%error, retry_in_s = delay.as_secs(), "event postponed");
            }
            Err(ApplyError::Database(error)) if db::is_unavailable(&error) => {
                return Err(error).context("applying an event")
            }
            Err(ApplyError::Database(error)) => {
                // The database refused something of this event's (a value too large for
                // an index, say): trying it again at once would refuse it again and hold
                // up every event after it. It waits, with the reason on record.
                tx.rollback().await?;
                let delay = retry_delay(event.attempts);
                let error = format!("the database refused the event: {error}");
                db::events::postpone(&self.db, event.id, &error, delay).await?;
                tracing::error!(%error, retry_in_s = delay.as_secs(), "event postponed");
            }
        }
        Ok(Step::Handled)
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &ClaimedEvent,
    ) -> Result<Applied, ApplyError> {
        let parsed = decode::parse_event(event.raw_body.as_bytes())
            .map_err(|e| ApplyError::Unusable(e.to_string()))?;
        Span::current().record("event.type", field::display(&parsed.event_type));
        let Some(signal) = self.signal(&parsed).await? else {
            return Ok(Applied {
                status: EventStatus::Ignored,
                order_id: None,
            });
        };

        // The event's order keys, locked by the caller.
        let links = signal.order_keys().links();
        let order = match db::orders::find_for_update(conn, &links).await? {
            Some(order) => order,
            None => db::orders::insert(conn).await?,
        };
        Span::current().record("order.id", order.id);
        db::orders::link(conn, order.id, &links).await?;

        let (facts, plan) = self
            .plan_order(conn, Some(&order), &parsed.stamp(), &signal)
            .await?;
        db::calls::append(conn, order.id, event.id, &plan.calls).await?;
        let workspace_id = match plan.provisioned.workspace {
            Workspace::Known(id) => Some(id),
            _ => None,
        };
        db::orders::update(
            conn,
            OrderUpdate {
                id: order.id,
                customer: facts.customer(),
                email: facts.email(),
                name: facts.name(),
                workspace_id,
                facts: serde_json::to_value(&facts).expect("facts serialize"),
                provisioned: serde_json::to_value(&plan.provisioned).expect("state serializes"),
                status: plan.status,
                attention: plan.attention.as_deref(),
            },
        )
        .await?;
        tracing::info!(
            calls = plan.calls.len(),
            status = %plan.status,
            attention = plan.attention.as_deref(),
            "event applied"
        );
        Ok(Applied {
            status: EventStatus::Processed,
            order_id: Some(order.id),
        })
    }

    /// What a Stripe event would do to its order as the order stands now: the processor's
    /// own reads and planning, in a read-only transaction, so nothing is written.
    pub async fn dry_run(&self, raw_body: &[u8]) -> Result<DryRun, ApplyError> {
        let parsed =
            decode::parse_event(raw_body).map_err(|e| ApplyError::Unusable(e.to_string()))?;
        let signal = self.signal(&parsed).await?.ok_or_else(|| {
            ApplyError::Unusable(format!(
                "{}: not an event type the service acts on",
                parsed.event_type
            ))
        })?;
        let mut tx = self.db.begin().await?;
        db::read_only(&mut tx).await?;
        let order = db::orders::find(&mut tx, &signal.order_keys().links()).await?;
        let (_, plan) = self
            .plan_order(&mut tx, order.as_ref(), &parsed.stamp(), &signal)
            .await?;
        tx.rollback().await?;
        Ok(DryRun {
            order_id: order.map(|order| order.id),
            effect: Effect::from(&plan),
        })
    }

    /// The event's signal, completed from Stripe's API where the event leaves something
    /// out; `None` for event types the service does not act on.
    async fn signal(&self, event: &Event) -> Result<Option<Signal>, ApplyError> {
        match event.signal(&self.catalog.workspace.id_field) {
            Ok(Some(signal)) => Ok(Some(self.with_line_items(signal).await?)),
            Ok(None) => Ok(None),
            Err(error) => Err(ApplyError::Unusable(error.to_string())),
        }
    }

    /// Takes the signal into the order's facts (an empty order's when `order` is `None`)
    /// and plans the calls that close the gap to what is provisioned.
    async fn plan_order(
        &self,
        conn: &mut PgConnection,
        order: Option<&OrderRow>,
        stamp: &Stamp,
        signal: &Signal,
    ) -> Result<(Facts, Plan), ApplyError> {
        let (mut facts, provisioned) = match order {
            Some(order) => stored_state(order)?,
            None => (Facts::default(), Provisioned::default()),
        };
        facts.apply(stamp, signal);
        self.complete_contact(&mut facts, stamp).await?;
        // An order with a workspace of its own needs no other order's.
        let has_workspace = provisioned.workspace != Workspace::None;
        if let (Some(customer), None, false) =
            (facts.customer(), facts.customer_workspace, has_workspace)
        {
            facts.customer_workspace =
                db::orders::customer_workspace(conn, customer, order.map(|o| o.id)).await?;
        }
        let plan = plan::plan(&facts, &provisioned, &self.catalog);
        Ok((facts, plan))
    }

    /// A paid one-off Checkout session's line items are not in the event: read them.
    async fn with_line_items(&self, signal: Signal) -> Result<Signal, ApplyError> {
        match signal {
            Signal::CheckoutCompleted { mut session }
                if session.mode == CheckoutMode::Payment && session.line_items.is_none() =>
            {
                if let Some(stripe) = &self.stripe {
                    session.line_items = Some(stripe.line_items(&session.id).await?);
                }
                Ok(Signal::CheckoutCompleted { session })
            }
            other => Ok(other),
        }
    }

    /// No event named the buyer's email: ask Stripe for the customer.
    async fn complete_contact(&self, facts: &mut Facts, stamp: &Stamp) -> Result<(), ApplyError> {
        let (Some(stripe), None, Some(customer)) = (&self.stripe, facts.email(), facts.customer())
        else {
            return Ok(());
        };
        let contact = stripe.customer(customer).await?;
        facts.learn_contact(stamp, contact.email.as_deref(), contact.name.as_deref());
        Ok(())
    }
}

/// An order's facts and provisioned state, as stored.
fn stored_state(order: &OrderRow) -> Result<(Facts, Provisioned), ApplyError> {
    let unreadable = |what: &str, e: serde_json::Error| {
        ApplyError::Unusable(format!("order {} {what} unreadable: {e}", order.id))
    };
    let facts = serde_json::from_value(order.facts.clone()).map_err(|e| unreadable("facts", e))?;
    let provisioned = serde_json::from_value(order.provisioned.clone())
        .map_err(|e| unreadable("provisioned state", e))?;
    Ok((facts, provisioned))
}

/// The wait after an event's failed try, given the tries before it.
fn retry_delay(attempts: i32) -> Duration {
    EVENT_RETRY.ceiling(u32::try_from(attempts).unwrap_or(0).saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_caps() {
        assert_eq!(retry_delay(0), Duration::from_secs(2));
        assert_eq!(retry_delay(1), Duration::from_secs(4));
        assert_eq!(retry_delay(20), EVENT_RETRY.cap);
        assert_eq!(retry_delay(-3), Duration::from_secs(2));
    }
}
