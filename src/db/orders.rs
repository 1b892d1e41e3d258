//! Orders: found through any Stripe id that leads to them, locked while an event applies.

use serde_json::Value;
use sqlx::{FromRow, PgConnection};

#[derive(Debug, FromRow)]
pub struct OrderRow {
    pub id: i64,
    pub facts: Value,
    pub provisioned: Value,
}

/// Serializes work on the orders these keys lead to, until the transaction ends, so two
/// processors never create two orders for one purchase (see `lock_order_keys`).
pub async fn lock_keys(conn: &mut PgConnection, links: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT lock_order_keys($1)")
        .bind(links)
        .execute(conn)
        .await?;
    Ok(())
}

/// The order one of these keys leads to, locked for update; the oldest if several do.
pub async fn find_for_update(
    conn: &mut PgConnection,
    links: &[String],
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.id, o.facts, o.provisioned FROM orders o
         WHERE o.id = (SELECT min(order_id) FROM order_links WHERE stripe_key = ANY($1))
         FOR UPDATE",
    )
    .bind(links)
    .fetch_optional(conn)
    .await
}

pub async fn insert(conn: &mut PgConnection) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as("INSERT INTO orders DEFAULT VALUES RETURNING id, facts, provisioned")
        .fetch_one(conn)
        .await
}

pub async fn link(
    conn: &mut PgConnection,
    order_id: i64,
    links: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_links (stripe_key, order_id)
         SELECT unnest($1::text[]), $2
         ON CONFLICT (stripe_key) DO NOTHING",
    )
    .bind(links)
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A workspace already provisioned for this customer by another order.
pub async fn customer_workspace(
    conn: &mut PgConnection,
    customer: &str,
    except_order: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT workspace_id FROM orders
         WHERE stripe_customer = $1 AND id <> $2 AND workspace_id IS NOT NULL
         ORDER BY id LIMIT 1",
    )
    .bind(customer)
    .bind(except_order)
    .fetch_optional(conn)
    .await
}

pub struct OrderUpdate<'a> {
    pub id: i64,
    pub customer: Option<&'a str>,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub workspace_id: Option<i64>,
    pub facts: Value,
    pub provisioned: Value,
    pub status: &'a str,
    pub attention: Option<&'a str>,
}

pub async fn update(conn: &mut PgConnection, order: OrderUpdate<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        // While delivery blocks the order, its planned status waits in `blocked_status`.
        "UPDATE orders SET stripe_customer = $2, email = $3, name = $4,
             workspace_id = COALESCE(workspace_id, $5), facts = $6, provisioned = $7,
             status = CASE WHEN blocked_status IS NULL THEN $8 ELSE status END,
             blocked_status = CASE WHEN blocked_status IS NULL THEN NULL ELSE $8 END,
             attention = CASE WHEN blocked_status IS NULL THEN $9 ELSE attention END,
             updated_at = now()
         WHERE id = $1",
    )
    .bind(order.id)
    .bind(order.customer)
    .bind(order.email)
    .bind(order.name)
    .bind(order.workspace_id)
    .bind(order.facts)
    .bind(order.provisioned)
    .bind(order.status)
    .bind(order.attention)
    .execute(conn)
    .await?;
    Ok(())
}

/// The workspace a create returned: later calls of the order go to it.
pub async fn set_workspace(
    conn: &mut PgConnection,
    order_id: i64,
    workspace_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET workspace_id = $2,
             provisioned = jsonb_set(provisioned, '{workspace}', jsonb_build_object('known', $2::bigint)),
             updated_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(workspace_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Delivery is stuck (a dead or held call): the order needs an operator, with the reason.
pub async fn block(
    conn: &mut PgConnection,
    order_id: i64,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET blocked_status = COALESCE(blocked_status, status), status = 'needs_attention',
             attention = $2, updated_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Once no call of the order is dead or held, it shows its planned status again.
pub async fn unblock_if_clear(conn: &mut PgConnection, order_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = blocked_status, blocked_status = NULL, attention = NULL, updated_at = now()
         WHERE id = $1 AND blocked_status IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM partner_calls WHERE order_id = $1 AND status IN ('dead', 'held'))",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}
