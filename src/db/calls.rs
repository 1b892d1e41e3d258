//! Partner calls: the planned work of an order, in order.

use serde_json::Value;
use sqlx::PgConnection;

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
