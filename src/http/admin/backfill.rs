//! `GET /admin/backfill`: the last recovery of missed Stripe events.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::backfill::{self, BackfillRun};
use crate::http::{ApiError, AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillView {
    /// The latest backfill, by `serve` or the `backfill` command; `null` before the first.
    last_run: Option<BackfillRun>,
}

/// The last backfill: when it ran, how far back it listed Stripe's events, how many it
/// listed, recovered and already had, and its error if it failed.
#[utoipa::path(
    get,
    path = "/backfill",
    operation_id = "backfill",
    tag = "events",
    responses((status = 200, description = "The last backfill run", body = BackfillView))
)]
pub async fn last_run(State(state): State<AppState>) -> Result<Json<BackfillView>, ApiError> {
    let last_run = backfill::last(&state.admin_db).await?;
    Ok(Json(BackfillView { last_run }))
}
