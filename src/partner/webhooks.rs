//! Where UChat posts its partner events: `GET /partner/webhook`, `POST
//! /partner/set-webhook` and `POST /partner/remove-webhook`. Their shapes are a guess
//! (the contract names the endpoints only): the URL travels as `url`.

use serde_json::json;

use super::{lenient, Method, PartnerClient, PartnerError};

impl PartnerClient {
    /// The URL set for the partner's webhooks; `None` when none is.
    pub async fn webhook(&self) -> Result<Option<String>, PartnerError> {
        let reply = self.send(Method::GET, "/partner/webhook", None).await?;
        let data = reply.data();
        let url = ["url", "webhook_url", "webhook"]
            .iter()
            .find_map(|field| data.get(*field))
            .or(Some(data).filter(|data| data.is_string()))
            .and_then(lenient::as_string);
        Ok(url.filter(|url| !url.trim().is_empty()))
    }

    pub async fn set_webhook(&self, url: &str) -> Result<(), PartnerError> {
        let body = json!({ "url": url });
        self.send(Method::POST, "/partner/set-webhook", Some(&body))
            .await
            .map(drop)
    }

    pub async fn remove_webhook(&self) -> Result<(), PartnerError> {
        self.send(Method::POST, "/partner/remove-webhook", None)
            .await
            .map(drop)
    }
}
