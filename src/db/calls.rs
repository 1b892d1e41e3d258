//! Partner calls: the planned work of an order, in order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool, QueryBuilder};
use utoipa::ToSchema;

use super::Change;
use crate::partner::{Call, CallKind};

/// The channel the delivery workers listen on: notified when calls are queued, and when
/// a call's end may let the next call of its order run.
pub const WAKE_CHANNEL: &str = "partner_calls";

/// Appends calls to an order's queue, after any it already has, and wakes the workers;
/// `event_id` is the Stripe event that caused them (`None` for a repair). The caller holds the order's row lock, as [`record`] and the operators' changes do
/// before they finish a call: a trigger makes the first new call ready if nothing before
/// it is unfinished, and another makes the next call ready when one finishes, so neither
/// misses what the other is doing.
pub async fn append(
    conn: &mut PgConnection,
    order_id: i64,
    event_id: Option<i64>,
    calls: &[Call],
) -> Result<(), sqlx::Error> {
    if calls.is_empty() {
        return Ok(());
    }
    let kinds: Vec<CallKind> = calls.iter().map(Call::kind).collect();
    let bodies: Vec<Value> = calls.iter().map(Call::body).collect();
    // Inserted in their order, which the ready trigger relies on. The notification is
    // delivered when the transaction commits.
    sqlx::query(
        "WITH queued AS (
             INSERT INTO partner_calls (order_id, position, kind, body, event_id)
             SELECT $1, last.position + n, kind, body, $4
             FROM (SELECT COALESCE(max(position), 0) AS position
                   FROM partner_calls WHERE order_id = $1) last,
                  unnest($2::text[], $3::jsonb[]) WITH ORDINALITY AS planned(kind, body, n)
             ORDER BY n
             RETURNING 1
         )
         SELECT pg_notify($5, '') WHERE EXISTS (SELECT 1 FROM queued)",
    )
    .bind(order_id)
    .bind(&kinds)
    .bind(&bodies)
    .bind(event_id)
    .bind(WAKE_CHANNEL)
    .execute(conn)
    .await?;
    Ok(())
}

/// A call a worker has claimed: it is `running` under `lease_id` until recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedCall {
    pub id: i64,
    pub order_id: i64,
    pub kind: CallKind,
    /// Read into a [`Call`] by delivery.
    pub body: Value,
    /// This try's number, from 1.
    pub attempt: i32,
    pub lease_id: uuid::Uuid,
    pub baseline: Option<Value>,
    pub workspace_id: Option<i64>,
    /// When the call's first try began, if this try repeats it; `None` on the first try.
    pub first_tried_at: Option<DateTime<Utc>>,
}

/// Leases up to `$1` due calls for `$2` seconds: see [`claim`].
pub const CLAIM: &str = "WITH due AS (
         SELECT c.id, c.first_tried_at FROM partner_calls c
         WHERE c.status IN ('pending', 'held') AND c.ready AND c.next_attempt_at <= now()
         ORDER BY c.next_attempt_at, c.id
         LIMIT $1
         FOR UPDATE SKIP LOCKED
     )
     UPDATE partner_calls c
     SET status = 'running', attempts = c.attempts + 1, lease_id = gen_random_uuid(),
         lease_expires_at = now() + make_interval(secs => $2),
         first_tried_at = COALESCE(c.first_tried_at, now())
     FROM due, orders o
     WHERE c.id = due.id AND o.id = c.order_id
     RETURNING c.id, c.order_id, c.kind, c.body, c.attempts AS attempt, c.lease_id,
               c.baseline, o.workspace_id, due.first_tried_at";

/// Claims up to `limit` due calls, each the first unfinished call of its order (`ready`),
/// and leases them for `lease`. One short transaction; the partner is called outside it.
/// Only ready calls are candidates, so the claim is one index scan that stops after
/// `limit` rows however many calls wait behind their order's first. The first claim of a
/// call notes when its first try began.
pub async fn claim(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedCall>, sqlx::Error> {
    sqlx::query_as(CLAIM)
        .bind(limit)
        .bind(lease.as_secs_f64())
        .fetch_all(pool)
        .await
}

/// Takes back calls whose worker stopped answering (crashed, cut off): they become
/// pending again, and the lost try is on record.
pub async fn reclaim_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let reclaimed = sqlx::query(
        "WITH expired AS (
             UPDATE partner_calls SET status = 'pending', lease_id = NULL, lease_expires_at = NULL,
                    last_error = 'lease expired: the worker stopped during the call'
             WHERE status = 'running' AND lease_expires_at < now()
             RETURNING id, attempts, lease_expires_at
         )
         INSERT INTO attempts (call_id, attempt, started_at, duration_ms, error, outcome)
         SELECT id, attempts, now(), 0, 'lease expired: the worker stopped during the call', $1
         FROM expired",
    )
    .bind(AttemptOutcome::LeaseExpired)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(reclaimed)
}

