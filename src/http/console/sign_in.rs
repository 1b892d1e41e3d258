//! Signing in with the admin token, and out.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::view::{self, PageError, Section};
use super::{console, session, Action};
use crate::http::{ApiError, AppState};

#[derive(Deserialize)]
pub struct Credentials {
    token: String,
}

pub async fn form() -> impl IntoResponse {
    sign_in_page(None)
}

pub async fn sign_in(
    State(state): State<AppState>,
    credentials: Result<Form<Credentials>, FormRejection>,
) -> Result<Response, PageError> {
    let console = console(&state)?;
    let Form(credentials) =
        credentials.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let token = state
        .admin_token
        .as_ref()
        .expect("a console has an admin token");
    if !token.matches(credentials.token.trim()) {
        tracing::warn!("console sign-in refused: wrong admin token");
        let page = sign_in_page(Some("That is not the admin token."));
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    tracing::info!("console sign-in");
    let session = console.key.issue(chrono::Utc::now().timestamp());
    let cookie = session.set_cookie(console.secure_cookie);
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/console")).into_response())
}

pub async fn sign_out(State(state): State<AppState>, _: Action) -> Result<Response, PageError> {
    let console = console(&state)?;
    let cookie = session::clear_cookie(console.secure_cookie);
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/console/sign-in")).into_response())
}

fn sign_in_page(problem: Option<&str>) -> impl IntoResponse {
    view::page(
        "Sign in",
        Section::None,
        None,
        html! {
            @if let Some(problem) = problem {
                p.notice.bad role="alert" { (problem) }
            }
            form.sign-in method="post" action="/console/sign-in" {
                label for="token" { "Admin token" }
                input #token type="password" name="token" required autocomplete="current-password"
                    autofocus aria-describedby="token-help";
                p #token-help.help { "The service's ADMIN_TOKEN. You stay signed in on this browser for 12 hours, or until you sign out." }
                button type="submit" { "Sign in" }
            }
        },
    )
}
