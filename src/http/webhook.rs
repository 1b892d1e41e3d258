//! `POST /webhooks/stripe`: verify, store once, answer. Nothing here waits on UChat.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::stripe::{decode, signature};

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            tracing::warn!("webhook rejected: body over the size limit");
            ApiError::PayloadTooLarge
        } else {
            reject(rejection.body_text())
        }
    })?;

    let header = headers
        .get("stripe-signature")
        .map(|value| value.to_str().unwrap_or_default());
    let now = chrono::Utc::now().timestamp();
    signature::verify(header, &body, &state.webhook_secrets, now)
        .map_err(|error| reject(error.to_string()))?;

    let event = decode::parse_event(&body).map_err(|error| reject(error.to_string()))?;
    let raw_body = std::str::from_utf8(&body).expect("parse_event checked UTF-8");
    let acted_on = decode::acts_on(&event.event_type);
    let new = crate::db::events::insert(&state.db, &event, raw_body, acted_on).await?;
    if new && acted_on {
        state.events_arrived.notify_one();
    }
    tracing::info!(
        event_id = %event.id,
        event_type = %event.event_type,
        new,
        acted_on,
        "webhook stored"
    );
    Ok(Json(json!({ "received": true })))
}

/// One warn line per rejection; never the payload or the secret.
fn reject(reason: String) -> ApiError {
    tracing::warn!(%reason, "webhook rejected");
    ApiError::BadRequest(reason)
}
