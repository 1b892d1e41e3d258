//! The partner's webhook: set, shown and removed through the contract's three routes,
//! and posted to when a workspace is deleted (payload as the contract guesses it).

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::fields::Fields;
use super::{lock, ok, ApiResult, Sandbox, SandboxHandle};

pub(super) fn routes() -> Router<SandboxHandle> {
    Router::new()
        .route("/partner/webhook", get(show))
        .route("/partner/set-webhook", post(set))
        .route("/partner/remove-webhook", post(remove))
}

async fn show(State(h): Sandbox) -> Json<Value> {
    ok(json!({ "url": h.webhook_url() }))
}

async fn set(State(h): Sandbox, body: Bytes) -> ApiResult {
    let url = Fields::parse(&body)?.text("url")?;
    *lock(&h.inner.webhook) = Some(url.clone());
    Ok(ok(json!({ "url": url })))
}

async fn remove(State(h): Sandbox) -> Json<Value> {
    *lock(&h.inner.webhook) = None;
    ok(json!({ "url": null }))
}

impl SandboxHandle {
    /// The URL partner events go to, if one is set.
    pub fn webhook_url(&self) -> Option<String> {
        lock(&self.inner.webhook).clone()
    }

    /// Posts `event` to the partner's webhook, if one is set, without waiting: as UChat
    /// does, once, and whatever the answer.
    pub fn send_webhook(&self, event: Value) {
        let Some(url) = self.webhook_url() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(error) = reqwest::Client::new().post(&url).json(&event).send().await {
                tracing::warn!(%error, "sandbox: posting a partner webhook failed");
            }
        });
    }
}
