//! The storefront's one read: how far the order of a Checkout session has come.

use sqlx::{FromRow, PgPool};

/// The order a Checkout session led to, as the buyer's status needs it.
#[derive(Debug)]
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
    /// An event of the session or of its order failed: it waits for an operator.
    EventFailed,
}

/// The session's order (if any) and its events, in one row whether or not there is one.
#[derive(FromRow)]
struct SessionRow {
    status: Option<String>,
    needs_attention: bool,
    workspace_id: Option<i64>,
    blocked: bool,
    unfinished: bool,
    event_failed: bool,
    received: bool,
}

pub async fn progress(db: &PgPool, session: &str) -> Result<SessionProgress, sqlx::Error> {
    let key = format!("cs:{session}");
    // Failed events are found as the operator API's order timeline finds them: by order,
    // or, unapplied, by any of the order's Stripe ids (events_order, events_unapplied_keys).
    let row: SessionRow = sqlx::query_as(
        "SELECT o.status, o.attention IS NOT NULL AS needs_attention, o.workspace_id,
                EXISTS (SELECT 1 FROM partner_calls c
                        WHERE c.order_id = o.id AND c.status IN ('dead', 'held')) AS blocked,
                EXISTS (SELECT 1 FROM partner_calls c
                        WHERE c.order_id = o.id AND c.status IN ('pending', 'running')) AS unfinished,
                EXISTS (SELECT 1 FROM events e
                        WHERE e.status = 'failed'
                          AND (e.order_id = o.id
                               OR (e.order_id IS NULL AND e.order_keys && ARRAY(
                                   SELECT $1::text UNION SELECT stripe_key FROM order_links
                                                   WHERE order_id = o.id)))) AS event_failed,
                EXISTS (SELECT 1 FROM pending_event_keys WHERE order_key = $1) AS received
         FROM (SELECT $1::text AS stripe_key) session
         LEFT JOIN order_links l ON l.stripe_key = session.stripe_key
         LEFT JOIN orders o ON o.id = l.order_id",
    )
    .bind(&key)
    .fetch_one(db)
    .await?;
    Ok(match row {
        SessionRow {
            event_failed: true, ..
        } => SessionProgress::EventFailed,
        SessionRow {
            status: Some(status),
            needs_attention,
            workspace_id,
            blocked,
            unfinished,
            ..
        } => SessionProgress::Ordered(SessionOrder {
            status,
            needs_attention,
            workspace_id,
            blocked,
            unfinished,
        }),
        SessionRow { received: true, .. } => SessionProgress::Received,
        SessionRow { .. } => SessionProgress::Unknown,
    })
}
