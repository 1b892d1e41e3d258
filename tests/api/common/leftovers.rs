//! What a test leaves behind. As crates.io's test app fails a test that leaves a
//! background job in its queue, a [`TestApp`] checks when it is dropped that no event
//! failed and no partner call is left pending, running, held or dead, unless the test
//! said it expects them.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{Connection, PgConnection};

use super::{on_own_runtime, TestApp};

/// What a test leaves behind on purpose, as it told its app.
#[derive(Default)]
pub struct Expected {
    failed_events: AtomicBool,
    dead_calls: AtomicBool,
    unfinished_calls: AtomicBool,
}

impl TestApp {
    /// The test makes events fail.
    pub fn expect_failed_events(&self) {
        self.expected.failed_events.store(true, Ordering::Relaxed);
    }

    /// The test makes calls end dead.
    pub fn expect_dead_calls(&self) {
        self.expected.dead_calls.store(true, Ordering::Relaxed);
    }

    /// The test leaves calls pending, running or held: it plans calls without delivering
    /// them, or holds them back behind a dead or held call.
    pub fn expect_unfinished_calls(&self) {
        self.expected
            .unfinished_calls
            .store(true, Ordering::Relaxed);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A failing test has said what went wrong; a second panic would abort the run.
        if std::thread::panicking() {
            return;
        }
        let Some(database) = &self.database else {
            return;
        };
        let left = on_own_runtime(leftovers(
            database.url.clone(),
            [
                self.expected.failed_events.load(Ordering::Relaxed),
                self.expected.dead_calls.load(Ordering::Relaxed),
                self.expected.unfinished_calls.load(Ordering::Relaxed),
            ],
        ))
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        assert!(
            left.is_empty(),
            "the test left behind what it did not say it expects (TestApp::expect_failed_events, \
             expect_dead_calls, expect_unfinished_calls):\n{}",
            left.join("\n")
        );
    }
}

/// One line for each failed event, dead call and unfinished call, except those expected.
async fn leftovers(database_url: String, [failed, dead, unfinished]: [bool; 3]) -> Vec<String> {
    let mut db = PgConnection::connect(&database_url)
        .await
        .expect("the check on drop reaches the test's database");
    sqlx::query_scalar(
        "SELECT 'failed event ' || stripe_event_id || coalesce(': ' || error, '')
           FROM events WHERE status = 'failed' AND NOT $1
         UNION ALL
         SELECT status || ' call ' || id || ' (' || kind || ')' || coalesce(': ' || last_error, '')
           FROM partner_calls
          WHERE (status = 'dead' AND NOT $2)
             OR (status IN ('pending', 'running', 'held') AND NOT $3)",
    )
    .bind(failed)
    .bind(dead)
    .bind(unfinished)
    .fetch_all(&mut db)
    .await
    .expect("the check on drop reads the test's database")
}
