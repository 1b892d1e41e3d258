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
/// processors never create two orders for one purchase. Keys are locked in sorted order,
/// so two transactions never wait on each other in a cycle.
pub async fn lock_keys(conn: &mut PgConnection, links: &[String]) -> Result<(), sqlx::Error> {
    for link in links {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(link)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The order one of these keys leads to: the oldest if several do.
const FIND_BY_LINKS: &str = "SELECT o.id, o.facts, o.provisioned FROM orders o
     WHERE o.id = (SELECT min(order_id) FROM order_links WHERE stripe_key = ANY($1))";

/// The order these keys lead to, locked for update.
pub async fn find_for_update(
    conn: &mut PgConnection,
    links: &[String],
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!("{FIND_BY_LINKS} FOR UPDATE"))
        .bind(links)
        .fetch_optional(conn)
        .await
}

/// The order these keys lead to, unlocked: for reads that change nothing.
pub async fn find(
    conn: &mut PgConnection,
    links: &[String],
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(FIND_BY_LINKS)
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

/// A workspace already provisioned for this customer by another order than `except_order`
/// (`None` for an order not stored yet).
pub async fn customer_workspace(
    conn: &mut PgConnection,
    customer: &str,
    except_order: Option<i64>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT workspace_id FROM orders
         WHERE stripe_customer = $1 AND id IS DISTINCT FROM $2 AND workspace_id IS NOT NULL
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
        "UPDATE orders SET stripe_customer = $2, email = $3, name = $4,
             workspace_id = COALESCE(workspace_id, $5), facts = $6, provisioned = $7,
             status = $8, attention = $9, updated_at = now()
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
