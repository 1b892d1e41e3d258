//! The UChat Partner API client (contract: `uchat-partner-api.md`).
//!
//! Every request goes through [`PartnerClient::send`], which adds the headers and the
//! timeout and turns the response into a [`Reply`] or a classified [`PartnerError`].
//! Changes go through [`PartnerClient::execute`], which sends a typed [`Call`] along its
//! kind's route; the reads have a typed function each.

mod call;
mod error;
mod events;
mod lists;
#[cfg(test)]
mod tests;
mod webhooks;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use call::{Body, Call, CallKind, ExistingUserWorkspace, NewWorkspace, Route};
pub use error::{looks_like_existing_account, parse_retry_after, PartnerError, EXCERPT_BYTES};
pub use events::{PartnerEvent, PartnerEventKind};
pub use lists::{Client, Flow, Member};
pub use reqwest::Method;

use crate::secret::Secret;
use crate::USER_AGENT;

const JSON: &str = "application/json";

/// Why a [`PartnerClient`] could not be built (a configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("partner base URL {0:?} is not an absolute http(s) URL without query")]
    BaseUrl(String),
    #[error("partner token is empty or has characters not allowed in an HTTP header")]
    Token,
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// The result of a successful call: any 2xx whose JSON `status` is absent or `"ok"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// The parsed body; `Null` for an empty body.
    pub body: Value,
    /// The first [`EXCERPT_BYTES`] of the raw body, for the attempts table.
    pub raw_excerpt: String,
}

impl Reply {
    /// `body.data` when present, else the whole body.
    pub fn data(&self) -> &Value {
        self.body.get("data").unwrap_or(&self.body)
    }

    /// `data.id` of a create (a number or a numeric string).
    pub fn workspace_id(&self) -> Option<i64> {
        self.data().get("id").and_then(lenient::as_int)
    }

    fn decode<T: DeserializeOwned>(&self, value: &Value, what: &str) -> Result<T, PartnerError> {
        T::deserialize(value).map_err(|e| self.unexpected(format!("{what}: {e}")))
    }

    fn unexpected(&self, message: String) -> PartnerError {
        PartnerError::Rejected {
            status: Some(self.status),
            message: format!("unexpected response, {message}"),
            excerpt: Some(self.raw_excerpt.clone()),
        }
    }
}

/// A client for one partner account. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct PartnerClient {
    http: reqwest::Client,
    /// Without a trailing slash.
    base: String,
    /// `Bearer <token>`, marked sensitive.
    auth: HeaderValue,
    timeout: Duration,
}

