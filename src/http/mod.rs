//! Routes and the HTTP server. Handlers stay thin: they parse, call one thing, answer.

mod admin;
mod auth;
mod console;
mod error;
mod extract;
mod health;
mod limits;
mod server;
mod store;
mod uchat_webhook;
mod webhook;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use admin::openapi;
pub use console::Console;
pub use error::ApiError;
pub use server::{serve, ServerLimits};
pub use store::Storefront;

use crate::intake::GroupCommit;
use crate::metrics::Metrics;
use crate::processor::Processor;
use crate::reconcile::Reconciler;
use crate::secret::Secret;

/// Stripe events are a few KiB; anything near this is not one.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    /// Webhook intake's own connections (and `/readyz`'s): nothing else can take them.
    pub intake_db: PgPool,
    /// Stores webhooks on `intake_db`, those arriving together in one commit.
    pub intake: GroupCommit,
    /// The operator API's and `/metrics`' connections, with a short statement timeout.
    pub admin_db: PgPool,
    /// One permit per webhook in hand; none left, a webhook is shed with 503.
    pub webhook_slots: Arc<Semaphore>,
    pub webhook_secrets: Arc<[Secret]>,
    /// `None`: the operator API answers 503 "admin disabled".
    pub admin_token: Option<Secret>,
    pub metrics_public: bool,
    pub metrics: Arc<Metrics>,
    /// How long after payment an order without a workspace counts in `/metrics`.
    pub paid_not_provisioned_after: std::time::Duration,
    /// For dry runs: the processor's own reads and planning.
    pub processor: Processor,
    /// The operator console; `None` (its routes answer 404) without an admin token.
    pub console: Option<Arc<Console>>,
    /// `None`: no `/store` routes (`STORE_ENABLED` is off).
    pub store: Option<Storefront>,
    /// `None` without a partner to read (`UCHAT_API_TOKEN`).
    pub reconciler: Option<Reconciler>,
    /// `None` turns `POST /webhooks/uchat/{token}` off.
    pub uchat_webhook_token: Option<Secret>,
}

pub fn router(state: AppState, limits: &ServerLimits) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request<_>| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let path = request
                .extensions()
                .get::<MatchedPath>()
                .map_or(request.uri().path(), MatchedPath::as_str);
            tracing::info_span!("request", method = %request.method(), path, request_id)
        })
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(tower_http::LatencyUnit::Micros),
        );

    let uchat = match state.uchat_webhook_token {
        Some(_) => Router::new().route("/webhooks/uchat/{token}", post(uchat_webhook::receive)),
        None => Router::new(),
    };
    Router::new()
        .route("/webhooks/stripe", post(webhook::receive))
        .merge(uchat)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(admin::router(&state))
        .merge(console::router(&state))
        .merge(store::router(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower::util::option_layer(store::cors(&state)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(
            limits.body_timeout,
            limits::read_body_within,
        ))
        .layer(from_fn_with_state(
            limits.request_timeout,
            limits::handle_within,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
