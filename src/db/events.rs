use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};
use utoipa::ToSchema;

use super::Change;
use crate::plan::OrderStatus;
use crate::stripe::decode::{self, Event};

/// An event to store, as intake has it: verified (or listed by Stripe) and decoded.
pub struct NewEvent<'a> {
    pub event: &'a Event,
    /// The body exactly as Stripe sent it.
    pub raw_body: &'a str,
    /// Of a type the processor acts on: stored pending, else ignored.
    pub acted_on: bool,
    /// A backfill found it in Stripe's event list; the webhook never brought it.
    pub recovered: bool,
}

/// Stores each event unless one with its id is already stored (an id twice in `events`
/// is stored once, as the first), in one statement: the rows share its commit. Returns
/// the Stripe ids of the events stored. Rows are inserted in the order given.
/// The raw body is kept byte for byte; its `jsonb` copy lacks any NUL (see
/// [`decode::storable_json`]). A trigger puts a pending event's order keys in the queue.
/// Every value is bound: one array per column, read back row by row with `unnest`; an
/// event's order keys, an array themselves, travel as a JSON array (Postgres has no
/// array of arrays of different lengths).
pub async fn insert_many(
    db: impl PgExecutor<'_>,
    events: &[NewEvent<'_>],
) -> Result<Vec<String>, sqlx::Error> {
    let payloads: Vec<_> = events
        .iter()
        .map(|new| decode::storable_json(new.raw_body))
        .collect();
    let status = |new: &NewEvent| {
        if new.acted_on {
            EventStatus::Pending
        } else {
            EventStatus::Ignored
        }
    };
    sqlx::query_scalar(
        "INSERT INTO events
             (stripe_event_id, event_type, api_version, livemode, stripe_created, raw_body, payload,
              status, order_keys, recovered)
         SELECT id, event_type, api_version, livemode, created, raw_body, payload::jsonb,
                status, ARRAY(SELECT jsonb_array_elements_text(order_keys)), recovered
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::int8[], $6::text[],
                     $7::text[], $8::text[], $9::jsonb[], $10::bool[])
             AS new (id, event_type, api_version, livemode, created, raw_body,
                     payload, status, order_keys, recovered)
         ON CONFLICT (stripe_event_id) DO NOTHING
         RETURNING stripe_event_id",
    )
    .bind(
        events
            .iter()
            .map(|new| new.event.id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|new| new.event.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|new| new.event.api_version.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|new| new.event.livemode)
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|new| new.event.created)
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|new| new.raw_body).collect::<Vec<_>>())
    .bind(payloads.iter().map(AsRef::as_ref).collect::<Vec<&str>>())
    .bind(events.iter().map(status).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|new| Json(new.event.order_links()))
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|new| new.recovered).collect::<Vec<_>>())
    .fetch_all(db)
    .await
}

/// An event the processor has claimed; its row stays locked until the transaction ends.
#[derive(Debug, sqlx::FromRow)]
pub struct ClaimedEvent {
    pub id: i64,
    pub raw_body: String,
    pub attempts: i32,
    /// The order keys stored at intake (`sub:sub_123`, ...).
    pub order_keys: Vec<String>,
    pub stripe_created: i64,
    pub stripe_event_id: String,
}

/// Claims up to `limit` pending events that are due, have settled (siblings sent together
/// get a moment to arrive, so they apply in order), and are not known to wait for an older
/// event of their order. The claim is one index scan that stops after `limit` rows: an
/// event found waiting leaves the candidates (see [`wait_for_predecessor`]), so the cost
/// does not grow with the backlog, whichever plan Postgres caches for the statement. Rows
/// another claim holds are skipped, so concurrent claims take different events (events of
/// one order may still land in different claims: their order-key locks decide). The row
/// lock is the one an update takes, not the stronger one a delete takes: a processor
/// holding the order keys may then record a wait for one of these events (a foreign key
/// check) without waiting for this claim, which is about to wait for those keys.
pub async fn claim_batch(
    conn: &mut PgConnection,
    settle: Duration,
    limit: usize,
) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, raw_body, attempts, order_keys, stripe_created, stripe_event_id FROM events
         WHERE status = 'pending' AND waits_for IS NULL AND next_attempt_at <= now()
           AND received_at <= now() - make_interval(secs => $1)
         ORDER BY next_attempt_at, id
         LIMIT $2
         FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(settle.as_secs_f64())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await
}

