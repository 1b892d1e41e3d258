//! `POST /webhooks/stripe`: verify, store once, answer. Nothing here waits on UChat.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::intake::{Failure, Stored};
use crate::stripe::decode::{self, Event};
use crate::stripe::signature;

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    // Beyond what intake takes at once, answer at once: Stripe retries later, and the
    // requests in hand are not slowed down by more waiting behind them.
    let Ok(_slot) = state.webhook_slots.try_acquire() else {
        state
            .metrics
            .record_webhook(None, "shed", started.elapsed());
        return Err(ApiError::Overloaded);
    };
    let (event, body) = match verify(&state, &headers, body) {
        Ok(verified) => verified,
        Err(error) => {
            tracing::warn!(reason = %error, "webhook rejected");
            state
                .metrics
                .record_webhook(None, "rejected", started.elapsed());
            return Err(error);
        }
    };
    let raw_body = String::from_utf8(body.into()).expect("parse_event checked UTF-8");
    let event = Arc::new(event);
    // Answered once the row is committed, with the webhooks that arrived alongside.
    let stored = state.intake.store(event.clone(), raw_body).await;
    let outcome = match stored {
        Ok(Stored { new: true, .. }) => "stored",
        Ok(Stored { new: false, .. }) => "duplicate",
        Err(_) => "error",
    };
    state
        .metrics
        .record_webhook(Some(&event.event_type), outcome, started.elapsed());
    let stored = stored?;
    tracing::info!(
        event_id = %event.id,
        event_type = %event.event_type,
        new = stored.new,
        acted_on = stored.acted_on,
        "webhook stored"
    );
    Ok(Json(json!({ "received": true })))
}

/// The authentic event in the body, with the body.
fn verify(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Event, Bytes), ApiError> {
    let body = body?;
    let header = headers
        .get("stripe-signature")
        .map(|value| value.to_str().unwrap_or_default());
    let now = chrono::Utc::now().timestamp();
    signature::verify(header, &body, &state.webhook_secrets, now)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let event =
        decode::parse_event(&body).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    Ok((event, body))
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Unavailable => ApiError::Unavailable,
            Failure::Refused(error) => error.into(),
        }
    }
}
