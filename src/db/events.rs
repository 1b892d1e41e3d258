use sqlx::PgPool;

use crate::stripe::decode::Event;

/// Stores an event unless one with its id is already stored. Returns whether it was new.
pub async fn insert(
    pool: &PgPool,
    event: &Event,
    raw_body: &str,
    acted_on: bool,
) -> Result<bool, sqlx::Error> {
    let status = if acted_on { "pending" } else { "ignored" };
    let inserted = sqlx::query(
        "INSERT INTO events
             (stripe_event_id, event_type, api_version, livemode, stripe_created, raw_body, payload, status)
         VALUES ($1, $2, $3, $4, $5, $6, $6::jsonb, $7)
         ON CONFLICT (stripe_event_id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.event_type)
    .bind(&event.api_version)
    .bind(event.livemode)
    .bind(event.created)
    .bind(raw_body)
    .bind(status)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
