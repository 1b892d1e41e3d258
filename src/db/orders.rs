//! Orders: found through any Stripe id that leads to them, locked while an event applies.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool, QueryBuilder};
use utoipa::ToSchema;

use super::calls::WAKE_CHANNEL;
use crate::partner::{Call, CallKind};
use crate::plan::{canceled, OrderStatus, Provisioned};

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

/// Takes, without waiting, the lock [`lock_keys`] takes of each key that no other
/// transaction holds, until the transaction ends; returns the keys another one holds.
pub async fn try_lock_keys(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT k FROM unnest($1::text[]) AS k
         WHERE NOT pg_try_advisory_xact_lock(hashtextextended(k, 0))",
    )
    .bind(keys)
    .fetch_all(conn)
    .await
}

/// Locks for update, lowest id first, every order these keys lead to and every order of
/// these customers: a transaction that applies several events takes its orders' locks in
/// one order, as every other holder of several order locks does, so none waits on another
/// in a cycle. One probe per key.
pub async fn lock_all(
    conn: &mut PgConnection,
    links: &[String],
    customers: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT 1 FROM orders WHERE id IN (
             SELECT l.order_id FROM unnest($1::text[]) AS k(stripe_key)
             CROSS JOIN LATERAL (
                 SELECT order_id FROM order_links WHERE stripe_key = k.stripe_key
             ) l
             UNION
             SELECT id FROM orders WHERE stripe_customer = ANY($2))
         ORDER BY id
         FOR UPDATE",
    )
    .bind(links)
    .bind(customers)
    .execute(conn)
    .await?;
    Ok(())
}

/// The order one of these keys leads to: the oldest if several do. One primary-key probe
/// per key, written so that no cached plan can turn it into a scan of every link.
const FIND_BY_LINKS: &str = "SELECT o.id, o.facts, o.provisioned FROM orders o
     WHERE o.id = (
         SELECT min(l.order_id) FROM unnest($1::text[]) AS k(stripe_key)
         CROSS JOIN LATERAL (
             SELECT order_id FROM order_links WHERE stripe_key = k.stripe_key LIMIT 1
         ) l)";

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

/// Another order of the same customer, as choosing a workspace needs it.
#[derive(Debug, FromRow)]
pub struct CustomerOrderRow {
    pub id: i64,
    /// The order's own status, even while delivery blocks it.
    pub status: OrderStatus,
    pub workspace_id: Option<i64>,
    pub provisioned: Value,
}

/// The customer's orders other than `except_order` (`None` for an order not stored
/// yet), oldest first.
pub async fn of_customer(
    conn: &mut PgConnection,
    customer: &str,
    except_order: Option<i64>,
) -> Result<Vec<CustomerOrderRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, COALESCE(blocked_status, status) AS status, workspace_id, provisioned
         FROM orders
         WHERE stripe_customer = $1 AND id IS DISTINCT FROM $2
         ORDER BY id",
    )
    .bind(customer)
    .bind(except_order)
    .fetch_all(conn)
    .await
}

/// Those of `workspace_ids` bound to an order other than `order_id`: a repeated create
/// of `order_id` must not take them.
pub async fn bound_elsewhere(
    pool: &PgPool,
    order_id: i64,
    workspace_ids: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT workspace_id FROM orders WHERE workspace_id = ANY($2) AND id <> $1",
    )
    .bind(order_id)
    .bind(workspace_ids)
    .fetch_all(pool)
    .await
}

/// The order with this id, locked for update.
pub async fn get_for_update(conn: &mut PgConnection, id: i64) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as("SELECT id, facts, provisioned FROM orders WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_one(conn)
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
    pub status: OrderStatus,
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

/// The workspaces creates returned, one per order (`orders[i]` gets `workspaces[i]`):
/// later calls of each order go to its workspace.
pub async fn set_workspaces(
    conn: &mut PgConnection,
    orders: &[i64],
    workspaces: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders o SET workspace_id = created.workspace_id,
             provisioned = jsonb_set(o.provisioned, '{workspace}', jsonb_build_object('known', created.workspace_id)),
             updated_at = now()
         FROM unnest($1::bigint[], $2::bigint[]) AS created(order_id, workspace_id)
         WHERE o.id = created.order_id",
    )
    .bind(orders)
    .bind(workspaces)
    .execute(conn)
    .await?;
    Ok(())
}

/// Delivery is stuck (a dead or held call): each order needs an operator, with its
/// reason (`orders[i]` for `reasons[i]`).
pub async fn block(
    conn: &mut PgConnection,
    orders: &[i64],
    reasons: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders o SET blocked_status = COALESCE(o.blocked_status, o.status), status = 'needs_attention',
             attention = stuck.reason, updated_at = now()
         FROM unnest($1::bigint[], $2::text[]) AS stuck(order_id, reason)
         WHERE o.id = stuck.order_id",
    )
    .bind(orders)
    .bind(reasons)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`unblock_if_clear`]'s statement; the pipeline benchmark's pgbench runs it too.
pub const UNBLOCK_IF_CLEAR: &str = "WITH unblocked AS (
         UPDATE orders o SET status = blocked_status, blocked_status = NULL, attention = NULL,
             updated_at = now()
         WHERE o.id = ANY($1) AND o.blocked_status IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM partner_calls
                           WHERE order_id = o.id AND status IN ('dead', 'held'))
     )
     SELECT pg_notify($2, '')";

