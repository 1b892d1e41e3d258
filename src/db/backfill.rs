//! Backfill runs, and what a backfill asks of the events table.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use utoipa::ToSchema;

/// Who started a backfill. Stored as text in `backfill_runs.started_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum StartedBy {
    /// `serve`'s periodic run.
    Serve,
    /// `uchat-billing backfill`.
    Command,
}

/// One backfill as operators see it.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct BackfillRun {
    pub id: i64,
    pub started_by: StartedBy,
    pub started_at: DateTime<Utc>,
    /// `null` while it runs, or when its process died.
    pub finished_at: Option<DateTime<Utc>>,
    /// Events created at or after this were listed.
    pub since: DateTime<Utc>,
    /// Events Stripe listed, of the types the service acts on.
    pub listed: i32,
    /// Listed events the webhook never delivered, now stored (recovered).
    pub stored: i32,
    /// Listed events already stored.
    pub already_known: i32,
    /// Why the run failed; nothing is stored then.
    pub error: Option<String>,
}

/// Records a run's start; returns its id.
pub async fn start(
    pool: &PgPool,
    started_by: StartedBy,
    since: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO backfill_runs (started_by, since) VALUES ($1, $2) RETURNING id")
        .bind(started_by)
        .bind(since)
        .fetch_one(pool)
        .await
}

/// What a run found; `error` when it failed.
pub struct Outcome<'a> {
    pub listed: usize,
    pub stored: usize,
    pub already_known: usize,
    pub error: Option<&'a str>,
}

pub async fn finish(pool: &PgPool, id: i64, outcome: Outcome<'_>) -> Result<(), sqlx::Error> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query(
        "UPDATE backfill_runs SET finished_at = now(), listed = $2, stored = $3,
             already_known = $4, error = $5
         WHERE id = $1",
    )
    .bind(id)
    .bind(count(outcome.listed))
    .bind(count(outcome.stored))
    .bind(count(outcome.already_known))
    .bind(outcome.error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest run, finished or not.
pub async fn last(pool: &PgPool) -> Result<Option<BackfillRun>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, started_by, started_at, finished_at, since, listed, stored, already_known,
                error
         FROM backfill_runs ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}

/// Stripe's `created` of the newest stored event, if any is stored.
pub async fn newest_event_created(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(stripe_created) FROM events")
        .fetch_one(pool)
        .await
}

/// Which of these Stripe event ids are stored already.
pub async fn known_events(pool: &PgPool, ids: &[&str]) -> Result<HashSet<String>, sqlx::Error> {
    let known: Vec<String> =
        sqlx::query_scalar("SELECT stripe_event_id FROM events WHERE stripe_event_id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(known.into_iter().collect())
}
