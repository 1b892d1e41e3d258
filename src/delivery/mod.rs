//! The delivery worker: claims due partner calls, runs them against UChat, records
//! every try, and schedules what comes next.
//!
//! Calls are claimed in batches, in one short transaction (`FOR UPDATE SKIP LOCKED`),
//! each under a fresh lease id, run outside any transaction, and recorded by the
//! completer, many to a transaction, each only if its lease is still its own. Per
//! order, a call waits until every earlier call has succeeded or was canceled.

mod completer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use crate::retry::RetryPolicy;

use crate::db::calls::{self, AttemptRecord, ClaimedCall, FinishedTry, Verdict};
use crate::db::orders;
use crate::metrics::Metrics;
use crate::partner::{
    Call, CallKind, ExistingUserWorkspace, NewWorkspace, Ownership, PartnerClient, PartnerError,
    Reply, WorkspaceInfo,
};
use crate::secret::Secret;
use completer::Completer;

/// How often a running worker takes back calls whose lease expired.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Calls in flight at once in this process.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// How often a call held for lack of partner credit is tried again.
    pub held_retry: Duration,
    /// How long a claim lasts before another worker may take the call back.
    pub lease: Duration,
    /// The longest the worker sleeps without looking for due calls.
    pub max_poll: Duration,
    /// How long in-flight calls get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl DeliverySettings {
    /// Defaults for a partner timeout: a lease outlasts the up to four requests of a try
    /// (a reuse's ownership check, the look before a repeated create, create, create for
    /// the existing user) with room to record. A create's first try makes one or two.
    pub fn for_timeout(timeout: Duration) -> DeliverySettings {
        DeliverySettings {
            concurrency: 8,
            retry: RetryPolicy::default(),
            held_retry: Duration::from_secs(15 * 60),
            lease: timeout * 4 + Duration::from_secs(10),
            max_poll: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(15),
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    db: PgPool,
    partner: PartnerClient,
    settings: Arc<DeliverySettings>,
    /// Rung when a batch of tries is recorded, so the next calls of their orders run at
    /// once, and when calls are queued.
    wake: Arc<Notify>,
    completer: Arc<Completer>,
    metrics: Arc<Metrics>,
}

/// What a successful try did.
struct Done {
    reply: Option<Reply>,
    workspace_id: Option<i64>,
    /// The kind the call ran as, when it changed (create → create-for-existing-user).
    ran_as: Option<CallKind>,
    /// The first try had taken effect already; nothing was repeated.
    already_applied: bool,
}

impl Done {
    fn replied(reply: Reply) -> Done {
        Done {
            reply: Some(reply),
            workspace_id: None,
            ran_as: None,
            already_applied: false,
        }
    }

    /// A workspace bound to the order without a write.
    fn bound(workspace_id: i64) -> Done {
        Done {
            reply: None,
            workspace_id: Some(workspace_id),
            ran_as: None,
            already_applied: false,
        }
    }

    fn already_applied(workspace_id: Option<i64>) -> Done {
        Done {
            reply: None,
            workspace_id,
            ran_as: None,
            already_applied: true,
        }
    }
}

impl Worker {
    pub fn new(
        db: PgPool,
        partner: PartnerClient,
        settings: DeliverySettings,
        metrics: Arc<Metrics>,
    ) -> Worker {
        let wake = Arc::new(Notify::new());
        Worker {
            completer: Arc::new(Completer::new(db.clone(), wake.clone())),
            db,
            partner,
            settings: Arc::new(settings),
            wake,
            metrics,
        }
    }

    /// Delivers until `stop` turns true; then stops claiming, gives in-flight calls
    /// `shutdown_grace` to finish and be recorded, and leaves any call still running to
    /// be taken back by lease.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            concurrency = self.settings.concurrency,
            "delivery worker started"
        );
        let listener = tokio::spawn(listen(self.db.clone(), self.wake.clone()));
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut in_flight = JoinSet::new();
        let mut reclaimed_at: Option<Instant> = None;
        while !*stop.borrow() {
            // Expired leases are rare: looking once a second is plenty.
            if reclaimed_at.is_none_or(|at| at.elapsed() >= RECLAIM_EVERY) {
                if let Err(error) = calls::reclaim_expired(&self.db).await {
                    tracing::warn!(%error, "taking back expired leases failed; retrying");
                }
                reclaimed_at = Some(Instant::now());
            }
            while in_flight.try_join_next().is_some() {}
            // Permits come back a recorded batch at a time, with a wake: so under load a
            // claim takes a batch too.
            let free = permits.available_permits();
            let pause = if free == 0 {
                self.settings.max_poll
            } else {
                let claimed = self.claim_and_spawn(free, &permits, &mut in_flight).await;
                if claimed == free {
                    continue; // there may be more due
                }
                self.pause().await
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        listener.abort();
        let drained = tokio::time::timeout(self.settings.shutdown_grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                cut_off = in_flight.len(),
                "calls still running at shutdown; they are retried after their lease expires"
            );
            in_flight.abort_all();
        }
        tracing::info!("delivery worker stopped");
    }

    /// Claims and runs due calls until none is due: for tests and one-shot runs.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let mut delivered = 0;
        loop {
            calls::reclaim_expired(&self.db).await?;
            let claimed = calls::claim(
                &self.db,
                self.settings.concurrency as i64,
                self.settings.lease,
            )
            .await?;
            if claimed.is_empty() {
                return Ok(delivered);
            }
            delivered += claimed.len();
            let mut batch = JoinSet::new();
            for call in claimed {
                let worker = self.clone();
                batch.spawn(async move { worker.deliver(call, None).await });
            }
            while batch.join_next().await.is_some() {}
        }
    }

    async fn claim_and_spawn(
        &self,
        free: usize,
        permits: &Arc<Semaphore>,
        in_flight: &mut JoinSet<()>,
    ) -> usize {
        let claimed = match calls::claim(&self.db, free as i64, self.settings.lease).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "claiming partner calls failed; retrying");
                return 0;
            }
        };
        let count = claimed.len();
        for call in claimed {
            let permit = permits
                .clone()
                .try_acquire_owned()
                .expect("claimed no more than free permits");
            let worker = self.clone();
            in_flight.spawn(async move { worker.deliver(call, Some(permit)).await });
        }
        count
    }

    /// How long to sleep when nothing is due: until the next scheduled call, at most
    /// `max_poll` (the fallback when a notification is missed).
    async fn pause(&self) -> Duration {
        match calls::next_due_in(&self.db).await {
            Ok(Some(due_in)) => due_in.min(self.settings.max_poll),
            _ => self.settings.max_poll,
        }
    }

    /// Runs one claimed call and records the try, freeing `permit` once it is recorded;
    /// a failure to record leaves the call to be taken back when its lease expires.
    async fn deliver(&self, call: ClaimedCall, permit: Option<OwnedSemaphorePermit>) {
        // Every line logged during the try carries these.
        let span = tracing::info_span!(
            "partner_call",
            call.id = call.id,
            call.kind = %call.kind,
            order.id = call.order_id,
            attempt = call.attempt
        );
        let running = self.completer.begin(permit);
        self.try_once(call, running).instrument(span).await
    }

    async fn try_once(&self, call: ClaimedCall, running: completer::Running) {
        let started_at = chrono::Utc::now();
        let clock = Instant::now();
        let result = self.perform(&call).await;
        let duration = clock.elapsed();
        let (attempt, verdict) = self.judge(&call, result, started_at, duration);
        self.metrics
            .record_partner_call(call.kind, verdict.outcome(), duration);
        match &verdict {
            Verdict::Succeeded {
                already_applied, ..
            } => {
                tracing::info!(already_applied, "partner call succeeded")
            }
            Verdict::Retry { delay } => {
                tracing::warn!(
                    retry_in_ms = delay.as_millis() as u64,
                    error = attempt.error.as_deref(),
                    "partner call failed; will retry"
                )
            }
            Verdict::Held { reason, .. } => {
                tracing::warn!(%reason, "partner call held: not enough partner credit")
            }
            Verdict::Dead { reason } => tracing::error!(%reason, "partner call dead"),
        }
        let done = FinishedTry {
            call,
            attempt,
            verdict,
        };
        self.completer.complete(running, done).await
    }

    /// What a try's result means for the call.
    fn judge(
        &self,
        call: &ClaimedCall,
        result: Result<Done, PartnerError>,
        started_at: chrono::DateTime<chrono::Utc>,
        duration: Duration,
    ) -> (AttemptRecord, Verdict) {
        let mut attempt = AttemptRecord {
            started_at,
            duration,
            http_status: None,
            response_excerpt: None,
            error: None,
        };
        let verdict = match result {
            Ok(done) => {
                if let Some(reply) = &done.reply {
                    attempt.http_status = Some(reply.status);
                    attempt.response_excerpt = Some(reply.raw_excerpt.clone());
                }
                if done.already_applied {
                    attempt.error = Some("an earlier try had taken effect; not repeated".into());
                }
                Verdict::Succeeded {
                    workspace_id: done.workspace_id,
                    kind: done.ran_as,
                    already_applied: done.already_applied,
                }
            }
            Err(error) => {
                attempt.http_status = error.status();
                attempt.response_excerpt = error.excerpt().map(str::to_owned);
                attempt.error = Some(error.to_string());
                match error {
                    PartnerError::Retryable { retry_after, .. } => {
                        let tries = u32::try_from(call.attempt).unwrap_or(u32::MAX);
                        match self
                            .settings
                            .retry
                            .delay(tries, rand::random(), retry_after)
                        {
                            Some(delay) => Verdict::Retry { delay },
                            None => Verdict::Dead {
                                reason: format!("gave up after {tries} tries: {error}"),
                            },
                        }
                    }
                    PartnerError::InsufficientCredit { message, .. } => Verdict::Held {
                        delay: self.settings.held_retry,
                        reason: message,
                    },
                    other => Verdict::Dead {
                        reason: other.message().to_owned(),
                    },
                }
            }
        };
        (attempt, verdict)
    }

    async fn perform(&self, claimed: &ClaimedCall) -> Result<Done, PartnerError> {
        let call = Call::from_stored(claimed.kind, claimed.body.clone()).map_err(|error| {
            PartnerError::invalid(format!("the stored call cannot be read: {error}"))
        })?;
        let workspace = match call {
            Call::Create(new) => {
                let existing = new.for_existing_user();
                return self.create(claimed, Some(new), existing).await;
            }
            Call::CreateForExistingUser(existing) => {
                return self.create(claimed, None, existing).await
            }
            Call::ClaimWorkspace {
                workspace_id,
                email,
            } => return self.claim(workspace_id, &email).await,
            Call::ReuseWorkspace {
                workspace_id,
                create,
            } => return self.reuse(claimed, workspace_id, create).await,
            _ => claimed.workspace_id.ok_or_else(|| {
                PartnerError::invalid(
                    "the order has no workspace: its create call has not succeeded".into(),
                )
            })?,
        };
        if let Some(counter) = Counter::of(&call) {
            let now = counter.read(&self.partner, workspace).await?;
            match claimed.baseline.as_ref().and_then(|b| b["value"].as_f64()) {
                Some(before) if counter.took_effect(before, now) => {
                    return Ok(Done::already_applied(None))
                }
                Some(_) => {}
                None => self.keep_baseline(claimed, json!({ "value": now })).await?,
            }
        }
        let reply = self.partner.execute(&call, Some(workspace)).await?;
        Ok(Done::replied(reply))
    }

    /// A create, made at most once: its first try only creates, and a repeat first looks
    /// for the workspace an earlier try may have made. An email that already has a UChat
    /// account gets a workspace through create-for-existing-user (`existing`); so does a
    /// call that is one (`new` is `None`).
    async fn create(
        &self,
        claimed: &ClaimedCall,
        new: Option<NewWorkspace>,
        existing: ExistingUserWorkspace,
    ) -> Result<Done, PartnerError> {
        if let Some(first_tried_at) = claimed.first_tried_at {
            let made = self
                .made_earlier(claimed.order_id, &existing, first_tried_at)
                .await?;
            if let Some(made) = made {
                return Ok(Done::already_applied(Some(made)));
            }
        }

        let ran_as = match new {
            Some(new) => {
                // Sent once, never stored or logged: the owner sets their own via UChat.
                let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 24);
                let new = NewWorkspace {
                    password: Some(Secret::new(password)),
                    ..new
                };
                match self.partner.execute(&Call::Create(new), None).await {
                    Ok(reply) => return created(reply, None),
                    Err(PartnerError::ExistingAccount { .. }) => tracing::info!(
                        "email already has a UChat account; creating for the existing user"
                    ),
                    Err(error) => return Err(error),
                }
                Some(CallKind::CreateForExistingUser)
            }
            None => None,
        };
        let call = Call::CreateForExistingUser(existing);
        let reply = self.partner.execute(&call, None).await?;
        created(reply, ran_as)
    }

    /// The workspace an earlier try of an order's create made, if UChat shows one that
    /// [`may_be_made_by`] that try and no other order has: a customer with two
    /// subscriptions has two workspaces of the same owner and team.
    async fn made_earlier(
        &self,
        order_id: i64,
        sent: &ExistingUserWorkspace,
        first_tried_at: DateTime<Utc>,
    ) -> Result<Option<i64>, PartnerError> {
        let mut candidates: Vec<i64> = self
            .workspaces_owned_by(&sent.email)
            .await?
            .iter()
            .filter(|workspace| may_be_made_by(workspace, sent, first_tried_at))
            .map(|workspace| workspace.id)
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        let taken = orders::bound_elsewhere(&self.db, order_id, &candidates)
            .await
            .map_err(|error| {
                not_sent(format!(
                    "could not read which workspaces other orders have: {error}"
                ))
            })?;
        candidates.retain(|id| !taken.contains(id));
        // The newest (UChat counts ids up): where UChat shows no creation time, an older
        // workspace of the owner is likelier one they made themselves.
        Ok(candidates.into_iter().max())
    }

    /// Binds the workspace the buyer named, if UChat shows the buyer as its owner. A
    /// read only, so safe to repeat; refused for good otherwise, and then no later call
    /// of the order reaches it (the order has no workspace).
    async fn claim(&self, workspace_id: i64, email: &str) -> Result<Done, PartnerError> {
        let refused = |message: String| PartnerError::Rejected {
            status: None,
            message,
            excerpt: None,
        };
        match self.partner.ownership(workspace_id, email).await? {
            Ownership::Owner => Ok(Done::bound(workspace_id)),
            Ownership::OtherOwner => Err(refused(format!(
                "workspace {workspace_id} belongs to another account"
            ))),
            Ownership::NoSuchWorkspace => Err(refused(format!(
                "workspace {workspace_id} does not exist in UChat"
            ))),
        }
    }

    /// Binds the customer's earlier workspace if UChat still has it (and it is still
    /// theirs); otherwise creates a new one, as a create call would, at most once. A
    /// repeat checks again first: the earlier workspace does not come back, so a try that
    /// went on to create stays on that path and finds what it made.
    async fn reuse(
        &self,
        claimed: &ClaimedCall,
        workspace_id: i64,
        create: NewWorkspace,
    ) -> Result<Done, PartnerError> {
        match self.partner.ownership(workspace_id, &create.email).await? {
            Ownership::Owner => return Ok(Done::bound(workspace_id)),
            Ownership::OtherOwner => tracing::info!(
                workspace_id,
                "the customer's last workspace has another owner now; creating a new one"
            ),
            Ownership::NoSuchWorkspace => tracing::info!(
                workspace_id,
                "UChat no longer has the customer's last workspace; creating a new one"
            ),
        }
        let existing = create.for_existing_user();
        self.create(claimed, Some(create), existing).await
    }

    /// The workspaces UChat shows `email` owning (compared case-insensitively).
    async fn workspaces_owned_by(&self, email: &str) -> Result<Vec<WorkspaceInfo>, PartnerError> {
        let mut owned = Vec::new();
        let mut page = 1;
        loop {
            let listed = self.partner.list_workspaces(page, Some(email)).await?;
            let last_page = listed.meta.last_page;
            owned.extend(
                listed
                    .data
                    .into_iter()
                    .filter(|w| w.owner_email.trim().eq_ignore_ascii_case(email.trim())),
            );
            // A search by one email spans few pages; the bound guards against a bad meta.
            if i64::from(page) >= last_page || page >= 50 {
                return Ok(owned);
            }
            page += 1;
        }
    }

    async fn keep_baseline(&self, call: &ClaimedCall, baseline: Value) -> Result<(), PartnerError> {
        match calls::save_baseline(&self.db, call, &baseline).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(not_sent(
                "the call's lease was lost before it was sent".into(),
            )),
            Err(error) => Err(not_sent(format!(
                "could not record the workspace state: {error}"
            ))),
        }
    }
}