/// If an older pending event shares one of `order_keys` with this one (its keys as stored,
/// and any its Stripe reads added), records that this one waits for the nearest such
/// event (it leaves the claim's candidates until that one is done, see [`finish`]) and
/// returns its id. One index probe per key.
///
/// The caller must hold those keys' locks, taken in an earlier statement: a
/// predecessor's `finish` holds them too, so a predecessor seen pending here is pending,
/// and its `finish` will see this wait.
pub async fn wait_for_predecessor(
    conn: &mut PgConnection,
    event: &ClaimedEvent,
    order_keys: &[String],
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH predecessor AS (
             SELECT p.event_id FROM unnest($2::text[]) AS k(order_key)
             CROSS JOIN LATERAL (
                 SELECT pk.event_id, pk.stripe_created, pk.stripe_event_id
                 FROM pending_event_keys pk
                 WHERE pk.order_key = k.order_key
                   AND (pk.stripe_created, pk.stripe_event_id) < ($3, $4)
                 ORDER BY pk.stripe_created DESC, pk.stripe_event_id DESC
                 LIMIT 1
             ) p
             ORDER BY p.stripe_created DESC, p.stripe_event_id DESC
             LIMIT 1
         )
         UPDATE events e SET waits_for = predecessor.event_id,
             -- Due again as soon as it is freed, whatever lease it had.
             next_attempt_at = LEAST(e.next_attempt_at, now()), lease_id = NULL
         FROM predecessor WHERE e.id = $1
         RETURNING e.waits_for",
    )
    .bind(event.id)
    .bind(order_keys)
    .bind(event.stripe_created)
    .bind(&event.stripe_event_id)
    .fetch_optional(conn)
    .await
}

/// Leases a claimed event for `lease` and returns the lease id, so the caller may commit
/// and make Stripe reads with no transaction open: the event is not due again (no other
/// claim takes it) until the lease runs out, e.g. because this processor died.
pub async fn lease(
    conn: &mut PgConnection,
    id: i64,
    lease: Duration,
) -> Result<uuid::Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE events SET lease_id = gen_random_uuid(),
             next_attempt_at = now() + make_interval(secs => $2)
         WHERE id = $1
         RETURNING lease_id",
    )
    .bind(id)
    .bind(lease.as_secs_f64())
    .fetch_one(conn)
    .await
}

/// Takes a leased event back for applying: locked as a claim locks it, if it is still
/// pending under this lease. `None` when the lease ran out and another claim took it.
pub async fn reclaim_leased(
    conn: &mut PgConnection,
    id: i64,
    lease_id: uuid::Uuid,
) -> Result<bool, sqlx::Error> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM events WHERE id = $1 AND lease_id = $2 AND status = 'pending'
         FOR NO KEY UPDATE",
    )
    .bind(id)
    .bind(lease_id)
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

/// Where a stored event stands: waiting for the processor, or done with it (applied,
/// not one we act on, or unusable). Stored as text in `events.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum EventStatus {
    Pending,
    Processed,
    Ignored,
    Failed,
}

display_as_serialized!(EventStatus);

