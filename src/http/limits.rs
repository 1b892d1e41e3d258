//! Per-request limits: the body arrives within its timeout, the whole request is handled
//! within its own, and webhooks beyond what intake can take are shed.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{ApiError, MAX_BODY_BYTES};

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) within `timeout`, before any handler
/// runs: a client that trickles its body gets 408 and its connection closed, and no
/// handler ever waits on a client.
pub async fn read_body_within(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect());
    let body = match read.await {
        Err(_) => return Err(ApiError::BodyTimeout),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::PayloadTooLarge)
        }
        Ok(Err(error)) => return Err(ApiError::BadRequest(format!("reading the body: {error}"))),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok(next.run(Request::from_parts(parts, Body::from(body))).await)
}

/// Answers 503 (with `Retry-After`) to a request not handled within `timeout`.
pub async fn handle_within(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    tokio::time::timeout(timeout, next.run(request))
        .await
        .map_err(|_| ApiError::TimedOut)
}
