//! Stored events → orders and planned partner calls, a batch of events per transaction.
//!
//! Events apply in Stripe's order (`created`, then id) once settled; a crash anywhere
//! leaves the event pending for the next try, and the order keys' locks plus the
//! snapshot stamps make two processors agree.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::{field, Instrument, Span};

use crate::db;
use crate::db::events::{ClaimedEvent, EventStatus};
use crate::db::orders::{CustomerOrderRow, OrderRow, OrderUpdate};
use crate::domain::{CheckoutMode, Signal, Stamp};
use crate::dry_run::{DryRun, Effect};
use crate::plan::{self, Catalog, CustomerOrders, Facts, OtherOrder, Plan, Provisioned, Workspace};
use crate::retry::RetryPolicy;
use crate::stripe::api::{CustomerContact, StripeApi, StripeApiError};
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
/// The longest a processor whose claimed events all belong to orders another batch is
/// applying waits before it claims again; a batch that commits wakes it sooner.
const BUSY_PAUSE: Duration = Duration::from_millis(50);
/// Events claimed and applied in one transaction: enough that the commit's cost is spread
/// thin, few enough that the order keys held meanwhile hold up little else. Each event is a
/// savepoint: past 64 in one transaction, Postgres' subtransaction cache overflows and
/// every other session's snapshots slow down.
const BATCH: usize = 32;

#[derive(Clone)]
pub struct Processor {
    db: PgPool,
    catalog: Arc<Catalog>,
    stripe: Option<StripeApi>,
    settle: Duration,
    /// Rung by intake in this process when it stores an event.
    arrivals: Arc<Notify>,
}

/// What one step (a batch) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// An event was applied, or its failure or postponement recorded.
    Handled,
    /// No event was handled: some were found waiting for an older pending event of their
    /// order (any others were left for a later batch, as with `Busy`).
    Waits,
    /// Every event claimed has an order key another transaction holds (another batch is
    /// applying an event of its order): they are left for a later batch.
    Busy,
    Idle,
}

/// What became of one claimed event.
enum Outcome {
    /// Applied, or its failure or postponement recorded.
    Handled,
    /// Set to wait for an older pending event of its order.
    Waits,
    /// Leased, to be read from Stripe and applied after the batch commits.
    Leased(Box<Lease>),
}

/// How many events of a batch were handled, and how many set to wait.
#[derive(Debug, Default)]
struct Batch {
    handled: usize,
    waits: usize,
    /// Left for a later batch: another transaction holds one of their order keys.
    busy: usize,
}

impl Batch {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Handled | Outcome::Leased(_) => self.handled += 1,
            Outcome::Waits => self.waits += 1,
        }
    }

    fn step(&self) -> Step {
        match (self.handled, self.waits, self.busy) {
            (0, 0, 0) => Step::Idle,
            (0, 0, _) => Step::Busy,
            (0, _, _) => Step::Waits,
            _ => Step::Handled,
        }
    }
}

/// Whether an event may still need Stripe reads (it is leased for them), or has had them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    Leased,
    Done,
}

/// A leased event: what it needs from Stripe, and the lease that fences its applying.
struct Lease {
    id: uuid::Uuid,
    prepared: Prepared,
    needs: Needs,
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

