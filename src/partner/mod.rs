//! The UChat Partner API client (contract: `uchat-partner-api.md`).
//!
//! Every call goes through [`PartnerClient::send`], which adds the headers and the
//! timeout and turns the response into a [`Reply`] or a classified [`PartnerError`].
//! Mutations go through [`PartnerClient::execute`], whose `route` table is the single
//! place that maps a call kind (as stored in `partner_calls.kind`) to method and path;
//! the typed functions only build the JSON body and read the answer.

mod error;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Map, Value};

pub use error::{looks_like_existing_account, parse_retry_after, PartnerError, EXCERPT_BYTES};
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

/// How a call kind carries its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Json,
    /// No body is sent, whatever the stored body says.
    Empty,
}

/// The call kinds of `partner_calls.kind`: method, path template (`{id}` is the
/// workspace id) and body, as the contract lists them.
fn route(kind: &str) -> Option<(Method, &'static str, Body)> {
    use Body::*;
    Some(match kind {
        "create" => (Method::POST, "/partner/workspace/create", Json),
        "create-for-existing-user" => (
            Method::POST,
            "/partner/workspace/create-for-existing-user",
            Json,
        ),
        "change-plan" => (Method::POST, "/partner/workspace/{id}/change-plan", Json),
        "add-addon" => (Method::POST, "/partner/workspace/{id}/add-addon", Json),
        "remove-addon" => (Method::DELETE, "/partner/workspace/{id}/remove-addon", Json),
        "topup-points" => (Method::POST, "/partner/workspace/{id}/topup-points", Json),
        "deduct-points" => (
            Method::DELETE,
            "/partner/workspace/{id}/deduct-points",
            Json,
        ),
        "pause" => (Method::POST, "/partner/workspace/{id}/pause", Empty),
        "active" => (Method::POST, "/partner/workspace/{id}/active", Empty),
        "enable-auto-renew" => (
            Method::POST,
            "/partner/workspace/{id}/enable-auto-renew",
            Empty,
        ),
        "disable-auto-renew" => (
            Method::POST,
            "/partner/workspace/{id}/disable-auto-renew",
            Empty,
        ),
        "delete" => (Method::DELETE, "/partner/workspace/{id}", Empty),
        _ => return None,
    })
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

    /// Runs a stored call: `kind` is one of the kinds of the `route` table, `workspace_id` is
    /// required by every kind but the two creates (which ignore it), and `body` is the
    /// contract's JSON body (ignored by the kinds that send none).
    pub async fn execute(
        &self,
        kind: &str,
        workspace_id: Option<i64>,
        body: &Value,
    ) -> Result<Reply, PartnerError> {
        let (method, template, body_kind) = route(kind)
            .ok_or_else(|| PartnerError::invalid(format!("unknown partner call kind {kind:?}")))?;
        let path = match workspace_id {
            _ if !template.contains("{id}") => template.to_string(),
            Some(id) => template.replace("{id}", &id.to_string()),
            None => {
                return Err(PartnerError::invalid(format!(
                    "partner call {kind:?} needs a workspace id"
                )))
            }
        };
        let body = (body_kind == Body::Json).then_some(body);
        self.send(method, &path, body).await
    }

    /// Creates a workspace and its owner; returns the new workspace id.
    pub async fn create_workspace(&self, new: &NewWorkspace) -> Result<i64, PartnerError> {
        let reply = self.execute("create", None, &new.body()).await?;
        created_id(&reply)
    }

    /// Creates a workspace owned by an existing UChat user; returns its id.
    pub async fn create_for_existing_user(
        &self,
        new: &ExistingUserWorkspace,
    ) -> Result<i64, PartnerError> {
        let reply = self
            .execute("create-for-existing-user", None, &new.body())
            .await?;
        created_id(&reply)
    }

    pub async fn get_workspace(&self, id: i64) -> Result<WorkspaceInfo, PartnerError> {
        let reply = self
            .send(Method::GET, &format!("/partner/workspace/{id}"), None)
            .await?;
        reply.decode(reply.data(), "workspace")
    }

    /// One page (from 1) of the partner's workspaces, optionally filtered by `search`.
    pub async fn list_workspaces(
        &self,
        page: u32,
        search: Option<&str>,
    ) -> Result<Page<WorkspaceInfo>, PartnerError> {
        let mut query = vec![("page", page.to_string())];
        query.extend(search.map(|s| ("search", s.to_string())));
        let reply = self
            .send_with_query(Method::GET, "/partner/workspaces", &query, None)
            .await?;
        reply.decode(&reply.body, "workspace list")
    }

    /// `plan: "free"` downgrades.
    pub async fn change_plan(
        &self,
        id: i64,
        plan: &str,
        auto_renew: bool,
    ) -> Result<Reply, PartnerError> {
        let body = json!({ "plan": plan, "auto_renew": yes_no(auto_renew) });
        self.execute("change-plan", Some(id), &body).await
    }

    pub async fn add_addon(&self, id: i64, addon: &str, qty: u32) -> Result<Reply, PartnerError> {
        self.execute("add-addon", Some(id), &addon_body(addon, qty))
            .await
    }

    pub async fn remove_addon(
        &self,
        id: i64,
        addon: &str,
        qty: u32,
    ) -> Result<Reply, PartnerError> {
        self.execute("remove-addon", Some(id), &addon_body(addon, qty))
            .await
    }

    pub async fn topup_points(
        &self,
        id: i64,
        points: f64,
        note: &str,
    ) -> Result<Reply, PartnerError> {
        self.execute("topup-points", Some(id), &points_body(points, note))
            .await
    }

    pub async fn deduct_points(
        &self,
        id: i64,
        points: f64,
        note: &str,
    ) -> Result<Reply, PartnerError> {
        self.execute("deduct-points", Some(id), &points_body(points, note))
            .await
    }

    pub async fn pause(&self, id: i64) -> Result<Reply, PartnerError> {
        self.execute("pause", Some(id), &Value::Null).await
    }

    /// Resumes a paused workspace.
    pub async fn active(&self, id: i64) -> Result<Reply, PartnerError> {
        self.execute("active", Some(id), &Value::Null).await
    }

    pub async fn enable_auto_renew(&self, id: i64) -> Result<Reply, PartnerError> {
        self.execute("enable-auto-renew", Some(id), &Value::Null)
            .await
    }

    pub async fn disable_auto_renew(&self, id: i64) -> Result<Reply, PartnerError> {
        self.execute("disable-auto-renew", Some(id), &Value::Null)
            .await
    }

    pub async fn delete_workspace(&self, id: i64) -> Result<Reply, PartnerError> {
        self.execute("delete", Some(id), &Value::Null).await
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

fn created_id(reply: &Reply) -> Result<i64, PartnerError> {
    reply.workspace_id().ok_or_else(|| {
        reply.unexpected(
            "no data.id: the workspace may exist, check the list by email before repeating".into(),
        )
    })
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

fn addon_body(addon: &str, qty: u32) -> Value {
    json!({ "addon": addon, "qty": qty })
}

/// Whole points go out as integers (`10`, not `10.0`).
fn points_body(points: f64, note: &str) -> Value {
    let points = if points.fract() == 0.0 && points.abs() < 9e15 {
        Value::from(points as i64)
    } else {
        Value::from(points)
    };
    json!({ "points": points, "note": note })
}

/// The body of a `create` call.
#[derive(Clone, Serialize)]
pub struct NewWorkspace {
    pub name: String,
    pub email: String,
    pub password: String,
    pub team_name: String,
    #[serde(serialize_with = "serialize_yes_no")]
    pub require_email_verification: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_ns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
}

impl NewWorkspace {
    /// The JSON body, as sent and as stored in `partner_calls.body`.
    pub fn body(&self) -> Value {
        serde_json::to_value(self).expect("strings and numbers always serialize")
    }
}

impl fmt::Debug for NewWorkspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWorkspace")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("password", &"***")
            .field("team_name", &self.team_name)
            .field(
                "require_email_verification",
                &self.require_email_verification,
            )
            .field("template_ns", &self.template_ns)
            .field("trial_days", &self.trial_days)
            .finish()
    }
}

/// The body of a `create-for-existing-user` call.
#[derive(Debug, Clone, Serialize)]
pub struct ExistingUserWorkspace {
    pub email: String,
    pub team_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_ns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
}

impl ExistingUserWorkspace {
    pub fn body(&self) -> Value {
        serde_json::to_value(self).expect("strings and numbers always serialize")
    }
}

fn serialize_yes_no<S: Serializer>(flag: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(yes_no(*flag))
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

/// A plan or an add-on of `/partner/plans` and `/partner/addons`.
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
