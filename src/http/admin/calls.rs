//! Partner calls: the list, and an operator's retry or cancel of a stuck one.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::changed;
use super::page::{Page, PageParams};
use crate::db::calls::{self, CallRecord, CallStatus};
use crate::http::extract::{optional_variant, Id, Query};
use crate::http::{ApiError, AppState};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Only calls in this status.
    #[serde(default, deserialize_with = "optional_variant")]
    status: Option<CallStatus>,
}

/// Partner calls, newest first.
#[utoipa::path(
    get,
    path = "/calls",
    operation_id = "list_calls",
    tag = "calls",
    params(CallQuery, PageParams),
    responses(
        (status = 200, description = "A page of calls", body = Page<CallRecord>),
        (status = 400, description = "A malformed parameter", body = super::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<CallQuery>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<CallRecord>>, ApiError> {
    let rows = calls::list(&state.admin_db, query.status, page.before(), page.fetch()).await?;
    Ok(Json(Page::new(rows, &page, |call| call.id)))
}

/// Makes a dead or held call pending and due now. A dead call gets a full set of tries
/// again; its last error is kept until the next try.
#[utoipa::path(
    post,
    path = "/calls/{id}/retry",
    operation_id = "retry_call",
    tag = "calls",
    params(("id" = i64, Path, description = "The call's id", minimum = 1)),
    responses(
        (status = 200, description = "The call, now pending", body = CallRecord),
        (status = 400, description = "A malformed id", body = super::ErrorBody),
        (status = 404, description = "No such call", body = super::ErrorBody),
        (status = 409, description = "The call is neither dead nor held", body = super::ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<CallRecord>, ApiError> {
    changed(calls::retry(&state.admin_db, id).await?, || {
        format!("call {id}")
    })
}

/// Gives up on a pending, held or dead call, so the order's later calls may run.
#[utoipa::path(
    post,
    path = "/calls/{id}/cancel",
    operation_id = "cancel_call",
    tag = "calls",
    params(("id" = i64, Path, description = "The call's id", minimum = 1)),
    responses(
        (status = 200, description = "The call, now canceled", body = CallRecord),
        (status = 400, description = "A malformed id", body = super::ErrorBody),
        (status = 404, description = "No such call", body = super::ErrorBody),
        (status = 409, description = "The call is running or finished", body = super::ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<CallRecord>, ApiError> {
    changed(calls::cancel(&state.admin_db, id).await?, || {
        format!("call {id}")
    })
}
