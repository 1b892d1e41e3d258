//! Group commit: webhooks that arrive together are stored in one multi-row INSERT, so
//! they share one round trip and one commit instead of paying for one each. Each is
//! answered only once its own row is committed.
//!
//! Batching is natural: a request that arrives alone is flushed at once, with no added
//! wait. A few flushes run at once; requests that arrive while all of them are in flight
//! queue up, and the next flush takes them all.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinSet;

use super::{Stored, Via};
use crate::db::{self, events::NewEvent};
use crate::stripe::decode::Event;

/// Flushes in flight at once, so Postgres works on several (on every core) and one
/// waiting for its commit does not hold up the next. Of 1, 2, 4 and 8 measured on two
/// cores (issue 18 note), four gave the most at concurrency 32 without losing at 8.
const FLUSHES: usize = 4;
/// A batch's rows, and (roughly: the last body may pass it) their bodies' bytes, so one
/// statement stays a few MiB at most even when every body is near the 1 MiB limit.
const MAX_ROWS: usize = 64;
const MAX_BYTES: usize = 1024 * 1024;

/// Why an event was not stored.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The database cannot be reached, or intake is shutting down: try again later.
    #[error("database unavailable")]
    Unavailable,
    /// Postgres refused the event's row.
    #[error(transparent)]
    Refused(sqlx::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        if db::is_unavailable(&error) {
            Failure::Unavailable
        } else {
            Failure::Refused(error)
        }
    }
}

/// Where webhooks are stored: hands each event to the [`Committer`] and waits for its
/// commit.
#[derive(Clone)]
pub struct GroupCommit {
    arrivals: mpsc::Sender<Arrival>,
}

/// A verified webhook waiting for its row to be committed.
struct Arrival {
    event: Arc<Event>,
    raw_body: String,
    reply: oneshot::Sender<Result<Stored, Failure>>,
}

impl GroupCommit {
    /// The handle webhooks are stored through, and the committer that stores them into
    /// `db` (it must run, see [`Committer::run`]). `capacity`: webhooks in hand at most
    /// (each holds a slot while it waits), so sending never waits for room. `arrivals`
    /// is rung once per batch that stored a new event the processor acts on.
    pub fn new(db: PgPool, arrivals: Arc<Notify>, capacity: usize) -> (GroupCommit, Committer) {
        let (sender, queue) = mpsc::channel(capacity.max(1));
        let committer = Committer {
            db,
            queue,
            processor_arrivals: arrivals,
        };
        (GroupCommit { arrivals: sender }, committer)
    }

    /// Stores `event`, whose exact text is `raw_body`, unless its id is already stored;
    /// returns once that is committed. Without a committer running (intake stopped), it
    /// fails at once as unavailable.
    pub async fn store(&self, event: Arc<Event>, raw_body: String) -> Result<Stored, Failure> {
        let (reply, answer) = oneshot::channel();
        let arrival = Arrival {
            event,
            raw_body,
            reply,
        };
        self.arrivals
            .send(arrival)
            .await
            .map_err(|_| Failure::Unavailable)?;
        // A flush that died without answering (it cannot commit any more) is a failure.
        answer.await.unwrap_or(Err(Failure::Unavailable))
    }
}

/// Takes the queued webhooks in batches and stores each batch in one statement.
pub struct Committer {
    db: PgPool,
    queue: mpsc::Receiver<Arrival>,
    processor_arrivals: Arc<Notify>,
}

impl Committer {
    /// Stores batches until every [`GroupCommit`] handle is gone (the server stopped),
    /// then flushes what is still queued and returns once every flush has answered.
    pub async fn run(mut self) {
        let mut flushes = JoinSet::new();
        loop {
            while flushes.try_join_next().is_some() {}
            // While every flush is in flight, arrivals queue up: the next batch grows.
            if flushes.len() >= FLUSHES {
                flushes.join_next().await;
            }
            let Some(first) = self.queue.recv().await else {
                break;
            };
            while flushes.try_join_next().is_some() {}
            // What is queued is shared among the free flushes, so Postgres works on several
            // at once (on every core): batches grow only while every flush is busy.
            let free = FLUSHES - flushes.len();
            let share = (1 + self.queue.len()).div_ceil(free);
            let batch = take_queued(first, &mut self.queue, share.min(MAX_ROWS));
            flushes.spawn(flush(
                self.db.clone(),
                batch,
                self.processor_arrivals.clone(),
            ));
        }
        while flushes.join_next().await.is_some() {}
    }
}

/// The first arrival and what is queued behind it, up to `rows` and the byte cap,
/// without waiting for more.
fn take_queued(first: Arrival, queue: &mut mpsc::Receiver<Arrival>, rows: usize) -> Vec<Arrival> {
    let mut bytes = first.raw_body.len();
    let mut batch = vec![first];
    while batch.len() < rows && bytes < MAX_BYTES {
        let Ok(arrival) = queue.try_recv() else {
            break;
        };
        bytes += arrival.raw_body.len();
        batch.push(arrival);
    }
    batch
}

