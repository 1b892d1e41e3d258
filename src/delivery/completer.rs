//! The completer: records finished tries many to a transaction.
//!
//! A try that finishes while another batch is being written waits for the next one, and
//! a batch waits a moment for tries still running: so an idle worker records a lone try
//! at once, and a busy one shares each commit among many. One order's calls never
//! share a batch: the next call of an order is ready only once its predecessor's batch
//! commits.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tracing::Span;

use crate::db::calls::{self, FinishedTry, Verdict};
use crate::db::uchat_events;
use crate::partner::CallKind;

/// A batch whose statements fail is written again this many times more, after a pause
/// that grows by this much each time: a deadlock with a transaction taking back
/// expired leases, or a connection lost, should not cost every try of the batch.
const REWRITES: u32 = 2;
const REWRITE_PAUSE: Duration = Duration::from_millis(100);

/// How long a batch waits for tries still running. Tries claimed together finish
/// within moments of each other; without the wait, the first to finish would take a
/// commit (and then a claim) of its own.
const LINGER: Duration = Duration::from_millis(2);

pub(super) struct Completer {
    db: PgPool,
    /// Tries waiting for the next batch, in the order they finished.
    waiting: Mutex<Batch>,
    /// Held while a batch is written.
    writing: tokio::sync::Mutex<()>,
    /// Tries begun and not yet handed in.
    running: watch::Sender<usize>,
    /// Rung once per batch written: its calls' permits are free, and the next calls of
    /// their orders may be ready.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct Batch {
    tries: Vec<FinishedTry>,
    /// Each try's span, for what is logged about it once written.
    spans: Vec<Span>,
    /// The delivery slots of the tries, freed once they are written.
    permits: Vec<OwnedSemaphorePermit>,
}

impl Completer {
    pub(super) fn new(db: PgPool, wake: Arc<Notify>) -> Completer {
        Completer {
            db,
            waiting: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
            running: watch::Sender::new(0),
            wake,
        }
    }

    /// A try begins, holding `permit` (its delivery slot), if any, until it is recorded.
    pub(super) fn begin(&self, permit: Option<OwnedSemaphorePermit>) -> Running {
        self.running.send_modify(|running| *running += 1);
        Running {
            running: self.running.clone(),
            permit,
        }
    }

    /// Records the try, with others that finished meanwhile; returns once it is written
    /// (or its batch failed: then its call is taken back when the lease expires).
    pub(super) async fn complete(&self, mut running: Running, done: FinishedTry) {
        {
            let mut waiting = self.waiting();
            waiting.tries.push(done);
            waiting.spans.push(Span::current());
            waiting.permits.extend(running.permit.take());
        }
        drop(running);
        // Whoever held the lock before took every try waiting then, so once it is ours
        // this try is written, by an earlier holder or now by us.
        let _writing = self.writing.lock().await;
        if self.waiting().tries.is_empty() {
            return;
        }
        let _ = tokio::time::timeout(
            LINGER,
            self.running.subscribe().wait_for(|running| *running == 0),
        )
        .await;
        let batch = std::mem::take(&mut *self.waiting());
        self.write(batch).await;
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn write(&self, batch: Batch) {
        match self.record(&batch.tries).await {
            Ok(moved) => {
                for (span, moved) in batch.spans.iter().zip(moved) {
                    if !moved {
                        span.in_scope(|| {
                            tracing::warn!(
                                "a newer claim superseded this try; its result is kept as an attempt only"
                            )
                        });
                    }
                }
            }
            Err(error) => {
                for span in &batch.spans {
                    span.in_scope(|| {
                        tracing::error!(
                            %error,
                            "recording a partner call failed; it is retried when its lease expires"
                        )
                    });
                }
            }
        }
        drop(batch.permits);
        self.wake.notify_one();
    }

    /// Writes the batch, again after a failed statement; a failed commit is not repeated,
    /// since it may have taken effect.
    async fn record(&self, tries: &[FinishedTry]) -> Result<Vec<bool>, sqlx::Error> {
        let mut rewrites = 0;
        loop {
            match self.stage(tries).await {
                Ok((tx, moved)) => return tx.commit().await.map(|()| moved),
                Err(error) if rewrites < REWRITES => {
                    rewrites += 1;
                    tracing::warn!(
                        %error,
                        tries = tries.len(),
                        "recording partner calls failed; writing them again"
                    );
                    tokio::time::sleep(REWRITE_PAUSE * rewrites).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The batch's statements, in a transaction left open for the commit.
    async fn stage(
        &self,
        tries: &[FinishedTry],
    ) -> Result<(Transaction<'static, Postgres>, Vec<bool>), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let moved = calls::record(&mut tx, tries).await?;
        let credit = tries
            .iter()
            .zip(&moved)
            .filter(|(_, moved)| **moved)
            .filter_map(|(done, _)| Credit::noted_by(done));
        for change in collapse(credit) {
            match change {
                Credit::Out => uchat_events::raise_credit_alert(&mut tx).await?,
                Credit::Back => uchat_events::credit_back(&mut tx).await?,
            }
        }
        Ok((tx, moved))
    }
}

/// A try between its claim and its hand-in to the completer.
pub(super) struct Running {
    running: watch::Sender<usize>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.send_modify(|running| *running -= 1);
    }
}

/// What a try says about the partner's credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credit {
    /// A hold for credit: the credit alert is raised.
    Out,
    /// A call that spends credit succeeded: the alert ends, and the calls held meanwhile
    /// are released.
    Back,
}

impl Credit {
    fn noted_by(done: &FinishedTry) -> Option<Credit> {
        match done.verdict {
            Verdict::Held { .. } => Some(Credit::Out),
            Verdict::Succeeded { .. }
                if matches!(done.call.kind, CallKind::ChangePlan | CallKind::AddAddon) =>
            {
                Some(Credit::Back)
            }
            _ => None,
        }
    }
}

/// The changes in their order, each run of the same change once: repeating one changes
/// nothing more.
fn collapse(changes: impl Iterator<Item = Credit>) -> Vec<Credit> {
    let mut collapsed: Vec<Credit> = Vec::new();
    for change in changes {
        if collapsed.last() != Some(&change) {
            collapsed.push(change);
        }
    }
    collapsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_changes_keep_their_order_without_repeats() {
        use Credit::{Back, Out};
        let changes = [Out, Out, Back, Back, Back, Out, Back];
        assert_eq!(collapse(changes.into_iter()), [Out, Back, Out, Back]);
        assert!(collapse(std::iter::empty()).is_empty());
    }
}
