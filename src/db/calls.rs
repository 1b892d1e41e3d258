//! Partner calls: the planned work of an order, in order.

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::plan::Call;

/// Appends calls to an order's queue, after any it already has, and wakes the workers.
pub async fn append(
    conn: &mut PgConnection,
    order_id: i64,
    event_id: i64,
    calls: &[Call],
) -> Result<(), sqlx::Error> {
    if calls.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = calls.iter().map(Call::kind).collect();
    let bodies: Vec<Value> = calls.iter().map(Call::body).collect();
    sqlx::query(
        "INSERT INTO partner_calls (order_id, position, kind, body, event_id)
         SELECT $1,
                (SELECT COALESCE(max(position), 0) FROM partner_calls WHERE order_id = $1) + n,
                kind, body, $4
         FROM unnest($2::text[], $3::jsonb[]) WITH ORDINALITY AS planned(kind, body, n)",
    )
    .bind(order_id)
    .bind(&kinds)
    .bind(&bodies)
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify('partner_calls', '')")
        .execute(conn)
        .await?;
    Ok(())
}

/// A call a worker has claimed: it is `running` under `lease_id` until recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedCall {
    pub id: i64,
    pub order_id: i64,
    pub kind: String,
    pub body: Value,
    /// This try's number, from 1.
    pub attempt: i32,
    pub lease_id: uuid::Uuid,
    pub baseline: Option<Value>,
    pub workspace_id: Option<i64>,
}

/// Claims up to `limit` due calls, each the first unfinished call of its order, and
/// leases them for `lease`. One short transaction; the partner is called outside it.
pub async fn claim(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedCall>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
             SELECT c.id FROM partner_calls c
             WHERE c.status IN ('pending', 'held') AND c.next_attempt_at <= now()
               AND NOT EXISTS (
                   SELECT 1 FROM partner_calls earlier
                   WHERE earlier.order_id = c.order_id AND earlier.position < c.position
                     AND earlier.status NOT IN ('succeeded', 'canceled'))
             ORDER BY c.next_attempt_at, c.id
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE partner_calls c
         SET status = 'running', attempts = c.attempts + 1, lease_id = gen_random_uuid(),
             lease_expires_at = now() + make_interval(secs => $2)
         FROM due, orders o
         WHERE c.id = due.id AND o.id = c.order_id
         RETURNING c.id, c.order_id, c.kind, c.body, c.attempts AS attempt, c.lease_id,
                   c.baseline, o.workspace_id",
    )
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
         SELECT id, attempts, now(), 0, 'lease expired: the worker stopped during the call', 'lease_expired'
         FROM expired",
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(reclaimed)
}

/// How long until the next pending or held call falls due, if any is scheduled.
pub async fn next_due_in(pool: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT GREATEST(EXTRACT(EPOCH FROM min(next_attempt_at) - now()), 0)::float8
         FROM partner_calls WHERE status IN ('pending', 'held')",
    )
    .fetch_one(pool)
    .await?;
    Ok(seconds.map(Duration::from_secs_f64))
}

/// Keeps what the workspace looked like before the first try, under the call's lease.
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
        kind: Option<&'static str>,
        already_applied: bool,
    },
    /// Try again after `delay`.
    Retry { delay: Duration },
    /// Partner credit too low: try again after `delay`, without spending a try.
    Held { delay: Duration, reason: String },
    /// Never going to work: an operator must look.
    Dead { reason: String },
}

impl Verdict {
    fn outcome(&self) -> &'static str {
        match self {
            Verdict::Succeeded {
                already_applied: true,
                ..
            } => "already_applied",
            Verdict::Succeeded { .. } => "succeeded",
            Verdict::Retry { .. } => "retry",
            Verdict::Held { .. } => "held",
            Verdict::Dead { .. } => "dead",
        }
    }
}

/// Records a try and moves the call on, in one transaction, if the lease is still this
/// worker's. Returns false when a newer claim has superseded it: then only the attempt
/// is kept, marked `superseded`.
pub async fn record(
    pool: &PgPool,
    call: &ClaimedCall,
    attempt: &AttemptRecord,
    verdict: &Verdict,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let owned: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM partner_calls WHERE id = $1 AND lease_id = $2 AND status = 'running' FOR UPDATE",
    )
    .bind(call.id)
    .bind(call.lease_id)
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = if owned.is_some() {
        verdict.outcome()
    } else {
        "superseded"
    };
    sqlx::query(
        "INSERT INTO attempts (call_id, attempt, started_at, duration_ms, http_status, response_excerpt, error, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(call.id)
    .bind(call.attempt)
    .bind(attempt.started_at)
    .bind(i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX))
    .bind(attempt.http_status.map(i32::from))
    .bind(&attempt.response_excerpt)
    .bind(&attempt.error)
    .bind(outcome)
    .execute(&mut *tx)
    .await?;
    if owned.is_none() {
        tx.commit().await?;
        return Ok(false);
    }

    match verdict {
        Verdict::Succeeded {
            workspace_id, kind, ..
        } => {
            sqlx::query(
                "UPDATE partner_calls SET status = 'succeeded', kind = COALESCE($2, kind), finished_at = now(),
                     lease_id = NULL, lease_expires_at = NULL, held_since = NULL, last_error = NULL
                 WHERE id = $1",
            )
            .bind(call.id)
            .bind(kind)
            .execute(&mut *tx)
            .await?;
            if let Some(workspace_id) = workspace_id {
                super::orders::set_workspace(&mut tx, call.order_id, *workspace_id).await?;
            }
            super::orders::unblock_if_clear(&mut tx, call.order_id).await?;
        }
        Verdict::Retry { delay } => {
            sqlx::query(
                "UPDATE partner_calls SET status = 'pending', lease_id = NULL, lease_expires_at = NULL,
                     next_attempt_at = now() + make_interval(secs => $2), last_error = $3
                 WHERE id = $1",
            )
            .bind(call.id)
            .bind(delay.as_secs_f64())
            .bind(&attempt.error)
            .execute(&mut *tx)
            .await?;
        }
        Verdict::Held { delay, reason } => {
            // A hold spends no try: the partner can fix it by topping up credit.
            sqlx::query(
                "UPDATE partner_calls SET status = 'held', attempts = attempts - 1, lease_id = NULL,
                     lease_expires_at = NULL, next_attempt_at = now() + make_interval(secs => $2),
                     held_since = COALESCE(held_since, now()), last_error = $3
                 WHERE id = $1",
            )
            .bind(call.id)
            .bind(delay.as_secs_f64())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            super::orders::block(
                &mut tx,
                call.order_id,
                &format!("{} held: {reason}", call.kind),
            )
            .await?;
        }
        Verdict::Dead { reason } => {
            sqlx::query(
                "UPDATE partner_calls SET status = 'dead', lease_id = NULL, lease_expires_at = NULL,
                     finished_at = now(), last_error = $2
                 WHERE id = $1",
            )
            .bind(call.id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            super::orders::block(
                &mut tx,
                call.order_id,
                &format!("{} failed: {reason}", call.kind),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}
