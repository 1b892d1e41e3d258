//! What the pipeline did over the last hours, for the console's charts. Each query reads
//! one index range bounded by `since` (`migrations/0013_console_charts.sql`), so its cost
//! follows the traffic of the window, not the size of the tables.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

/// How many rows fell in one hour, from `hour` on.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub count: i64,
}

/// Events received per hour since `since`; hours without any are left out.
pub async fn events_per_hour(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<HourCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT date_trunc('hour', received_at) AS hour, count(*) AS count FROM events
         WHERE received_at >= $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(since)
    .fetch_all(pool)
    .await
}

/// Partner calls that succeeded per hour since `since`; hours without any are left out.
pub async fn calls_succeeded_per_hour(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<HourCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT date_trunc('hour', finished_at) AS hour, count(*) AS count FROM partner_calls
         WHERE finished_at >= $1 AND status = 'succeeded' GROUP BY 1 ORDER BY 1",
    )
    .bind(since)
    .fetch_all(pool)
    .await
}

/// The delivery latency buckets' upper bounds, in seconds: a call is counted in the
/// first bucket whose bound is above its latency, or in a last, open bucket.
pub const LATENCY_BOUNDS_SECS: [f64; 6] = [1.0, 5.0, 30.0, 120.0, 600.0, 3600.0];

/// How many calls that succeeded since `since` took each bucket's time from being queued
/// to succeeding: one count per bucket of [`LATENCY_BOUNDS_SECS`], and the open one last.
pub async fn delivery_latency(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT width_bucket(extract(epoch FROM finished_at - created_at)::float8, $2::float8[]),
                count(*)
         FROM partner_calls
         WHERE finished_at >= $1 AND status = 'succeeded' GROUP BY 1",
    )
    .bind(since)
    .bind(&LATENCY_BOUNDS_SECS[..])
    .fetch_all(pool)
    .await?;
    let mut buckets = vec![0; LATENCY_BOUNDS_SECS.len() + 1];
    for (bucket, count) in rows {
        if let Some(slot) = usize::try_from(bucket)
            .ok()
            .and_then(|b| buckets.get_mut(b))
        {
            *slot = count;
        }
    }
    Ok(buckets)
}