    /// How long a stored event rests before it is applied.
    pub fn settle(&self) -> Duration {
        self.settle
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
        // Several loops run in one process; the process says once that they started.
        tracing::debug!("event processor loop started");
        while !*stop.borrow() {
            let pause = match self.process_next().await {
                Ok(Step::Handled | Step::Waits) => continue,
                Ok(Step::Busy) => BUSY_PAUSE,
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
        tracing::debug!("event processor loop stopped");
    }

    /// Processes every settled pending event, then returns how many it handled.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut handled = 0;
        loop {
            let batch = self.process_batch().await?;
            match batch.step() {
                Step::Idle => return Ok(handled),
                Step::Busy => {
                    let _ = tokio::time::timeout(BUSY_PAUSE, self.arrivals.notified()).await;
                }
                Step::Handled | Step::Waits => {}
            }
            handled += batch.handled;
        }
    }

    /// Claims a batch of settled events and applies them (see [`Processor::process_batch`]);
    /// says `Handled` if any was handled, `Waits` if every one was set to wait.
    pub async fn process_next(&self) -> anyhow::Result<Step> {
        Ok(self.process_batch().await?.step())
    }

    /// Claims up to [`BATCH`] settled events, of any orders, and applies them in one
    /// transaction: one commit, and one statement each for the claim and the locks, serve
    /// them all. Within it they go in Stripe's order, each in a savepoint of its own, so a
    /// failure rolls back that event's writes only; its verdict (failed, or postponed) is
    /// recorded in the batch. Two events of one order in a batch thus apply one after the
    /// other exactly as two transactions would: the later one's check for an older pending
    /// event sees the earlier one done, or still pending (postponed, leased), and waits.
    /// A database that cannot be reached fails the whole batch, to be claimed again.
    ///
    /// Locks, and why two transactions never wait on each other in a cycle: the claim
    /// skips rows others hold, so it waits for nothing. Then every order key of every event
    /// of the batch, with each buyer's customer key (`cus:...`), is taken without waiting,
    /// in one statement; an event with a key another transaction holds (another batch is
    /// applying its order) is left for a later batch. Waiting for it instead would hold up
    /// the whole batch, and put batches in a chain, each behind the one before, as a
    /// sale's events often straddle two batches. So a batch waits for no key, and a
    /// transaction that waits for keys (a leased event's own, see
    /// [`Processor::apply_leased`]) takes all it will hold at once, before any order's row
    /// lock. Then the orders those keys lead to, and a refund's customer's orders, are
    /// locked in id order in one statement
    /// ([`db::orders::lock_all`]), as the UChat webhook locks a workspace's orders; after
    /// that an event locks only orders already held, or new ones. Lastly an event done
    /// frees, by trigger, the events that waited for it: no claim takes a waiting event,
    /// and the transaction that set one waiting held a key this one has, so it is over.
    async fn process_batch(&self) -> anyhow::Result<Batch> {
        let mut tx = self.db.begin().await?;
        let mut claimed = db::events::claim_batch(&mut tx, self.settle, BATCH).await?;
        if claimed.is_empty() {
            return Ok(Batch::default());
        }
        claimed.sort_by(|a, b| {
            (a.stripe_created, &a.stripe_event_id).cmp(&(b.stripe_created, &b.stripe_event_id))
        });
        let mut decoded: Vec<_> = claimed
            .into_iter()
            .map(|event| {
                // Every line logged while the event is processed carries these.
                let span = tracing::info_span!(
                    "event",
                    event.id = event.id,
                    event.type = field::Empty,
                    order.id = field::Empty
                );
                let prepared = span.in_scope(|| self.decode(&event));
                (event, span, prepared)
            })
            .collect();
        let keys: BTreeSet<String> = decoded
            .iter()
            .flat_map(|(event, _, prepared)| lock_set(event, usable(prepared)))
            .collect();
        let held_elsewhere: HashSet<String> =
            db::orders::try_lock_keys(&mut tx, &Vec::from_iter(keys))
                .await?
                .into_iter()
                .collect();
        let mut batch = Batch::default();
        decoded.retain(|(event, _, prepared)| {
            let free = lock_set(event, usable(prepared))
                .iter()
                .all(|key| !held_elsewhere.contains(key));
            batch.busy += usize::from(!free);
            free
        });
        let prepared = decoded
            .iter()
            .filter_map(|(_, _, prepared)| usable(prepared));
        let links: BTreeSet<String> = prepared.clone().flat_map(Prepared::links).collect();
        let customers: Vec<String> = prepared
            .filter_map(Prepared::customer)
            .map(str::to_owned)
            .collect();
        db::orders::lock_all(&mut tx, &Vec::from_iter(links), &customers).await?;

        let applies_any = !decoded.is_empty();
        let mut leased = Vec::new();
        for (event, span, prepared) in decoded {
            let outcome = self
                .process_in_savepoint(&mut tx, &event, prepared, Reads::Leased)
                .instrument(span.clone())
                .await?;
            match outcome {
                Outcome::Leased(lease) => leased.push((event, span, lease)),
                outcome => batch.count(outcome),
            }
        }
        tx.commit().await?;
        // The keys are free again: processors that found them taken try again now.
        if applies_any {
            self.arrivals.notify_waiters();
        }
        for (event, span, lease) in leased {
            let outcome = self.apply_leased(&event, lease).instrument(span).await?;
            batch.count(outcome);
        }
        Ok(batch)
    }

    /// Settles a claimed event in a savepoint of `tx`, whose locks cover it: applied, set
    /// to wait, leased for Stripe reads, or, if that fails, its failure recorded in `tx`
    /// with nothing of its own writes kept.
    async fn process_in_savepoint(
        &self,
        tx: &mut PgConnection,
        event: &ClaimedEvent,
        prepared: Result<Option<Prepared>, ApplyError>,
        reads: Reads,
    ) -> anyhow::Result<Outcome> {
        let mut savepoint = tx.begin().await?;
        match self
            .settle_event(&mut savepoint, event, prepared, reads)
            .await
        {
            Ok(outcome) => {
                savepoint.commit().await?;
                Ok(outcome)
            }
            Err(error) => {
                savepoint.rollback().await?;
                self.record_failure(tx, event, error).await?;
                Ok(Outcome::Handled)
            }
        }
    }

    /// Applies an event, unless an older event of its order is still pending: then it is
    /// set to wait for that one. The caller holds the event's order keys, taken in an
    /// earlier statement (see [`db::events::wait_for_predecessor`]).
    ///
    /// No Stripe request is ever made while a transaction is open. An event that needs
    /// none (the usual case) is applied here. One that needs Stripe reads is leased
    /// instead, to be read and applied once the batch has committed (see
    /// [`Processor::apply_leased`]).
    async fn settle_event(
        &self,
        conn: &mut PgConnection,
        event: &ClaimedEvent,
        prepared: Result<Option<Prepared>, ApplyError>,
        reads: Reads,
    ) -> Result<Outcome, ApplyError> {
        let keys = order_keys(event, usable(&prepared));
        if let Some(predecessor) = db::events::wait_for_predecessor(conn, event, &keys).await? {
            tracing::debug!(predecessor, "event waits for an older event of its order");
            return Ok(Outcome::Waits);
        }
        let Some(prepared) = prepared? else {
            db::events::finish(conn, event.id, EventStatus::Ignored, None, None).await?;
            return Ok(Outcome::Handled);
        };
        if reads == Reads::Leased {
            let needs = self.reads_needed(conn, &prepared).await?;
            if !needs.is_empty() {
                let lease = db::events::lease(conn, event.id, EVENT_LEASE).await?;
                return Ok(Outcome::Leased(Box::new(Lease {
                    id: lease,
                    prepared,
                    needs,
                })));
            }
        }
        let order_id = self.apply(conn, event, prepared).await?;
        db::events::finish(conn, event.id, EventStatus::Processed, None, Some(order_id)).await?;
        Ok(Outcome::Handled)
    }

    /// Makes a leased event's Stripe reads, with no transaction open, then applies it in
    /// a transaction of its own, which takes the event back only if the lease is still
    /// this processor's (another may have taken it after the lease ran out) and takes its
    /// order keys again, with any the reads added, in one sorted call. The check for an
    /// older pending event runs again too (one may have been stored meanwhile). So an
    /// order's events still apply in Stripe's order, one at a time, whichever processor
    /// runs them.
    async fn apply_leased(
        &self,
        event: &ClaimedEvent,
        lease: Box<Lease>,
    ) -> anyhow::Result<Outcome> {
        let read = self.read_stripe(lease.prepared, lease.needs).await;
        let mut tx = self.db.begin().await?;
        if !db::events::reclaim_leased(&mut tx, event.id, lease.id).await? {
            tracing::info!(
                "the event's lease ran out during the Stripe reads; another processor has it"
            );
            return Ok(Outcome::Handled);
        }
        db::orders::lock_keys(&mut tx, &lock_set(event, read.as_ref().ok())).await?;
        let outcome = self
            .process_in_savepoint(&mut tx, event, read.map(Some), Reads::Done)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Records why an event could not be applied: failed for good, or pending for a later
    /// try. The caller holds the event's order keys and has rolled back its writes.
    async fn record_failure(
        &self,
        conn: &mut PgConnection,
        event: &ClaimedEvent,
        error: ApplyError,
    ) -> anyhow::Result<()> {
        match error {
            ApplyError::Unusable(error) => {
                db::events::finish(conn, event.id, EventStatus::Failed, Some(&error), None).await?;
                tracing::warn!(%error, "event failed");
            }
            ApplyError::RetryLater(error) => {
                let delay = retry_delay(event.attempts);
                db::events::postpone(conn, event.id, &error, delay).await?;
                tracing::warn!(%error, retry_in_s = delay.as_secs(), "event postponed");
            }
            ApplyError::Database(error) if db::is_unavailable(&error) => {
                return Err(error).context("applying an event")
            }
            ApplyError::Database(error) => {
                // The database refused something of this event's (a value too large for
                // an index, say): trying it again at once would refuse it again and hold
                // up every event after it. It waits, with the reason on record.
                let delay = retry_delay(event.attempts);
                let error = format!("the database refused the event: {error}");
                db::events::postpone(conn, event.id, &error, delay).await?;
                tracing::error!(%error, retry_in_s = delay.as_secs(), "event postponed");
            }
        }
        Ok(())
    }

    /// The event's stamp and signal; `None` for event types the service does not act on.
    fn decode(&self, event: &ClaimedEvent) -> Result<Option<Prepared>, ApplyError> {
        let parsed = decode::parse_event(event.raw_body.as_bytes())
            .map_err(|e| ApplyError::Unusable(e.to_string()))?;
        Span::current().record("event.type", field::display(&parsed.event_type));
        Prepared::of(&parsed, &self.catalog)
    }

    /// Applies the prepared event to its order: the order's new facts, state and calls.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &ClaimedEvent,
        prepared: Prepared,
    ) -> Result<i64, ApplyError> {
        // The event's order keys and its customer's are locked by the caller (see
        // `lock_set`): two orders of one customer never choose a workspace at once (both
        // resuming the same old one, say).
        let links = prepared.links();
        let found = match db::orders::find_for_update(conn, &links).await? {
            Some(order) => Some(order),
            None => self.order_of_customer(conn, &prepared).await?,
        };
        let order = match found {
            Some(order) => order,
            None => db::orders::insert(conn).await?,
        };
        Span::current().record("order.id", order.id);
        db::orders::link(conn, order.id, &links).await?;

        let (facts, plan) = self.plan_order(conn, Some(&order), &prepared).await?;
        if plan.wait {
            // The customer's workspace is being created: this event goes again shortly,
            // with the reason on record, rather than to an operator.
            return Err(ApplyError::RetryLater(
                plan.attention.unwrap_or_else(|| "waiting".to_owned()),
            ));
        }
        db::calls::append(conn, order.id, Some(event.id), &plan.calls).await?;
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
        Ok(order.id)
    }

    /// A refund or dispute that no Stripe id ties to an order (a subscription payment on
    /// an API version since 2025-03-31, without `STRIPE_API_KEY`): the customer's order,
    /// when they have exactly one live order.
    async fn order_of_customer(
        &self,
        conn: &mut PgConnection,
        prepared: &Prepared,
    ) -> Result<Option<OrderRow>, ApplyError> {
        let (true, Some(customer)) = (prepared.is_payment_reversal(), prepared.customer()) else {
            return Ok(None);
        };
        let live: Vec<i64> = db::orders::of_customer(conn, customer, None)
            .await?
            .iter()
            .filter(|row| other_order(row).is_live())
            .map(|row| row.id)
            .collect();
        match live[..] {
            [only] => Ok(Some(db::orders::get_for_update(conn, only).await?)),
            _ => Ok(None),
        }
    }

    /// What a Stripe event would do to its order as the order stands now: the processor's
    /// own reads and planning, the reads first and then a read-only transaction, so
    /// nothing is written.
    pub async fn dry_run(&self, raw_body: &[u8]) -> Result<DryRun, ApplyError> {
        let parsed =
            decode::parse_event(raw_body).map_err(|e| ApplyError::Unusable(e.to_string()))?;
        let prepared = Prepared::of(&parsed, &self.catalog)?.ok_or_else(|| {
            ApplyError::Unusable(format!(
                "{}: not an event type the service acts on",
                parsed.event_type
            ))
        })?;
        let needs = {
            let mut conn = self.db.acquire().await?;
            self.reads_needed(&mut conn, &prepared).await?
        };
        let prepared = self.read_stripe(prepared, needs).await?;
        let mut tx = self.db.begin().await?;
        db::read_only(&mut tx).await?;
        let order = match db::orders::find(&mut tx, &prepared.links()).await? {
            Some(order) => Some(order),
            None => self.order_of_customer(&mut tx, &prepared).await?,
        };
        let (_, plan) = self.plan_order(&mut tx, order.as_ref(), &prepared).await?;
        tx.rollback().await?;
        Ok(DryRun {
            order_id: order.map(|order| order.id),
            effect: Effect::from(&plan),
        })
    }

    /// The Stripe reads the event needs, given its order as stored (read without a lock:
    /// a later change to the order can only make a read unneeded). Without Stripe's API
    /// there are none, and the order is not read.
    async fn reads_needed(
        &self,
        conn: &mut PgConnection,
        prepared: &Prepared,
    ) -> Result<Needs, sqlx::Error> {
        let Some(_) = &self.stripe else {
            return Ok(Needs::default());
        };
        let stored = db::orders::find(conn, &prepared.links()).await?;
        let stored = stored.as_ref();
        let signal = &prepared.signal;
        let mut needs = Needs::default();
        match signal {
            Signal::CheckoutCompleted { session }
                if session.mode == CheckoutMode::Payment && session.line_items.is_none() =>
            {
                needs.line_items = Some(session.id.clone());
            }
            // Snapshots of one subscription within a second cannot be ordered: apply the
            // subscription as Stripe has it now (Stripe's own advice).
            Signal::Subscription { subscription, .. } => {
                needs.subscription = Some(subscription.id.clone());
            }
            Signal::Refund { refund } if refund.invoice.is_none() && stored.is_none() => {
                needs.payment = refund.payment_intent.clone().or(refund.charge.clone());
            }
            Signal::Dispute { dispute } if dispute.invoice.is_none() && stored.is_none() => {
                needs.payment = dispute.payment_intent.clone().or(dispute.charge.clone());
            }
            _ => {}
        }
        // Only a sale needs the buyer's email: money going back never creates a workspace.
        if !prepared.is_payment_reversal() {
            let mut facts = stored
                .and_then(|order| stored_state(order).ok())
                .map(|(facts, _)| facts)
                .unwrap_or_default();
            facts.apply(&prepared.stamp, signal);
            if facts.email().is_none() {
                needs.contact = facts.customer().map(str::to_owned);
            }
        }
        Ok(needs)
    }

    /// Makes the reads, with no transaction open, and completes the event with them.
    async fn read_stripe(
        &self,
        mut prepared: Prepared,
        needs: Needs,
    ) -> Result<Prepared, ApplyError> {
        let Some(stripe) = &self.stripe else {
            return Ok(prepared);
        };
        if let Some(session_id) = &needs.line_items {
            let items = stripe.line_items(session_id).await?;
            if let Signal::CheckoutCompleted { session } = &mut prepared.signal {
                session.line_items = Some(items);
            }
        }
        if let Some(id) = &needs.subscription {
            match stripe.subscription(id).await {
                Ok(mut now) => {
                    if let Signal::Subscription { subscription, .. } = &mut prepared.signal {
                        // The event's own workspace id stays, should Stripe's metadata lack it.
                        now.workspace_id = now.workspace_id.or(subscription.workspace_id.take());
                        *subscription = now;
                    }
                }
                // Stripe does not know it (an object of another mode, a fake that lacks
                // it): the snapshot in the event is all there is.
                Err(StripeApiError::Refused(error)) => {
                    tracing::warn!(%error, "subscription not readable; applying the event's snapshot")
                }
                Err(error) => return Err(error.into()),
            }
        }
        if let Some(payment) = &needs.payment {
            prepared.learn_payment(stripe, payment).await?;
        }
        if let Some(customer) = &needs.contact {
            match stripe.customer(customer).await {
                Ok(contact) => prepared.contact = Some(contact),
                // Without it the planner says what is missing (an email), if anything.
                Err(StripeApiError::Refused(error)) => {
                    tracing::warn!(%error, "customer not readable; planning without their contact")
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(prepared)
    }

    /// Takes the event into the order's facts (an empty order's when `order` is `None`)
    /// and plans the calls that close the gap to what is provisioned.
    async fn plan_order(
        &self,
        conn: &mut PgConnection,
        order: Option<&OrderRow>,
        prepared: &Prepared,
    ) -> Result<(Facts, Plan), ApplyError> {
        let (mut facts, provisioned) = match order {
            Some(order) => stored_state(order)?,
            None => (Facts::default(), Provisioned::default()),
        };
        facts.apply(&prepared.stamp, &prepared.signal);
        if let Some(contact) = &prepared.contact {
            facts.learn_contact(
                &prepared.stamp,
                contact.email.as_deref(),
                contact.name.as_deref(),
            );
        }
        if let Some(customer) = facts.customer() {
            let others = db::orders::of_customer(conn, customer, order.map(|o| o.id)).await?;
            let others: Vec<OtherOrder> = others.iter().map(other_order).collect();
            facts.customer_orders = CustomerOrders::of(&others);
        }
        let mut plan = plan::plan(&facts, &provisioned, &self.catalog);
        if plan.attention.is_none()
            && prepared.is_payment_reversal()
            && order.is_none_or(|order| order.facts == serde_json::json!({}))
        {
            // A refund or dispute that found no order: an operator must say whose it is.
            plan.status = plan::OrderStatus::NeedsAttention;
            plan.attention = Some(
                "a refund or dispute that no order's Stripe ids lead to: set STRIPE_API_KEY \
                 (to find its invoice), or reprocess it once its order is known"
                    .to_owned(),
            );
        }
        Ok((facts, plan))
    }
}

/// How long a leased event is this processor's: Stripe reads with their timeouts, and
/// room to record.
const EVENT_LEASE: Duration = Duration::from_secs(120);

/// An event ready to apply: its stamp, its signal completed from Stripe's API where the
/// payload leaves something out, and the buyer's contact when only Stripe has it.
struct Prepared {
    stamp: Stamp,
    signal: Signal,
    contact: Option<CustomerContact>,
}

impl Prepared {
    fn of(event: &Event, catalog: &Catalog) -> Result<Option<Prepared>, ApplyError> {
        match event.signal(&catalog.workspace.id_field) {
            Ok(Some(signal)) => Ok(Some(Prepared {
                stamp: event.stamp(),
                signal,
                contact: None,
            })),
            Ok(None) => Ok(None),
            Err(error) => Err(ApplyError::Unusable(error.to_string())),
        }
    }

    fn links(&self) -> Vec<String> {
        self.signal.order_keys().links()
    }

    fn customer(&self) -> Option<&str> {
        match &self.signal {
            Signal::Refund { refund } => refund.customer.as_deref(),
            Signal::Dispute { dispute } => dispute.customer.as_deref(),
            _ => None,
        }
    }

    /// A refund or a dispute: money going back.
    fn is_payment_reversal(&self) -> bool {
        matches!(self.signal, Signal::Refund { .. } | Signal::Dispute { .. })
    }

    /// Finds what a refund's or dispute's payload no longer links (since 2025-03-31): the
    /// charge's payment intent and customer, and the invoice the payment paid.
    async fn learn_payment(&mut self, stripe: &StripeApi, payment: &str) -> Result<(), ApplyError> {
        let (payment_intent, customer, mut invoice) = if payment.starts_with("pi_") {
            (Some(payment.to_owned()), None, None)
        } else {
            let charge = stripe.charge(payment).await?;
            (charge.payment_intent, charge.customer, charge.invoice)
        };
        if let (None, Some(intent)) = (&invoice, &payment_intent) {
            invoice = stripe.invoice_paid_by(intent).await?;
        }
        let (slot_intent, slot_customer, slot_invoice) = match &mut self.signal {
            Signal::Refund { refund } => (
                &mut refund.payment_intent,
                &mut refund.customer,
                &mut refund.invoice,
            ),
            Signal::Dispute { dispute } => (
                &mut dispute.payment_intent,
                &mut dispute.customer,
                &mut dispute.invoice,
            ),
            _ => return Ok(()),
        };
        *slot_intent = slot_intent.take().or(payment_intent);
        *slot_customer = slot_customer.take().or(customer);
        *slot_invoice = slot_invoice.take().or(invoice);
        Ok(())
    }
}

/// The Stripe reads one event needs.
#[derive(Debug, Default)]
struct Needs {
    /// A paid one-off Checkout session's line items are not in the event.
    line_items: Option<String>,
    subscription: Option<String>,
    /// A payment (intent or charge) whose invoice the payload does not name.
    payment: Option<String>,
    /// No event named the buyer's email: the Stripe customer's.
    contact: Option<String>,
}

impl Needs {
    fn is_empty(&self) -> bool {
        self.line_items.is_none()
            && self.subscription.is_none()
            && self.payment.is_none()
            && self.contact.is_none()
    }
}

/// The keys of an event's order: as stored at intake, and those it links once decoded and
/// completed from Stripe (a refund's invoice, say). An older pending event sharing any of
/// them goes first.
fn order_keys(event: &ClaimedEvent, prepared: Option<&Prepared>) -> Vec<String> {
    let mut keys = event.order_keys.clone();
    keys.extend(prepared.into_iter().flat_map(Prepared::links));
    keys.sort();
    keys.dedup();
    keys
}

/// The advisory locks an event is applied under: its order keys and its customer's
/// (`cus:...`). Taken in one sorted call with every other key the transaction will hold
/// (see [`Processor::process_batch`]).
fn lock_set(event: &ClaimedEvent, prepared: Option<&Prepared>) -> Vec<String> {
    let mut keys = order_keys(event, prepared);
    keys.extend(
        prepared
            .and_then(|prepared| prepared.signal.order_keys().customer)
            .map(|customer| format!("cus:{customer}")),
    );
    keys
}

/// A decoded event that is to be applied: not unusable, and of a type the service acts on.
fn usable(decoded: &Result<Option<Prepared>, ApplyError>) -> Option<&Prepared> {
    decoded.as_ref().ok().and_then(Option::as_ref)
}

/// A customer's order as choosing a workspace sees it.
fn other_order(row: &CustomerOrderRow) -> OtherOrder {
    OtherOrder {
        status: row.status,
        workspace_id: row.workspace_id,
        // A state that no longer reads counts as nothing provisioned.
        provisioned: serde_json::from_value(row.provisioned.clone()).unwrap_or_default(),
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
