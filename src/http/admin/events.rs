//! `POST /admin/events/{id}/reprocess`: plan an event again, after a catalog fix say.

use axum::extract::State;
use axum::Json;

use super::changed;
use crate::db::events::{self, EventRecord};
use crate::http::extract::Id;
use crate::http::{ApiError, AppState};

/// Puts a failed event, or an event whose order planning left needing attention, back in
/// the processor's queue; the processor applies it again with the catalog it has now.
#[utoipa::path(
    post,
    path = "/events/{id}/reprocess",
    operation_id = "reprocess_event",
    tag = "events",
    params(("id" = i64, Path, description = "The event's id (not Stripe's)", minimum = 1)),
    responses(
        (status = 200, description = "The event, pending again", body = EventRecord),
        (status = 400, description = "A malformed id", body = super::ErrorBody),
        (status = 404, description = "No such event", body = super::ErrorBody),
        (status = 409, description = "The event is neither failed nor of an order that needs attention", body = super::ErrorBody),
    )
)]
pub async fn reprocess(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<EventRecord>, ApiError> {
    changed(events::reprocess(&state.admin_db, id).await?, || {
        format!("event {id}")
    })
}