/// How long until the next scheduled retry of a pending or held call, if any.
pub async fn next_due_in(pool: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        // Only future tries of ready calls: a call due now but not claimed is claimed by
        // another worker, and the end of a call wakes the workers for the next one.
        "SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8
         FROM partner_calls
         WHERE status IN ('pending', 'held') AND ready AND next_attempt_at > now()",
    )
    .fetch_one(pool)
    .await?;
    Ok(seconds.map(Duration::from_secs_f64))
}

/// Keeps a counter's value before the call's first try, under the call's lease.
pub async fn save_baseline(
    pool: &PgPool,
    call: &ClaimedCall,
    baseline: &Value,
) -> Result<bool, sqlx::Error> {
    let saved = sqlx::query(
        "UPDATE partner_calls SET baseline = $3 WHERE id = $1 AND lease_id = $2 AND status = 'running'",
    )
    .bind(call.id)
    .bind(call.lease_id)
    .bind(baseline)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(saved == 1)
}

/// One try, as the attempts table keeps it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
    pub http_status: Option<u16>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// Where a try leaves the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Done. `workspace_id` is the id a create returned; `kind` a new kind it ran as.
    Succeeded {
        workspace_id: Option<i64>,
        kind: Option<CallKind>,
        already_applied: bool,
    },
    /// Try again after `delay`.
    Retry { delay: Duration },
    /// Partner credit too low: try again after `delay`, without spending a try.
    Held { delay: Duration, reason: String },
    /// Never going to work: an operator must look.
    Dead { reason: String },
}

/// What became of one try, as the attempts table and the metrics name it. Stored as
/// text in `attempts.outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// An earlier try had taken effect: nothing was repeated.
    AlreadyApplied,
    Retry,
    Held,
    Dead,
    /// A newer claim had taken the call over: the try moved nothing.
    Superseded,
    /// The worker stopped during the try; the call was taken back.
    LeaseExpired,
}

display_as_serialized!(AttemptOutcome);

impl Verdict {
    /// The try's outcome.
    pub fn outcome(&self) -> AttemptOutcome {
        match self {
            Verdict::Succeeded {
                already_applied: true,
                ..
            } => AttemptOutcome::AlreadyApplied,
            Verdict::Succeeded { .. } => AttemptOutcome::Succeeded,
            Verdict::Retry { .. } => AttemptOutcome::Retry,
            Verdict::Held { .. } => AttemptOutcome::Held,
            Verdict::Dead { .. } => AttemptOutcome::Dead,
        }
    }

    /// The call's next status.
    fn status(&self) -> CallStatus {
        match self {
            Verdict::Succeeded { .. } => CallStatus::Succeeded,
            Verdict::Retry { .. } => CallStatus::Pending,
            Verdict::Held { .. } => CallStatus::Held,
            Verdict::Dead { .. } => CallStatus::Dead,
        }
    }

    /// The kind the call ran as, when a success changed it.
    fn ran_as(&self) -> Option<CallKind> {
        match self {
            Verdict::Succeeded { kind, .. } => *kind,
            _ => None,
        }
    }

    fn next_try_in(&self) -> Option<Duration> {
        match self {
            Verdict::Retry { delay } | Verdict::Held { delay, .. } => Some(*delay),
            _ => None,
        }
    }
}

/// A try to record: the call as its worker claimed it, the try, and where it leaves
/// the call.
#[derive(Debug, Clone)]
pub struct FinishedTry {
    pub call: ClaimedCall,
    pub attempt: AttemptRecord,
    pub verdict: Verdict,
}