impl fmt::Debug for PartnerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerClient")
            .field("base", &self.base)
            .field("token", &"***")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PartnerClient {
    /// `base_url` is the API root, e.g. `https://www.uchat.com.au/api`; `timeout`
    /// bounds each request from connect to the last byte of the response.
    pub fn new(base_url: &str, token: Secret, timeout: Duration) -> Result<Self, BuildError> {
        let base = base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(base).map_err(|_| BuildError::BaseUrl(base.into()))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(BuildError::BaseUrl(base.into()));
        }
        if token.expose().trim().is_empty() {
            return Err(BuildError::Token);
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| BuildError::Token)?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            // A redirected POST would turn into a GET; a redirect is a misconfiguration.
            .redirect(reqwest::redirect::Policy::none())
            // So that a connect failure is told apart from a timeout after sending.
            .connect_timeout(timeout)
            .build()
            .map_err(BuildError::Http)?;
        Ok(Self {
            http,
            base: base.into(),
            auth,
            timeout,
        })
    }

    /// Sends one request to `path` (relative to the base URL, may carry a query) and
    /// classifies the answer. Bodies are never logged (a create carries a password).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, PartnerError> {
        self.send_with_query(method, path, &[], body).await
    }

    async fn send_with_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, PartnerError> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let mut request = self
            .http
            .request(method.clone(), url)
            .timeout(self.timeout)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, JSON)
            .header(CONTENT_TYPE, JSON)
            .query(query);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }

        let started = Instant::now();
        let result = async {
            let response = request
                .send()
                .await
                .map_err(|e| PartnerError::transport(&e, None))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let bytes = response
                .bytes()
                .await
                .map_err(|e| PartnerError::transport(&e, Some(status.as_u16())))?;
            error::classify(status, retry_after, &String::from_utf8_lossy(&bytes))
        }
        .await;

        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(reply) => {
                tracing::debug!(%method, path, status = reply.status, elapsed_ms, "partner call")
            }
            Err(e) => {
                tracing::debug!(%method, path, status = e.status(), elapsed_ms, error = %e, "partner call failed")
            }
        }
        result
    }

    /// Sends a call along its kind's route. `workspace_id` is required by every kind
    /// but the two creates (which ignore it).
    pub async fn execute(
        &self,
        call: &Call,
        workspace_id: Option<i64>,
    ) -> Result<Reply, PartnerError> {
        let kind = call.kind();
        let Some(route) = kind.route() else {
            return Err(PartnerError::invalid(format!(
                "partner call \"{kind}\" is not one request: delivery makes it"
            )));
        };
        let path = match workspace_id {
            _ if !route.path.contains("{id}") => route.path,
            Some(id) => route.path.replace("{id}", &id.to_string()),
            None => {
                return Err(PartnerError::invalid(format!(
                    "partner call \"{kind}\" needs a workspace id"
                )))
            }
        };
        let body = (route.body == Body::Json).then(|| call.body());
        self.send(route.method, &path, body.as_ref()).await
    }

    pub async fn get_workspace(&self, id: i64) -> Result<WorkspaceInfo, PartnerError> {
        let reply = self
            .send(Method::GET, &format!("/partner/workspace/{id}"), None)
            .await?;
        reply.decode(reply.data(), "workspace")
    }

    /// Whether UChat shows `email` as the owner of workspace `id` (compared
    /// case-insensitively): the check before a workspace the buyer named is used, made by
    /// delivery when it claims one and by the storefront before a checkout names one.
    pub async fn ownership(&self, id: i64, email: &str) -> Result<Ownership, PartnerError> {
        match self.get_workspace(id).await {
            Ok(info) if info.owner_email.trim().eq_ignore_ascii_case(email.trim()) => {
                Ok(Ownership::Owner)
            }
            Ok(_) => Ok(Ownership::OtherOwner),
            Err(error) if error.status() == Some(404) => Ok(Ownership::NoSuchWorkspace),
            Err(error) => Err(error),
        }
    }

    /// One page (from 1) of the partner's workspaces, optionally filtered by `search`.
    pub async fn list_workspaces(
        &self,
        page: u32,
        search: Option<&str>,
    ) -> Result<Page<WorkspaceInfo>, PartnerError> {
        self.page("/partner/workspaces", page, search).await
    }

    /// One page of a list endpoint (`?page=&search=`).
    async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        page: u32,
        search: Option<&str>,
    ) -> Result<Page<T>, PartnerError> {
        let mut query = vec![("page", page.to_string())];
        query.extend(search.map(|s| ("search", s.to_string())));
        let reply = self
            .send_with_query(Method::GET, path, &query, None)
            .await?;
        reply.decode(&reply.body, path)
    }

    pub async fn plans(&self) -> Result<Vec<CatalogItem>, PartnerError> {
        self.catalog("/partner/plans").await
    }

    pub async fn addons(&self) -> Result<Vec<CatalogItem>, PartnerError> {
        self.catalog("/partner/addons").await
    }

    async fn catalog(&self, path: &str) -> Result<Vec<CatalogItem>, PartnerError> {
        let reply = self.send(Method::GET, path, None).await?;
        reply.decode(reply.data(), path)
    }

    /// The partner's prepaid credit (`{"credit":"<amount>","status":"ok"}`).
    pub async fn credit_balance(&self) -> Result<f64, PartnerError> {
        let reply = self
            .send(Method::GET, "/partner/credit-balance", None)
            .await?;
        let credit = reply
            .body
            .get("credit")
            .or_else(|| reply.data().get("credit"));
        credit
            .and_then(lenient::as_float)
            .ok_or_else(|| reply.unexpected("no numeric credit".into()))
    }
}

/// What UChat says of a buyer and the workspace they named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Owner,
    OtherOwner,
    NoSuchWorkspace,
}

