//! Partner calls: the planned work of an order, in order.

use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};

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

/// The delivery backlog: what is waiting and what is stuck.
#[derive(Debug, FromRow)]
pub struct Backlog {
    /// Pending or held calls whose next attempt is due.
    pub due: i64,
    /// How long the longest-waiting due call has been due; `null` when none is.
    pub oldest_due_age_seconds: Option<f64>,
    pub held: i64,
    pub dead: i64,
}

pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE due) AS due,
                extract(epoch FROM now() - min(next_attempt_at) FILTER (WHERE due))::float8
                    AS oldest_due_age_seconds,
                count(*) FILTER (WHERE status = 'held') AS held,
                count(*) FILTER (WHERE status = 'dead') AS dead
         FROM (SELECT status, next_attempt_at,
                      status IN ('pending', 'held') AND next_attempt_at <= now() AS due
               FROM partner_calls) c",
    )
    .fetch_one(pool)
    .await
}