/// A failure before anything was sent: safe to retry.
fn not_sent(message: String) -> PartnerError {
    PartnerError::Retryable {
        status: None,
        message,
        excerpt: None,
        retry_after: None,
        ambiguous: false,
    }
}

/// How much earlier than the first try began (by our database's clock) UChat may stamp
/// the workspace that try made: its clock may lag ours, and it may cut times to the
/// second. A minute is ample for clocks kept by NTP; a workspace stamped earlier still
/// was not made by the try.
const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);

/// Whether a try of a create that sent `sent` and began at `first_tried_at` may have made
/// `workspace` (owned by the email sent): its team name and creation time must fit, where
/// UChat shows them.
fn may_be_made_by(
    workspace: &WorkspaceInfo,
    sent: &ExistingUserWorkspace,
    first_tried_at: DateTime<Utc>,
) -> bool {
    let team_fits = workspace
        .team_name
        .as_deref()
        .map(str::trim)
        .filter(|team| !team.is_empty())
        .is_none_or(|team| team.eq_ignore_ascii_case(sent.team_name.trim()));
    let time_fits = workspace
        .created()
        .is_none_or(|created| created >= first_tried_at - CLOCK_SKEW);
    team_fits && time_fits
}

fn created(reply: Reply, ran_as: Option<CallKind>) -> Result<Done, PartnerError> {
    let workspace_id = reply.workspace_id().ok_or_else(|| PartnerError::Rejected {
        status: Some(reply.status),
        message: "create answered without a workspace id".into(),
        excerpt: Some(reply.raw_excerpt.clone()),
    })?;
    Ok(Done {
        reply: Some(reply),
        workspace_id: Some(workspace_id),
        ran_as,
        already_applied: false,
    })
}