/// Stores the batch in one statement and answers each arrival. Should that statement
/// fail for another reason than an unreachable database (one row Postgres cannot take),
/// each row is stored by itself, so only the bad row's webhook fails.
async fn flush(db: PgPool, mut batch: Vec<Arrival>, processor_arrivals: Arc<Notify>) {
    // Stripe's order, as a backfill stores: concurrent batches then meet on an id's
    // unique-index entry in one order (no deadlock), and ids follow Stripe's order.
    batch.sort_by(|a, b| (a.event.created, &a.event.id).cmp(&(b.event.created, &b.event.id)));
    let rows: Vec<NewEvent> = batch
        .iter()
        .map(|arrival| Via::Webhook.row(&arrival.event, &arrival.raw_body))
        .collect();
    let outcomes = match db::events::insert_many(&db, &rows).await {
        Ok(stored) => outcomes_of(&rows, &stored),
        Err(error) if db::is_unavailable(&error) => {
            tracing::warn!(%error, rows = rows.len(), "webhooks not stored: database unavailable");
            rows.iter().map(|_| Err(Failure::Unavailable)).collect()
        }
        Err(error) if rows.len() == 1 => vec![Err(Failure::Refused(error))],
        Err(error) => {
            tracing::warn!(%error, rows = rows.len(), "storing webhooks together failed; storing each alone");
            one_by_one(&db, &rows).await
        }
    };
    if outcomes.iter().any(|outcome| {
        outcome
            .as_ref()
            .is_ok_and(|stored| stored.wakes_processor())
    }) {
        processor_arrivals.notify_one();
    }
    for (arrival, outcome) in batch.into_iter().zip(outcomes) {
        // The webhook may have given up (its request timed out): nothing to answer.
        let _ = arrival.reply.send(outcome);
    }
}

/// What storing did for each row, given the ids the statement stored: an id is new for
/// its first row only (a second copy in the batch is a duplicate).
fn outcomes_of(rows: &[NewEvent], stored: &[String]) -> Vec<Result<Stored, Failure>> {
    let mut unclaimed: HashSet<&str> = stored.iter().map(String::as_str).collect();
    rows.iter()
        .map(|row| {
            Ok(Stored {
                new: unclaimed.remove(row.event.id.as_str()),
                acted_on: row.acted_on,
            })
        })
        .collect()
}

async fn one_by_one(db: &PgPool, rows: &[NewEvent<'_>]) -> Vec<Result<Stored, Failure>> {
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        let stored = db::events::insert_many(db, std::slice::from_ref(row)).await;
        outcomes.push(match stored {
            Ok(stored) => Ok(Stored {
                new: !stored.is_empty(),
                acted_on: row.acted_on,
            }),
            Err(error) => Err(Failure::from(error)),
        });
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::decode;

    fn event(id: &str, event_type: &str) -> Arc<Event> {
        let body = format!(r#"{{"id":"{id}","type":"{event_type}","created":1,"data":{{}}}}"#);
        Arc::new(decode::parse_event(body.as_bytes()).unwrap())
    }

    fn arrival(id: &str, body_bytes: usize) -> Arrival {
        Arrival {
            event: event(id, "invoice.paid"),
            raw_body: "x".repeat(body_bytes),
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn an_id_is_new_for_its_first_row_only() {
        let (paid, copy, known, other) = (
            event("evt_1", "invoice.paid"),
            event("evt_1", "invoice.paid"),
            event("evt_2", "invoice.paid"),
            event("evt_3", "customer.created"),
        );
        let rows: Vec<NewEvent> = [&paid, &copy, &known, &other]
            .into_iter()
            .map(|event| NewEvent {
                event,
                raw_body: "{}",
                acted_on: decode::acts_on(&event.event_type),
                recovered: false,
            })
            .collect();
        let stored: Vec<Stored> = outcomes_of(&rows, &["evt_1".to_owned(), "evt_3".to_owned()])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let stored_as = |new, acted_on| Stored { new, acted_on };
        assert_eq!(
            stored,
            [
                stored_as(true, true),
                stored_as(false, true),
                stored_as(false, true),
                stored_as(true, false)
            ]
        );
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_its_caps_without_waiting() {
        let (sender, mut queue) = mpsc::channel(2 * MAX_ROWS);
        for n in 0..MAX_ROWS + 5 {
            sender.send(arrival(&format!("evt_{n}"), 10)).await.unwrap();
        }
        let batch = take_queued(arrival("evt_first", 10), &mut queue, MAX_ROWS);
        assert_eq!(batch.len(), MAX_ROWS, "capped by rows");
        let batch = take_queued(arrival("evt_first", 10), &mut queue, 3);
        assert_eq!(batch.len(), 3, "its share");
        let batch = take_queued(arrival("evt_first", 10), &mut queue, MAX_ROWS);
        assert_eq!(batch.len(), 5, "the rest, and no waiting for more");

        for n in 0..3 {
            sender
                .send(arrival(&format!("evt_big_{n}"), MAX_BYTES / 2))
                .await
                .unwrap();
        }
        let batch = take_queued(arrival("evt_first", 10), &mut queue, MAX_ROWS);
        assert_eq!(
            batch.len(),
            3,
            "the body that passes the byte cap ends the batch"
        );
        let alone = take_queued(arrival("evt_alone", 10), &mut queue, MAX_ROWS);
        assert_eq!(alone.len(), 2);
    }
}