/// Takes the row locks of the orders `$1`, in id order: whatever else locks several
/// orders (another worker's record, an operator's change) takes them in the same order,
/// so none waits on another in a cycle.
pub const LOCK_ORDERS: &str = "SELECT 1 FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// Moves each call on whose lease is still the try's, and keeps every try as an attempt
/// (`superseded` if its lease was not the call's any more). One row per try, in the
/// order given: whether it moved its call.
pub const RECORD_TRIES: &str = "WITH finished AS (
         SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::float8[],
                              $6::text[], $7::int[], $8::timestamptz[], $9::int[], $10::int[],
                              $11::text[], $12::text[], $13::text[])
             WITH ORDINALITY AS f(call_id, lease_id, status, ran_as, next_try_in, last_error,
                                  attempt, started_at, duration_ms, http_status,
                                  response_excerpt, error, outcome, n)
     ), moved AS (
         UPDATE partner_calls c SET
             status = f.status,
             kind = COALESCE(f.ran_as, c.kind),
             -- A hold spends no try: the partner can fix it by topping up credit.
             attempts = c.attempts - CASE WHEN f.status = 'held' THEN 1 ELSE 0 END,
             lease_id = NULL, lease_expires_at = NULL,
             next_attempt_at = COALESCE(now() + make_interval(secs => f.next_try_in), c.next_attempt_at),
             finished_at = CASE WHEN f.status IN ('succeeded', 'dead') THEN now() END,
             held_since = CASE WHEN f.status = 'held' THEN COALESCE(c.held_since, now()) END,
             last_error = f.last_error
         FROM finished f
         WHERE c.id = f.call_id AND c.lease_id = f.lease_id AND c.status = 'running'
         RETURNING f.n
     ), kept AS (
         INSERT INTO attempts (call_id, attempt, started_at, duration_ms, http_status,
                               response_excerpt, error, outcome)
         SELECT f.call_id, f.attempt, f.started_at, f.duration_ms, f.http_status,
                f.response_excerpt, f.error,
                CASE WHEN f.n IN (SELECT n FROM moved) THEN f.outcome ELSE $14 END
         FROM finished f ORDER BY f.n
     )
     SELECT f.n IN (SELECT n FROM moved) FROM finished f ORDER BY f.n";

/// Records tries and moves their calls on, in the caller's transaction, each only if
/// the lease is still its try's: a superseded try moves nothing and is kept as an
/// attempt marked `superseded`. Returns, per try, whether it moved its call. Statements
/// carry every try at once, so many tries share one commit.
pub async fn record(
    conn: &mut PgConnection,
    tries: &[FinishedTry],
) -> Result<Vec<bool>, sqlx::Error> {
    if tries.is_empty() {
        return Ok(Vec::new());
    }
    let mut orders: Vec<i64> = tries.iter().map(|t| t.call.order_id).collect();
    orders.sort_unstable();
    orders.dedup();
    // The orders first, as everywhere calls finish (see `append`).
    sqlx::query(LOCK_ORDERS)
        .bind(&orders)
        .execute(&mut *conn)
        .await?;
    let moved: Vec<bool> = sqlx::query_scalar(RECORD_TRIES)
        .bind(column(tries, |t| t.call.id))
        .bind(column(tries, |t| t.call.lease_id))
        .bind(column(tries, |t| t.verdict.status().to_string()))
        .bind(column(tries, |t| {
            t.verdict.ran_as().map(|kind| kind.to_string())
        }))
        .bind(column(tries, |t| {
            t.verdict.next_try_in().map(|delay| delay.as_secs_f64())
        }))
        .bind(column(tries, FinishedTry::last_error))
        .bind(column(tries, |t| t.call.attempt))
        .bind(column(tries, |t| t.attempt.started_at))
        .bind(column(tries, |t| {
            i32::try_from(t.attempt.duration.as_millis()).unwrap_or(i32::MAX)
        }))
        .bind(column(tries, |t| t.attempt.http_status.map(i32::from)))
        .bind(column(tries, |t| t.attempt.response_excerpt.clone()))
        .bind(column(tries, |t| t.attempt.error.clone()))
        .bind(column(tries, |t| t.verdict.outcome().to_string()))
        .bind(AttemptOutcome::Superseded)
        .fetch_all(&mut *conn)
        .await?;

    // An order's next call is ready only once this commits, so the tries move at most one
    // call per order: the orders' changes need no order among themselves.
    let (mut created, mut workspaces) = (Vec::new(), Vec::new());
    let (mut stuck, mut reasons) = (Vec::new(), Vec::new());
    let mut finished = Vec::new();
    for finished_try in tries
        .iter()
        .zip(&moved)
        .filter(|(_, moved)| **moved)
        .map(|(t, _)| t)
    {
        let (call, verdict) = (&finished_try.call, &finished_try.verdict);
        match verdict {
            Verdict::Succeeded { workspace_id, .. } => {
                if let Some(workspace_id) = workspace_id {
                    created.push(call.order_id);
                    workspaces.push(*workspace_id);
                }
                finished.push(call.order_id);
            }
            Verdict::Retry { .. } => {}
            Verdict::Held { reason, .. } => {
                stuck.push(call.order_id);
                reasons.push(format!("{} held: {reason}", call.kind));
            }
            Verdict::Dead { reason } => {
                stuck.push(call.order_id);
                reasons.push(format!("{} failed: {reason}", call.kind));
            }
        }
    }
    if !created.is_empty() {
        super::orders::set_workspaces(&mut *conn, &created, &workspaces).await?;
    }
    if !stuck.is_empty() {
        super::orders::block(&mut *conn, &stuck, &reasons).await?;
    }
    if !finished.is_empty() {
        super::orders::unblock_if_clear(&mut *conn, &finished).await?;
    }
    Ok(moved)
}

