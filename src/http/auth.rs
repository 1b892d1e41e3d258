//! Operator access: the admin token as a bearer token, compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiError, AppState};

/// Lets a request through only with the admin token; with no token configured, the
/// operator API is off.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    authorize(&state, request.headers())?;
    Ok(next.run(request).await)
}

/// Like `require_admin`, unless metrics are configured public.
pub async fn require_metrics_access(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.metrics_public {
        authorize(&state, request.headers())?;
    }
    Ok(next.run(request).await)
}

pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = state.admin_token.as_ref().ok_or(ApiError::AdminDisabled)?;
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim());
    match presented {
        Some(candidate) if token.matches(candidate) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}