/// A workspace as `GET /partner/workspace/{id}` and the list describe it. Lenient:
/// missing or null fields take their default, numbers may come as strings, flags as
/// `0`/`1`/`"0"`/`"1"`/booleans; unknown fields are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkspaceInfo {
    #[serde(deserialize_with = "lenient::int")]
    pub id: i64,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub plan: String,
    #[serde(deserialize_with = "lenient::flag")]
    pub is_paused: bool,
    #[serde(deserialize_with = "lenient::flag")]
    pub auto_renew: bool,
    #[serde(deserialize_with = "lenient::string")]
    pub owner_email: String,
    /// Where UChat shows it (the contract does not list it).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub team_name: Option<String>,
    /// Where UChat shows it (the contract does not list it); read with
    /// [`WorkspaceInfo::created`].
    #[serde(deserialize_with = "lenient::opt_string")]
    pub created_at: Option<String>,
    #[serde(deserialize_with = "lenient::float")]
    pub points: f64,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub billing_start_at: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub billing_end_at: Option<String>,
    #[serde(deserialize_with = "lenient::int")]
    pub addon_bot: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub addon_member: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub addon_bot_user: i64,
    /// Every other field, e.g. `addon_lists`, `addon_bot_user_large`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WorkspaceInfo {
    /// When UChat made the workspace, if `created_at` is a time with its offset
    /// (`2024-05-01T09:30:00.000000Z`, as Laravel writes it). A time without one is taken
    /// as unknown: read in the wrong zone it would be hours off.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        let created_at = self.created_at.as_deref()?.trim();
        let created = DateTime::parse_from_rfc3339(created_at).ok()?;
        Some(created.with_timezone(&Utc))
    }

    /// The quantity of an add-on by id (`"bot_user"`) or field name (`"addon_bot_user"`);
    /// 0 when absent.
    pub fn addon_qty(&self, addon: &str) -> i64 {
        let addon = addon.strip_prefix("addon_").unwrap_or(addon);
        match addon {
            "bot" => self.addon_bot,
            "member" => self.addon_member,
            "bot_user" => self.addon_bot_user,
            other => self
                .extra
                .get(&format!("addon_{other}"))
                .and_then(lenient::as_int)
                .unwrap_or(0),
        }
    }
}

/// A page of a list endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub meta: PageMeta,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PageMeta {
    #[serde(deserialize_with = "lenient::int")]
    pub current_page: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub last_page: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub total: i64,
    /// Null on an empty page.
    #[serde(deserialize_with = "lenient::opt_int")]
    pub from: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_int")]
    pub to: Option<i64>,
}

/// A plan, an add-on or a template of `/partner/plans`, `/partner/addons` and
/// `/partner/templates`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CatalogItem {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::float")]
    pub price: f64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Deserializers that accept the shapes PHP APIs produce: numbers as strings, flags as
/// 0/1, null for "nothing". A value of the wrong shape is still an error.
mod lenient {
    use serde::de::{Deserializer, Error};
    use serde::Deserialize;
    use serde_json::Value;

    fn read<'de, D, T>(d: D, parse: fn(&Value) -> Option<T>, what: &str) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Default,
    {
        let value = Value::deserialize(d)?;
        if value.is_null() {
            return Ok(T::default());
        }
        parse(&value).ok_or_else(|| D::Error::custom(format!("expected {what}, got {value}")))
    }

    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        read(d, as_int, "an integer")
    }

    pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        read(d, |v| as_int(v).map(Some), "an integer")
    }

    pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        read(d, as_float, "a number")
    }

    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        read(d, as_flag, "a flag")
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, as_string, "a string")
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, |v| as_string(v).map(Some), "a string")
    }

    /// `42`, `42.0`, `"42"`, `" 42 "`, `"42.0"`.
    pub fn as_int(value: &Value) -> Option<i64> {
        let whole = |f: f64| (f.fract() == 0.0 && f.abs() < 9e15).then_some(f as i64);
        match value {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(whole)),
            Value::String(s) => {
                let s = s.trim();
                s.parse().ok().or_else(|| s.parse().ok().and_then(whole))
            }
            _ => None,
        }
    }

    pub fn as_float(value: &Value) -> Option<f64> {
        match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            _ => None,
        }
    }

    pub fn as_flag(value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            Value::Number(_) => as_int(value).map(|n| n != 0),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Some(true),
                "0" | "false" | "no" | "off" | "" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn as_string(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}
