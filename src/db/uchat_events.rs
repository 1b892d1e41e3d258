//! UChat's partner webhooks, stored once each, and what they do to orders and alerts.

use sqlx::PgConnection;

use super::calls::WAKE_CHANNEL;

pub struct NewUchatEvent<'a> {
    pub dedup_key: &'a str,
    pub event_type: &'a str,
    pub workspace_id: Option<i64>,
    pub raw_body: &'a str,
}

/// Stores the event; `false` if it was stored before.
pub async fn insert(
    conn: &mut PgConnection,
    event: &NewUchatEvent<'_>,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(
        "INSERT INTO uchat_events (dedup_key, event_type, workspace_id, raw_body)
         VALUES ($1, $2, $3, $4) ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(event.dedup_key)
    .bind(event.event_type)
    .bind(event.workspace_id)
    .bind(event.raw_body)
    .execute(conn)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// UChat deleted the workspace: every order on it is marked deleted (so the planner never
/// plans for it again), its unfinished calls are given up, and it needs an operator.
/// Returns the orders marked.
pub async fn workspace_deleted(
    conn: &mut PgConnection,
    workspace_id: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let reason = format!(
        "UChat deleted workspace {workspace_id}: no call goes to it; the customer needs a new one"
    );
    let orders: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM orders WHERE workspace_id = $1 ORDER BY id FOR UPDATE")
            .bind(workspace_id)
            .fetch_all(&mut *conn)
            .await?;
    sqlx::query(
        "UPDATE partner_calls SET status = 'canceled', finished_at = now(),
             lease_id = NULL, lease_expires_at = NULL, last_error = $2
         WHERE order_id = ANY($1) AND status IN ('pending', 'held', 'dead')",
    )
    .bind(&orders)
    .bind(&reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE orders SET provisioned = jsonb_set(provisioned, '{deleted}', 'true'),
             blocked_status = COALESCE(blocked_status, status), status = 'needs_attention',
             attention = $2, notes = array_append(notes, $2), updated_at = now()
         WHERE id = ANY($1)",
    )
    .bind(&orders)
    .bind(&reason)
    .execute(&mut *conn)
    .await?;
    Ok(orders)
}

/// UChat said the partner's credit ran out.
pub async fn raise_credit_alert(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE partner_credit_alert SET since = COALESCE(since, now())")
        .execute(conn)
        .await?;
    Ok(())
}

/// A call that spends credit succeeded: credit is back. Ends the alert and makes the
/// calls held for credit due now, instead of at their next hold retry.
pub async fn credit_back(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH cleared AS (
             UPDATE partner_credit_alert SET since = NULL WHERE since IS NOT NULL RETURNING 1
         ), released AS (
             UPDATE partner_calls SET next_attempt_at = now()
             WHERE status = 'held' AND next_attempt_at > now() AND EXISTS (SELECT 1 FROM cleared)
             RETURNING 1
         )
         SELECT pg_notify($1, '') WHERE EXISTS (SELECT 1 FROM released)",
    )
    .bind(WAKE_CHANNEL)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn credit_alert(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let since: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT since FROM partner_credit_alert")
            .fetch_optional(conn)
            .await?
            .flatten();
    Ok(since.is_some())
}
