//! `GET /admin/reconcile` (the last report) and `POST /admin/reconcile` (a run now, of
//! every live order or one, repairing if asked).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db;
use crate::http::{ApiError, AppState};
use crate::reconcile::{Report, Scope};

/// The newest reconciliation report.
#[utoipa::path(
    get,
    path = "/reconcile",
    operation_id = "last_reconcile_report",
    tag = "orders",
    responses(
        (status = 200, description = "The newest report", body = Report),
        (status = 404, description = "No reconciliation has run yet", body = super::ErrorBody),
    )
)]
pub async fn last(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    db::reconcile::last_report(&state.admin_db)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("reconciliation report".into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RunRequest {
    /// Only this order (and, for the add-on totals, the orders sharing its workspace).
    order: Option<i64>,
    /// Queue the calls that bring UChat back to what the orders provisioned.
    repair: bool,
}

/// Reconciles now: each live order against Stripe's subscription and UChat's
/// workspace. A repair queues calls, like any change; it never calls UChat itself.
#[utoipa::path(
    post,
    path = "/reconcile",
    operation_id = "reconcile",
    tag = "orders",
    request_body(content = RunRequest, description = "Empty, or which order and whether to repair"),
    responses(
        (status = 200, description = "The report, also stored as the last one", body = Report),
        (status = 400, description = "A malformed request", body = super::ErrorBody),
        (status = 404, description = "No such order", body = super::ErrorBody),
        (status = 409, description = "No partner to read: UCHAT_API_TOKEN is not set", body = super::ErrorBody),
    )
)]
pub async fn run(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Report>, ApiError> {
    let body = body?;
    let request: RunRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RunRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    Ok(Json(
        reconcile_now(&state, request.order, request.repair).await?,
    ))
}

/// A reconciliation run now, of every live order or of `order`, for the API and the
/// console alike.
pub async fn reconcile_now(
    state: &AppState,
    order: Option<i64>,
    repair: bool,
) -> Result<Report, ApiError> {
    let reconciler = state.reconciler.as_ref().ok_or_else(|| {
        ApiError::Conflict("reconciliation needs the partner API: set UCHAT_API_TOKEN".into())
    })?;
    let scope = order.map_or(Scope::All, Scope::Order);
    reconciler
        .run(scope, repair)
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| ApiError::NotFound(format!("order {}", order.unwrap_or(0))))
}