/// One field of every try, as an array to bind.
fn column<T>(tries: &[FinishedTry], field: impl Fn(&FinishedTry) -> T) -> Vec<T> {
    tries.iter().map(field).collect()
}

impl FinishedTry {
    /// The call's last error after this try.
    fn last_error(&self) -> Option<String> {
        match &self.verdict {
            Verdict::Succeeded { .. } => None,
            Verdict::Retry { .. } => self.attempt.error.clone(),
            Verdict::Held { reason, .. } | Verdict::Dead { reason } => Some(reason.clone()),
        }
    }
}

/// Where a partner call stands. Delivery moves calls between these; operators retry and
/// cancel. Stored as text in `partner_calls.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum CallStatus {
    Pending,
    Running,
    /// The partner cannot take it yet (credit too low, say): tried again later, and the
    /// order's later calls wait behind it.
    Held,
    Succeeded,
    /// Out of tries, or refused for good: the order's later calls wait behind it.
    Dead,
    Canceled,
}

display_as_serialized!(CallStatus);

/// A partner call as operators see it.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct CallRecord {
    pub id: i64,
    pub order_id: i64,
    /// Its place in the order's sequence: a call runs only after every earlier one
    /// succeeded or was canceled.
    pub position: i32,
    #[schema(value_type = String, example = "change-plan")]
    pub kind: CallKind,
    /// The partner API request body; `null` for calls without one.
    pub body: Value,
    pub status: CallStatus,
    /// Tries so far.
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// The event whose planning queued the call.
    pub event_id: Option<i64>,
    pub held_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const CALL_COLUMNS: &str = "c.id, c.order_id, c.position, c.kind, c.body, c.status, c.attempts,
     c.next_attempt_at, c.last_error, c.event_id, c.held_since, c.created_at, c.finished_at";

/// One try of a partner call, as delivery recorded it.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct Attempt {
    pub call_id: i64,
    /// 1 for the first try.
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub http_status: Option<i32>,
    /// The start of the partner's answer.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    /// succeeded, retry, held, dead, already_applied, superseded or lease_expired.
    #[schema(value_type = String)]
    pub outcome: AttemptOutcome,
}

/// Calls, newest first, `before` a call id (the previous page's last), at most `limit`.
/// One index range for any filter (see [`super::newest_first`]).
pub async fn list(
    pool: &PgPool,
    status: Option<CallStatus>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<CallRecord>, sqlx::Error> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {CALL_COLUMNS} FROM partner_calls c WHERE true"
    ));
    if let Some(status) = status {
        query.push(" AND c.status = ").push_bind(status);
    }
    super::newest_first(&mut query, "c.id", before, limit);
    query.build_query_as().fetch_all(pool).await
}

/// An order's calls, in their sequence.
pub async fn of_order(pool: &PgPool, order_id: i64) -> Result<Vec<CallRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CALL_COLUMNS} FROM partner_calls c WHERE c.order_id = $1 ORDER BY c.position"
    ))
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// The calls queued after call `after` (an id), in their orders' sequence.
pub async fn since(pool: &PgPool, after: i64) -> Result<Vec<CallRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CALL_COLUMNS} FROM partner_calls c WHERE c.id > $1 ORDER BY c.order_id, c.position"
    ))
    .bind(after)
    .fetch_all(pool)
    .await
}

/// Every call not yet succeeded nor canceled, in their orders' sequence.
pub async fn unfinished(pool: &PgPool) -> Result<Vec<CallRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CALL_COLUMNS} FROM partner_calls c
         WHERE c.status NOT IN ('succeeded', 'canceled') ORDER BY c.order_id, c.position"
    ))
    .fetch_all(pool)
    .await
}

/// The id of the last call queued; 0 before the first.
pub async fn last_id(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM partner_calls")
        .fetch_one(pool)
        .await
}