/// A call that adds to or takes from a workspace counter (add-on units, points, flows):
/// it repeats its effect on every call, so a retry first looks whether it took effect.
struct Counter {
    counted: Counted,
    delta: f64,
}

enum Counted {
    Addon(String),
    Points,
    /// A template installs at least one flow.
    Flows,
}

impl Counter {
    fn of(call: &Call) -> Option<Counter> {
        let (counted, delta) = match call {
            Call::AddAddon { addon, qty } => (Counted::Addon(addon.clone()), f64::from(*qty)),
            Call::RemoveAddon { addon, qty } => (Counted::Addon(addon.clone()), -f64::from(*qty)),
            Call::TopupPoints { points, .. } => (Counted::Points, *points as f64),
            Call::DeductPoints { points, .. } => (Counted::Points, -(*points as f64)),
            Call::InstallTemplate { .. } => (Counted::Flows, 1.0),
            _ => return None,
        };
        Some(Counter { counted, delta })
    }

    async fn read(&self, partner: &PartnerClient, workspace: i64) -> Result<f64, PartnerError> {
        Ok(match &self.counted {
            Counted::Addon(addon) => {
                partner.get_workspace(workspace).await?.addon_qty(addon) as f64
            }
            Counted::Points => partner.get_workspace(workspace).await?.points,
            Counted::Flows => partner.list_flows(workspace).await?.len() as f64,
        })
    }

