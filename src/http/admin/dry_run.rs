//! `POST /admin/dry-run`: what a Stripe event would do, with nothing written.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;

use crate::dry_run::DryRun;
use crate::http::{ApiError, AppState};

/// The calls a Stripe event would queue against its order as the order stands now, and
/// the status it would leave. Nothing is written; Stripe's API may be read, as the
/// processor would.
#[utoipa::path(
    post,
    path = "/dry-run",
    operation_id = "dry_run",
    tag = "events",
    request_body(
        content = Object,
        description = "A Stripe event, as Stripe would post it (no signature needed)",
        content_type = "application/json",
    ),
    responses(
        (status = 200, description = "What the event would do", body = DryRun),
        (status = 400, description = "Not a Stripe event the service acts on, or one missing what it needs", body = super::ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = super::ErrorBody),
        (status = 502, description = "Stripe's API failed", body = super::ErrorBody),
    )
)]
pub async fn dry_run(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DryRun>, ApiError> {
    Ok(Json(state.processor.dry_run(&body?).await?))
}
