//! What reconciliation reads (the live orders, a page at a time) and writes (its reports).

use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};

/// A live order as reconciliation compares it.
#[derive(Debug, FromRow)]
pub struct LiveOrder {
    pub id: i64,
    pub workspace_id: Option<i64>,
    pub facts: Value,
    pub provisioned: Value,
    /// A call of the order is not finished: its state is on its way, not drift.
    pub in_flight: bool,
    /// One of the page's orders, not another order of one of their workspaces.
    pub in_page: bool,
}

/// The next `limit` live orders after order `after` (by id; with `workspace` or `order`,
/// only that workspace's or that order), and with them every other live order of their
/// workspaces, whose add-ons count with theirs; by id. Empty after the last page.
pub async fn live_orders_page(
    pool: &PgPool,
    workspace: Option<i64>,
    order: Option<i64>,
    after: i64,
    limit: i64,
) -> Result<Vec<LiveOrder>, sqlx::Error> {
    sqlx::query_as(
        "WITH page AS (
             SELECT id, workspace_id FROM orders
             WHERE COALESCE(blocked_status, status) NOT IN ('canceled', 'refunded', 'pending')
               AND id > $1
               AND ($2::bigint IS NULL OR workspace_id = $2)
               AND ($3::bigint IS NULL OR id = $3)
             ORDER BY id LIMIT $4
         )
         SELECT o.id, o.workspace_id, o.facts, o.provisioned,
             EXISTS (SELECT 1 FROM partner_calls c
                     WHERE c.order_id = o.id AND c.status NOT IN ('succeeded', 'canceled')) AS in_flight,
             o.id IN (SELECT id FROM page) AS in_page
         FROM orders o
         WHERE COALESCE(o.blocked_status, o.status) NOT IN ('canceled', 'refunded', 'pending')
           AND o.id IN (SELECT id FROM page
                        UNION SELECT same.id FROM orders same JOIN page USING (workspace_id))
         ORDER BY o.id",
    )
    .bind(after)
    .bind(workspace)
    .bind(order)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The workspace an order is bound to; `None` for no such order, `Some(None)` for one
/// without a workspace yet.
pub async fn workspace_of(pool: &PgPool, order: i64) -> Result<Option<Option<i64>>, sqlx::Error> {
    sqlx::query_scalar("SELECT workspace_id FROM orders WHERE id = $1")
        .bind(order)
        .fetch_optional(pool)
        .await
}

/// The order's provisioned state, locked, if none of its calls is unfinished.
pub async fn settled_state_for_update(
    conn: &mut PgConnection,
    order: i64,
) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT provisioned FROM orders o WHERE id = $1
           AND NOT EXISTS (SELECT 1 FROM partner_calls c
                           WHERE c.order_id = o.id AND c.status NOT IN ('succeeded', 'canceled'))
         FOR UPDATE",
    )
    .bind(order)
    .fetch_optional(conn)
    .await
}

pub async fn store_report(
    pool: &PgPool,
    order: Option<i64>,
    every_order: bool,
    repair: bool,
    orders_in_drift: i64,
    report: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reconcile_reports (order_id, every_order, repair, orders_in_drift, report)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order)
    .bind(every_order)
    .bind(repair)
    .bind(orders_in_drift)
    .bind(report)
    .execute(pool)
    .await?;
    Ok(())
}

/// The newest report.
pub async fn last_report(pool: &PgPool) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT report FROM reconcile_reports ORDER BY id DESC LIMIT 1")
        .fetch_optional(pool)
        .await
}

/// Orders in drift as the newest run over every order found them; 0 before the first.
pub async fn orders_in_drift(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let count: Option<i64> = sqlx::query_scalar(
        "SELECT orders_in_drift FROM reconcile_reports WHERE every_order
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(count.unwrap_or(0))
}
