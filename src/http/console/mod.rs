//! The operator console under `/console`: the admin API as server-rendered pages, for
//! support people. Every page reads through the same `db` functions as the admin API,
//! and every action goes through the same changes; only the presentation is its own.
//!
//! Off (404) without `ADMIN_TOKEN`. Signing in takes the admin token once; then a signed
//! session cookie stands for it (see `session`), and every form carries a CSRF token.

mod calls;
mod chart;
mod orders;
mod overview;
mod reconcile;
mod session;
mod sign_in;
mod view;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use sqlx::PgPool;

use session::SessionKey;
use view::PageError;

use super::extract::Id;
use super::{admin, ApiError, AppState};
use crate::db::Change;
use crate::secret::Secret;

/// What the console keeps while the service runs.
pub struct Console {
    key: SessionKey,
    /// Mark the session cookie `Secure` (`CONSOLE_SECURE_COOKIE`): the console is served
    /// over HTTPS.
    secure_cookie: bool,
}

impl Console {
    pub fn new(admin_token: &Secret, secure_cookie: bool) -> Self {
        Console {
            key: SessionKey::derive(admin_token),
            secure_cookie,
        }
    }
}

/// The console's routes; none without a console (no `ADMIN_TOKEN`), so all answer 404.
pub fn router(state: &AppState) -> Router<AppState> {
    if state.console.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/console", get(overview::show))
        .route("/console/console.css", get(stylesheet))
        .route(
            "/console/sign-in",
            get(sign_in::form).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/orders", get(orders::list))
        .route("/console/orders/{id}", get(orders::show))
        .route("/console/orders/{id}/reconcile", post(reconcile::run))
        .route("/console/events/{id}/reprocess", post(orders::reprocess))
        .route("/console/calls", get(calls::list))
        .route("/console/calls/{id}/retry", post(calls::retry))
        .route("/console/calls/{id}/cancel", post(calls::cancel))
        .route(
            "/console/calls/retry",
            get(calls::confirm_retry).post(calls::retry_many),
        )
        .layer(map_response(guarded))
}

/// What every console answer carries: pages show customers' data, so no cache keeps
/// them; and no other site may frame them, load anything into them, or take their forms.
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
}

fn console(state: &AppState) -> Result<&Arc<Console>, ApiError> {
    state
        .console
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("route".into()))
}

/// A signed-in operator, with the CSRF token the page's forms carry. Without a valid
/// session, a page is redirected to the sign-in form and anything else is refused.
pub struct Operator {
    session: session::Session,
    csrf: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let console = console(state).map_err(view::error_page)?;
        let now = chrono::Utc::now().timestamp();
        let session = session::cookie_of(&parts.headers).and_then(|c| console.key.verify(c, now));
        match session {
            Some(session) => Ok(Operator {
                csrf: console.key.csrf(&session),
                session,
            }),
            None if parts.method == Method::GET => {
                Err(Redirect::to("/console/sign-in").into_response())
            }
            None => Err(view::error_page(ApiError::Unauthorized)),
        }
    }
}

/// A state-changing form of a signed-in operator, its CSRF token checked: the form's
/// other fields, in order.
pub struct Action {
    operator: Operator,
    fields: Vec<(String, String)>,
}

impl Action {
    /// Every value of the field `name`.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An operator's change to the row `what` `id`, made by the admin API's own function
/// `change`; the answer leads to the page where its result shows (`then`).
async fn act<T>(
    state: &AppState,
    (what, done): (&str, &str),
    id: Result<Id, ApiError>,
    change: impl AsyncFnOnce(&PgPool, i64) -> Result<Change<T>, sqlx::Error>,
    then: impl FnOnce(&T) -> String,
) -> Result<Redirect, PageError> {
    let Id(id) = id?;
    let row = admin::made(change(&state.admin_db, id).await?, || {
        format!("{what} {id}")
    })?;
    tracing::info!(id, "console: {what} {done}");
    Ok(Redirect::to(&then(&row)))
}

/// The name of the hidden field that carries the CSRF token.
const CSRF_FIELD: &str = "csrf";

impl FromRequest<AppState> for Action {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let operator = Operator::from_request_parts(&mut parts, state).await?;
        let Form(fields) =
            Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), state)
                .await
                .map_err(|rejection| {
                    view::error_page(ApiError::BadRequest(rejection.body_text()))
                })?;
        let console = console(state).map_err(view::error_page)?;
        let token = fields
            .iter()
            .find(|(name, _)| name == CSRF_FIELD)
            .map(|(_, value)| value.as_str());
        if !token.is_some_and(|token| console.key.csrf_matches(&operator.session, token)) {
            tracing::warn!("console form refused: missing or wrong CSRF token");
            return Err(view::error_page(ApiError::Forbidden(
                "this form has expired or did not come from the console; reload the page and try again"
                    .into(),
            )));
        }
        Ok(Action { operator, fields })
    }
}
