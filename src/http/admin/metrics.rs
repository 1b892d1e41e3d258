//! `GET /metrics`: Prometheus' scrape.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::db::{self, calls, stats};
use crate::http::{ApiError, AppState};
use crate::metrics;

/// Counters and histograms since start, and the delivery backlog as of now, in
/// Prometheus' text format. Needs the admin token unless `METRICS_PUBLIC=true`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "stats",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn scrape(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let backlog = calls::backlog(&state.admin_db).await?;
    let paid_not_provisioned =
        stats::paid_not_provisioned(&state.admin_db, state.paid_not_provisioned_after).await?;
    let mut text = state.metrics.render(&backlog, paid_not_provisioned);
    let mut conn = state.admin_db.acquire().await?;
    text.push_str(&metrics::render_watch(&metrics::Watch {
        orders_in_drift: db::reconcile::orders_in_drift(&state.admin_db).await?,
        credit_alert: db::uchat_events::credit_alert(&mut conn).await?,
    }));
    Ok(([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
}
