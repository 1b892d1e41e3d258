//! What the pipeline did over the last hours, for the console's charts. Each query reads
//! one index range bounded by `since` (`migrations/0012_console_charts.sql`), so its cost
//! follows the traffic of the window, not the size of the tables.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

/// How many rows fell in one hour, from `hour` on.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub count: i64,
}

/// What a chart of hours counts.
#[derive(Clone, Copy, Debug)]
pub enum Hourly {
    /// Stripe events, by when they were received.
    EventsReceived,
    /// Partner calls that succeeded, by when.
    CallsSucceeded,
}

impl Hourly {
    fn query(self) -> &'static str {
        match self {
            Hourly::EventsReceived => {
                "SELECT date_trunc('hour', received_at) AS hour, count(*) AS count FROM events
                 WHERE received_at >= $1 GROUP BY 1 ORDER BY 1"
            }
            Hourly::CallsSucceeded => {
                "SELECT date_trunc('hour', finished_at) AS hour, count(*) AS count FROM partner_calls
                 WHERE finished_at >= $1 AND status = 'succeeded' GROUP BY 1 ORDER BY 1"
            }
        }
    }
}

/// How many of `what` there were per hour since `since`; hours without any are left out.
pub async fn per_hour(
    pool: &PgPool,
    what: Hourly,
    since: DateTime<Utc>,
) -> Result<Vec<HourCount>, sqlx::Error> {
    sqlx::query_as(what.query())
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
