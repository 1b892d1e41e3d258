//! `GET /admin/stats`: the whole pipeline at a glance.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::calls::{self, Backlog};
use crate::db::stats;
use crate::http::{ApiError, AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Orders by status; statuses with none are left out.
    orders: BTreeMap<String, i64>,
    /// Partner calls by status; statuses with none are left out.
    calls: BTreeMap<String, i64>,
    #[serde(flatten)]
    backlog: Backlog,
}

/// Orders and calls by status, and the delivery backlog.
#[utoipa::path(
    get,
    path = "/stats",
    operation_id = "stats",
    tag = "stats",
    responses((status = 200, description = "Counts and the backlog", body = Stats))
)]
pub async fn show(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let counts = stats::status_counts(&state.admin_db).await?;
    let backlog = calls::backlog(&state.admin_db).await?;
    Ok(Json(Stats {
        orders: counts.orders,
        calls: counts.calls,
        backlog,
    }))
}
