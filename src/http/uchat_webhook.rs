//! `POST /webhooks/uchat/{token}`: UChat's partner events, stored once each. What they
//! do is database work only (plus a reconciliation spawned after the answer): nothing
//! here waits on UChat.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::db::uchat_events::{self, NewUchatEvent};
use crate::partner::{PartnerEvent, PartnerEventKind};
use crate::reconcile::Scope;

pub async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    // UChat documents no signature: the secret path token is the only proof.
    let known = state.uchat_webhook_token.as_ref();
    if !known.is_some_and(|known| known.matches(&token)) {
        tracing::warn!("UChat webhook with a wrong path token rejected");
        return Err(ApiError::NotFound("route".into()));
    }
    let body = body?;
    let raw = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let event = PartnerEvent::read(raw);
    let mut tx = state.intake_db.begin().await?;
    let new = uchat_events::insert(
        &mut tx,
        &NewUchatEvent {
            dedup_key: &event.dedup_key,
            event_type: &event.event_type,
            workspace_id: event.workspace_id,
            raw_body: raw,
        },
    )
    .await?;
    let mut orders = Vec::new();
    if new {
        match (event.kind, event.workspace_id) {
            (PartnerEventKind::WorkspaceDeleted, Some(workspace)) => {
                orders = uchat_events::workspace_deleted(&mut tx, workspace).await?;
            }
            (PartnerEventKind::NoEnoughCredit, _) => {
                uchat_events::raise_credit_alert(&mut tx).await?;
                tracing::error!("UChat says the partner's credit is not enough: top it up");
            }
            _ => {}
        }
    }
    tx.commit().await?;
    if let (true, PartnerEventKind::PlanChanged, Some(workspace), Some(reconciler)) = (
        new,
        event.kind,
        event.workspace_id,
        state.reconciler.clone(),
    ) {
        // The next periodic run would find it too; this finds it now.
        tokio::spawn(async move {
            if let Err(error) = reconciler.run(Scope::Workspace(workspace), false).await {
                tracing::warn!(error = %format!("{error:#}"), workspace, "reconciliation failed");
            }
        });
    }
    tracing::info!(
        event_type = %event.event_type,
        workspace_id = event.workspace_id,
        new,
        orders_marked = ?orders,
        "UChat webhook stored"
    );
    Ok(Json(json!({ "received": true, "duplicate": !new })))
}