/// The processor is done with the event: `status` says how. A trigger takes it out of
/// the queue and frees the events that waited for it: the caller must hold the event's
/// order-key locks (see [`wait_for_predecessor`]).
pub async fn finish(
    conn: &mut PgConnection,
    id: i64,
    status: EventStatus,
    error: Option<&str>,
    order_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE events SET status = $2, error = $3, order_id = COALESCE($4, order_id),
             attempts = attempts + 1, processed_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Leaves the event pending, to be tried again after `delay`.
pub async fn postpone(
    conn: &mut PgConnection,
    id: i64,
    error: &str,
    delay: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE events SET attempts = attempts + 1, error = $2, lease_id = NULL,
             next_attempt_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// A stored Stripe event as operators see it.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct EventRecord {
    pub id: i64,
    #[schema(example = "evt_1PqXyZ")]
    pub stripe_event_id: String,
    #[serde(rename = "type")]
    #[schema(example = "invoice.paid")]
    pub event_type: String,
    /// Stripe's `created`, in seconds since the epoch: events apply in this order.
    pub created: i64,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    /// pending, processed, ignored or failed.
    #[schema(value_type = String, example = "processed")]
    pub status: EventStatus,
    /// Why the event failed, or why its last try was put off.
    pub error: Option<String>,
    pub attempts: i32,
    pub order_id: Option<i64>,
    /// Found by a backfill in Stripe's event list: the webhook never delivered it.
    pub recovered: bool,
}

const RECORD_COLUMNS: &str = "e.id, e.stripe_event_id, e.event_type, e.stripe_created AS created,
     e.received_at, e.processed_at, e.status, e.error, e.attempts, e.order_id, e.recovered";

/// An order's events: those applied to it, and those that carry one of its Stripe ids but
/// were not applied (failed, or still pending), in the order they arrived.
pub async fn of_order(pool: &PgPool, order_id: i64) -> Result<Vec<EventRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM events e
         WHERE e.order_id = $1
            OR (e.order_id IS NULL AND e.order_keys &&
                ARRAY(SELECT stripe_key FROM order_links WHERE order_id = $1))
         ORDER BY e.received_at, e.id"
    ))
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// What decides whether an event may be reprocessed: its status and its order's.
#[derive(Debug, FromRow)]
struct ReprocessCheck {
    status: EventStatus,
    order_status: Option<OrderStatus>,
    attention: Option<String>,
    blocked_status: Option<OrderStatus>,
}

impl ReprocessCheck {
    /// Why the event may not be reprocessed, if it may not.
    fn refusal(&self, id: i64) -> Option<String> {
        // Needs attention from planning, not from a dead or held call: retrying or
        // canceling the call is the fix for those.
        let planning_needs_attention = self.order_status == Some(OrderStatus::NeedsAttention)
            && self.attention.is_some()
            && self.blocked_status.is_none();
        match self.status {
            EventStatus::Failed => None,
            EventStatus::Processed if planning_needs_attention => None,
            EventStatus::Processed => Some(format!(
                "event {id} is processed and its order does not need attention from planning"
            )),
            status => Some(format!(
                "event {id} is {status}; only failed events and events of orders that need \
                 attention can be reprocessed"
            )),
        }
    }
}

/// Puts a failed event, or an event whose order planning left needing attention, back in
/// the processor's queue, so it is planned again (after a catalog fix, say). The event's
/// row stays locked from the check to the commit, so a processor applying it meanwhile is
/// waited for.
pub async fn reprocess(pool: &PgPool, id: i64) -> Result<Change<EventRecord>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let check: Option<ReprocessCheck> = sqlx::query_as(
        "SELECT e.status, o.status AS order_status, o.attention, o.blocked_status
         FROM events e LEFT JOIN orders o ON o.id = e.order_id
         WHERE e.id = $1
         FOR UPDATE OF e",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(check) = check else {
        return Ok(Change::NotFound);
    };
    if let Some(reason) = check.refusal(id) {
        return Ok(Change::Refused(reason));
    }
    let event = sqlx::query_as(&format!(
        "UPDATE events e SET status = 'pending', next_attempt_at = now(), error = NULL,
             processed_at = NULL
         WHERE e.id = $1
         RETURNING {RECORD_COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Change::Made(event))
}
