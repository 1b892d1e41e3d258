//! Storing an authentic Stripe event: once, by its Stripe id, whether the webhook
//! delivered it or a backfill found it in Stripe's event list. Both take the one INSERT
//! of [`db::events::insert_many`], so a recovered event is stored, deduplicated and
//! queued exactly as a delivered one. Webhooks arriving together share it and its commit
//! (see [`group_commit`]).

mod group_commit;

use sqlx::PgExecutor;

pub use group_commit::{Committer, Failure, GroupCommit};

use crate::db;
use crate::db::events::NewEvent;
use crate::stripe::decode::{self, Event};

/// How an event reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Webhook,
    /// Listed by Stripe's events API: the webhook never delivered it.
    Backfill,
}

impl Via {
    /// The row of `event` (whose exact text is `raw_body`), come this way: both ways
    /// store an event alike, but for `recovered`.
    fn row<'a>(self, event: &'a Event, raw_body: &'a str) -> NewEvent<'a> {
        NewEvent {
            event,
            raw_body,
            acted_on: decode::acts_on(&event.event_type),
            recovered: self == Via::Backfill,
        }
    }
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

/// Stores `event` (whose exact text is `raw_body`) unless its id is already stored, by
/// itself, on `db` (a backfill's transaction). Webhooks are stored through [`GroupCommit`].
pub async fn store(
    db: impl PgExecutor<'_>,
    event: &Event,
    raw_body: &str,
    via: Via,
) -> Result<Stored, sqlx::Error> {
    let row = via.row(event, raw_body);
    let stored = db::events::insert_many(db, std::slice::from_ref(&row)).await?;
    Ok(Stored {
        new: !stored.is_empty(),
        acted_on: row.acted_on,
    })
}
