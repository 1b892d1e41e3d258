//! The one error type of the HTTP layer: each variant knows its status, and every
//! response body is `{"error": "<short reason>"}`.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::processor::ApplyError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// What was not found, e.g. `order 42`.
    #[error("{0} not found")]
    NotFound(String),
    /// The resource's state does not allow the request; the reason says which state.
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong admin token")]
    Unauthorized,
    /// Authenticated, but the request is not allowed (a console form without its CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// The service runs without `ADMIN_TOKEN`: operator routes are off.
    #[error("admin disabled")]
    AdminDisabled,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The client did not send its whole body within the body timeout.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The request was not handled within the request timeout.
    #[error("request timed out; retry later")]
    TimedOut,
    /// As many webhooks as intake takes at once are in hand: this one is shed.
    #[error("too busy; retry later")]
    Overloaded,
    /// A client asked for more than its rate allows; it may try again after these seconds.
    #[error("too many requests; try again shortly")]
    TooManyRequests(u64),
    /// A read from Stripe's API failed in a way worth retrying.
    #[error("{0}")]
    Upstream(String),
    #[error("database unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::AdminDisabled
            | ApiError::Unavailable
            | ApiError::TimedOut
            | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Every error response's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A short reason, naming the parameter at fault where there is one.
    #[schema(example = "order 42 not found")]
    pub error: String,
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            return ApiError::Unavailable;
        }
        match error.as_database_error() {
            // SQLSTATE class 22, data exception: every query binds its values, so this is
            // a value from the request that Postgres cannot take (a NUL in a string, say).
            Some(database) if database.code().is_some_and(|code| code.starts_with("22")) => {
                ApiError::BadRequest(format!(
                    "a value the database cannot store: {}",
                    database.message()
                ))
            }
            _ => ApiError::Internal(error.into()),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(error: ApplyError) -> Self {
        match error {
            ApplyError::Unusable(reason) => ApiError::BadRequest(reason),
            ApplyError::RetryLater(reason) => ApiError::Upstream(reason),
            ApplyError::Database(error) => error.into(),
        }
    }
}

/// Seconds a client is asked to wait before it tries a refused request again.
pub const RETRY_AFTER_SECS: &str = "2";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(source) => tracing::error!(error = ?source, "request failed"),
            ApiError::Unavailable => tracing::warn!("database unavailable"),
            ApiError::TimedOut => tracing::warn!("request timed out"),
            ApiError::Overloaded => tracing::warn!("webhook shed: intake is saturated"),
            _ => {}
        }
        let body = Json(ErrorBody {
            error: self.to_string(),
        });
        match self {
            // RFC 6750: tell the client which scheme would be accepted.
            ApiError::Unauthorized => {
                let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
                (self.status(), challenge, body).into_response()
            }
            ApiError::Unavailable | ApiError::TimedOut | ApiError::Overloaded => {
                let retry = [(header::RETRY_AFTER, RETRY_AFTER_SECS)];
                (self.status(), retry, body).into_response()
            }
            ApiError::TooManyRequests(seconds) => {
                let retry = [(header::RETRY_AFTER, seconds.to_string())];
                (self.status(), retry, body).into_response()
            }
            // The rest of the body is not read: the connection cannot carry another request.
            ApiError::BodyTimeout => {
                let close = [(header::CONNECTION, "close")];
                (self.status(), close, body).into_response()
            }
            _ => (self.status(), body).into_response(),
        }
    }
}