/// A call of each order finished, succeeded or was let go: once no call of an order is
/// dead or held, it shows its planned status again; and the workers wake (one
/// notification for all), since the orders' next calls may run now (in this process or
/// another).
pub async fn unblock_if_clear(conn: &mut PgConnection, orders: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query(UNBLOCK_IF_CLEAR)
        .bind(orders)
        .bind(WAKE_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// A call of the order was given up: its effect leaves the order's provisioned state,
/// so that state matches what UChat received, and a note says what was skipped. The
/// caller holds the order's row lock.
pub async fn forget_canceled(
    conn: &mut PgConnection,
    order_id: i64,
    call_id: i64,
) -> Result<(), sqlx::Error> {
    let provisioned: Value = sqlx::query_scalar("SELECT provisioned FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&mut *conn)
        .await?;
    // The calls still meant to reach UChat, and the one given up, in their sequence.
    let stored: Vec<(i64, CallKind, Value)> = sqlx::query_as(
        "SELECT id, kind, body FROM partner_calls
         WHERE order_id = $1 AND (status <> 'canceled' OR id = $2) ORDER BY position",
    )
    .bind(order_id)
    .bind(call_id)
    .fetch_all(&mut *conn)
    .await?;
    let unreadable = |error: serde_json::Error| sqlx::Error::Decode(error.into());
    let provisioned: Provisioned = serde_json::from_value(provisioned).map_err(unreadable)?;
    let calls = stored
        .iter()
        .map(|(_, kind, body)| Call::from_stored(*kind, body.clone()))
        .collect::<Result<Vec<Call>, _>>()
        .map_err(unreadable)?;
    let Some(at) = stored.iter().position(|(id, _, _)| *id == call_id) else {
        return Ok(());
    };
    let state = canceled::without_call(&provisioned, &calls, at);
    sqlx::query(
        "UPDATE orders SET provisioned = $2, notes = array_append(notes, $3), updated_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(serde_json::to_value(&state).expect("state serializes"))
    .bind(canceled::note(call_id, &calls[at]))
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the order's row until the transaction ends.
pub async fn lock(conn: &mut PgConnection, order_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// An order as operators see it in a list.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct OrderSummary {
    pub id: i64,
    pub status: OrderStatus,
    /// Why the order needs an operator, when it does.
    pub attention: Option<String>,
    /// The status to return to once no call of the order is dead or held.
    pub blocked_status: Option<OrderStatus>,
    /// The Stripe customer id.
    pub customer: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub workspace_id: Option<i64>,
    /// Every Stripe id that leads to the order, with its kind: `sub:`, `cs:`, `pi:`,
    /// `in:` or `ch:` and the id.
    #[schema(example = json!(["cs:cs_test_123", "sub:sub_123"]))]
    pub stripe_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An order with what Stripe told us about it and what it has provisioned.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct OrderRecord {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub summary: OrderSummary,
    /// What Stripe told us, folded from every event applied.
    pub facts: Value,
    /// What the order has set up in UChat, as far as its planned calls go; a call an
    /// operator canceled does not count.
    pub provisioned: Value,
    /// What operators did that the state alone does not tell, oldest first: each call
    /// given up, and so never received by UChat.
    pub notes: Vec<String>,
}

const SUMMARY_COLUMNS: &str = "o.id, o.status, o.attention, o.blocked_status,
     o.stripe_customer AS customer, o.email, o.name, o.workspace_id,
     ARRAY(SELECT l.stripe_key FROM order_links l WHERE l.order_id = o.id ORDER BY l.stripe_key)
         AS stripe_ids,
     o.created_at, o.updated_at";

/// Which orders a list shows; `None` matches any.
#[derive(Debug, Default)]
pub struct OrderFilter<'a> {
    pub status: Option<OrderStatus>,
    /// Matched without regard to case.
    pub email: Option<&'a str>,
    pub customer: Option<&'a str>,
    pub workspace_id: Option<i64>,
    /// Any Stripe id that leads to the order: `sub_...`, `cs_...`, `pi_...`, `in_...`
    /// or `ch_...`.
    pub stripe_id: Option<&'a str>,
}

/// Orders, newest first, `before` an order id (the previous page's last), at most `limit`.
/// One index range for any single filter (see [`super::newest_first`]).
pub async fn list(
    pool: &PgPool,
    filter: &OrderFilter<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<OrderSummary>, sqlx::Error> {
    let mut query = QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS} FROM orders o WHERE true"));
    if let Some(status) = filter.status {
        query.push(" AND o.status = ").push_bind(status);
    }
    if let Some(email) = filter.email {
        query
            .push(" AND lower(o.email) = lower(")
            .push_bind(email)
            .push(")");
    }
    if let Some(customer) = filter.customer {
        query.push(" AND o.stripe_customer = ").push_bind(customer);
    }
    if let Some(workspace_id) = filter.workspace_id {
        query.push(" AND o.workspace_id = ").push_bind(workspace_id);
    }
    if let Some(stripe_id) = filter.stripe_id {
        // Links are kept as `<kind>:<id>`, and a Stripe id starts with its kind.
        let kind = stripe_id.split('_').next().unwrap_or_default();
        query
            .push(" AND o.id IN (SELECT order_id FROM order_links WHERE stripe_key = ")
            .push_bind(format!("{kind}:{stripe_id}"))
            .push(")");
    }
    super::newest_first(&mut query, "o.id", before, limit);
    query.build_query_as().fetch_all(pool).await
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}, o.facts, o.provisioned, o.notes FROM orders o WHERE o.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}
