//! Storing an authentic Stripe event: once, by its Stripe id, whether the webhook
//! delivered it or a backfill found it in Stripe's event list. Both take this one path,
//! so a recovered event is stored, deduplicated and queued exactly as a delivered one.

use sqlx::PgExecutor;

use crate::db;
use crate::stripe::decode::{self, Event};

/// How an event reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Webhook,
    /// Listed by Stripe's events API: the webhook never delivered it.
    Backfill,
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// No event with its id was stored before.
    pub new: bool,
    /// Of a type the processor acts on (any other is stored as ignored).
    pub acted_on: bool,
}

impl Stored {
    /// The processor has a new event to apply.
    pub fn wakes_processor(self) -> bool {
        self.new && self.acted_on
    }
}

/// Stores `event` (whose exact text is `raw_body`) unless its id is already stored.
pub async fn store(
    db: impl PgExecutor<'_>,
    event: &Event,
    raw_body: &str,
    via: Via,
) -> Result<Stored, sqlx::Error> {
    let acted_on = decode::acts_on(&event.event_type);
    let new = db::events::insert(db, event, raw_body, acted_on, via == Via::Backfill).await?;
    Ok(Stored { new, acted_on })
}
