use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::stripe::decode::{self, Event};

/// Stores an event unless one with its id is already stored. Returns whether it was new.
/// The raw body is kept byte for byte; its `jsonb` copy lacks any NUL (see
/// [`decode::storable_json`]).
pub async fn insert(
    pool: &PgPool,
    event: &Event,
    raw_body: &str,
    acted_on: bool,
) -> Result<bool, sqlx::Error> {
    let status = if acted_on { "pending" } else { "ignored" };
    let inserted = sqlx::query(
        "INSERT INTO events
             (stripe_event_id, event_type, api_version, livemode, stripe_created, raw_body, payload,
              status, order_keys)
         VALUES ($1, $2, $3, $4, $5, $6, $9::jsonb, $7, $8)
         ON CONFLICT (stripe_event_id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.event_type)
    .bind(&event.api_version)
    .bind(event.livemode)
    .bind(event.created)
    .bind(raw_body)
    .bind(status)
    .bind(event.order_links())
    .bind(decode::storable_json(raw_body).as_ref())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// An event the processor has claimed; its row stays locked until the transaction ends.
#[derive(Debug, sqlx::FromRow)]
pub struct ClaimedEvent {
    pub id: i64,
    pub raw_body: String,
    pub attempts: i32,
}

/// Claims the pending event that comes first in Stripe's order, once it has settled
/// (siblings sent together get a moment to arrive, so they apply in order). An event
/// waits while an older pending event shares an order key with it, so one order's events
/// apply in order even with several processors.
pub async fn claim_next(
    conn: &mut PgConnection,
    settle: Duration,
) -> Result<Option<ClaimedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id, e.raw_body, e.attempts FROM events e
         WHERE e.status = 'pending' AND e.next_attempt_at <= now()
           AND e.received_at <= now() - make_interval(secs => $1)
           AND NOT EXISTS (
               SELECT 1 FROM events older
               WHERE older.status = 'pending' AND older.order_keys && e.order_keys
                 AND (older.stripe_created, older.stripe_event_id) < (e.stripe_created, e.stripe_event_id))
         ORDER BY e.stripe_created, e.stripe_event_id
         LIMIT 1
         FOR UPDATE OF e SKIP LOCKED",
    )
    .bind(settle.as_secs_f64())
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Ignored,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Ignored => "ignored",
            Outcome::Failed => "failed",
        }
    }
}

pub async fn finish(
    conn: &mut PgConnection,
    id: i64,
    outcome: Outcome,
    error: Option<&str>,
    order_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE events SET status = $2, error = $3, order_id = COALESCE($4, order_id),
             attempts = attempts + 1, processed_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(outcome.as_str())
    .bind(error)
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Leaves the event pending, to be tried again after `delay`.
pub async fn postpone(
    pool: &PgPool,
    id: i64,
    error: &str,
    delay: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE events SET attempts = attempts + 1, error = $2,
             next_attempt_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}
