//! The storefront's one read: how far the order of a Checkout session has come.

use sqlx::{FromRow, PgPool};

/// The order a Checkout session led to, as the buyer's status needs it.
#[derive(Debug, FromRow)]
pub struct SessionOrder {
    pub status: String,
    pub needs_attention: bool,
    pub workspace_id: Option<i64>,
    /// A call of the order is dead or held: it waits for an operator or for credit.
    pub blocked: bool,
    /// A call of the order is still to run.
    pub unfinished: bool,
}

/// What the service knows of a Checkout session.
#[derive(Debug)]
pub enum SessionProgress {
    /// No event of it yet.
    Unknown,
    /// Its event is stored, not yet applied.
    Received,
    Ordered(SessionOrder),
}

pub async fn progress(db: &PgPool, session: &str) -> Result<SessionProgress, sqlx::Error> {
    let key = format!("cs:{session}");
    let order: Option<SessionOrder> = sqlx::query_as(
        "SELECT o.status, o.attention IS NOT NULL AS needs_attention, o.workspace_id,
                EXISTS (SELECT 1 FROM partner_calls c
                        WHERE c.order_id = o.id AND c.status IN ('dead', 'held')) AS blocked,
                EXISTS (SELECT 1 FROM partner_calls c
                        WHERE c.order_id = o.id AND c.status IN ('pending', 'running')) AS unfinished
         FROM order_links l JOIN orders o ON o.id = l.order_id
         WHERE l.stripe_key = $1",
    )
    .bind(&key)
    .fetch_optional(db)
    .await?;
    if let Some(order) = order {
        return Ok(SessionProgress::Ordered(order));
    }
    // The pending events' keys are indexed (events_pending_keys).
    let received: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE status = 'pending' AND order_keys @> ARRAY[$1])",
    )
    .bind(&key)
    .fetch_one(db)
    .await?;
    Ok(if received {
        SessionProgress::Received
    } else {
        SessionProgress::Unknown
    })
}