    /// Whether the counter moved by the call's amount since the baseline.
    fn took_effect(&self, before: f64, now: f64) -> bool {
        if self.delta >= 0.0 {
            now >= before + self.delta
        } else {
            now <= before + self.delta
        }
    }
}

/// Rings `wake` on every notification of new due calls; reconnects after errors.
async fn listen(db: PgPool, wake: Arc<Notify>) {
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&db).await?;
            listener.listen(calls::WAKE_CHANNEL).await?;
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
        };
        let result: Result<(), sqlx::Error> = listening.await;
        if let Err(error) = result {
            tracing::debug!(%error, "delivery listener lost its connection; polling until it is back");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_know_when_their_effect_is_there() {
        let note = || "x".to_owned();
        let topup = Counter::of(&Call::TopupPoints {
            points: 100,
            note: note(),
        })
        .unwrap();
        assert!(topup.took_effect(50.0, 150.0));
        assert!(!topup.took_effect(50.0, 149.0));
        let deduct = Counter::of(&Call::DeductPoints {
            points: 40,
            note: note(),
        })
        .unwrap();
        assert!(deduct.took_effect(100.0, 60.0));
        assert!(!deduct.took_effect(100.0, 61.0));
        let add = Counter::of(&Call::AddAddon {
            addon: "bot".into(),
            qty: 2,
        })
        .unwrap();
        assert!(matches!(&add.counted, Counted::Addon(addon) if addon == "bot"));
        assert!(add.took_effect(1.0, 3.0));
        let install = Counter::of(&Call::InstallTemplate {
            template_ns: "tpl_1".into(),
        })
        .unwrap();
        assert!(install.took_effect(3.0, 6.0));
        assert!(!install.took_effect(3.0, 3.0));
        assert!(Counter::of(&Call::Pause).is_none());
    }

    #[test]
    fn a_repeat_takes_only_a_workspace_its_first_try_may_have_made() {
        let sent = ExistingUserWorkspace {
            email: "ann@example.com".into(),
            team_name: "Ann's team".into(),
            template_ns: None,
            trial_days: None,
        };
        let first_tried_at = "2024-05-01T09:30:00Z".parse::<DateTime<Utc>>().unwrap();
        let listed = |team_name: Option<&str>, created_at: Option<&str>| WorkspaceInfo {
            id: 7,
            owner_email: "ann@example.com".into(),
            team_name: team_name.map(str::to_owned),
            created_at: created_at.map(str::to_owned),
            ..WorkspaceInfo::default()
        };
        let fits = |workspace: WorkspaceInfo| may_be_made_by(&workspace, &sent, first_tried_at);

        assert!(fits(listed(
            Some("Ann's team"),
            Some("2024-05-01T09:30:01Z")
        )));
        assert!(
            fits(listed(Some(" ann's TEAM "), None)),
            "UChat may tidy the name"
        );
        // What UChat does not show is not held against a workspace.
        assert!(fits(listed(None, None)));
        assert!(fits(listed(Some(""), Some("2024-05-01 08:00:00"))));
        // UChat's clock a little behind ours, or its time cut to the second.
        assert!(fits(listed(None, Some("2024-05-01T09:29:59Z"))));
        assert!(fits(listed(None, Some("2024-05-01T09:29:00Z"))));

        assert!(!fits(listed(Some("Another team"), None)));
        assert!(
            !fits(listed(Some("Ann's team"), Some("2024-05-01T09:28:59Z"))),
            "made before the first try began"
        );
    }
}