/// Every try of an order's calls, in the order they were made.
pub async fn attempts_of_order(pool: &PgPool, order_id: i64) -> Result<Vec<Attempt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.call_id, a.attempt, a.started_at, a.duration_ms, a.http_status,
                a.response_excerpt, a.error, a.outcome
         FROM attempts a JOIN partner_calls c ON c.id = a.call_id
         WHERE c.order_id = $1
         ORDER BY a.started_at, a.id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// Makes a dead or held call pending and due now, keeping its last error. A dead call
/// gets a full set of tries again.
pub async fn retry(pool: &PgPool, id: i64) -> Result<Change<CallRecord>, sqlx::Error> {
    change(
        pool,
        id,
        Operation::Retry,
        &[CallStatus::Dead, CallStatus::Held],
        "UPDATE partner_calls SET status = 'pending', next_attempt_at = now(), held_since = NULL,
             attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END,
             lease_id = NULL, lease_expires_at = NULL, finished_at = NULL
         WHERE id = $1",
    )
    .await
}

/// Gives up on a pending, held or dead call, so the order's later calls may run. The
/// order's provisioned state loses the call's effect, and a note says so.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<Change<CallRecord>, sqlx::Error> {
    change(
        pool,
        id,
        Operation::Cancel,
        &[CallStatus::Pending, CallStatus::Held, CallStatus::Dead],
        "UPDATE partner_calls SET status = 'canceled', finished_at = now(),
             lease_id = NULL, lease_expires_at = NULL
         WHERE id = $1",
    )
    .await
}

/// What an operator does to a call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Retry,
    Cancel,
}

impl Operation {
    fn done(self) -> &'static str {
        match self {
            Operation::Retry => "retried",
            Operation::Cancel => "canceled",
        }
    }
}

/// Applies `update` to the call if its status is one of `allowed`, in one transaction
/// that holds the call's row lock from the check to the commit: no worker can claim the
/// call in between, and a call a worker has claimed is `running`, which no change allows.
/// So nothing done here makes a call run twice or before its predecessors. Then unblocks
/// the order if this was its last dead or held call, and wakes the workers.
async fn change(
    pool: &PgPool,
    id: i64,
    operation: Operation,
    allowed: &[CallStatus],
    update: &str,
) -> Result<Change<CallRecord>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The order first, as everywhere calls finish (see `append`).
    let order_id: Option<i64> =
        sqlx::query_scalar("SELECT order_id FROM partner_calls WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(order_id) = order_id else {
        return Ok(Change::NotFound);
    };
    super::orders::lock(&mut tx, order_id).await?;
    let status: CallStatus =
        sqlx::query_scalar("SELECT status FROM partner_calls WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if !allowed.contains(&status) {
        let allowed: Vec<String> = allowed.iter().map(CallStatus::to_string).collect();
        return Ok(Change::Refused(format!(
            "call {id} is {status}; only {} calls can be {}",
            allowed.join(" or "),
            operation.done()
        )));
    }
    sqlx::query(update).bind(id).execute(&mut *tx).await?;
    if operation == Operation::Cancel {
        super::orders::forget_canceled(&mut tx, order_id, id).await?;
    }
    super::orders::unblock_if_clear(&mut tx, &[order_id]).await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(&mut *tx)
        .await?;
    let call = sqlx::query_as(&format!(
        "SELECT {CALL_COLUMNS} FROM partner_calls c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Change::Made(call))
}

/// The delivery backlog: what is waiting and what is stuck.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct Backlog {
    /// Pending or held calls whose next attempt is due.
    pub due: i64,
    /// How long the longest-waiting due call has been due; `null` when none is.
    pub oldest_due_age_seconds: Option<f64>,
    pub held: i64,
    pub dead: i64,
}

/// The backlog, from the due calls' rows (an index of pending and held calls) and the
/// kept counts: its cost grows with the backlog, not with the calls delivered.
pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) AS due,
                extract(epoch FROM now() - min(next_attempt_at))::float8 AS oldest_due_age_seconds,
                (SELECT COALESCE(sum(delta), 0)::bigint FROM status_counts
                 WHERE table_name = 'partner_calls' AND status = 'held') AS held,
                (SELECT COALESCE(sum(delta), 0)::bigint FROM status_counts
                 WHERE table_name = 'partner_calls' AND status = 'dead') AS dead
         FROM partner_calls
         WHERE status IN ('pending', 'held') AND next_attempt_at <= now()",
    )
    .fetch_one(pool)
    .await
}
