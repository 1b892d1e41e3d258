//! The sandbox: a stateful fake of the UChat Partner API
//! (`docs/uchat-partner-api.md`) for tests and local runs. It speaks the
//! contract only and uses nothing else of the service but its environment reader: its
//! write routes are those of the contract's call kinds ([`CallKind::route`]), the
//! client's own.
//!
//! # Base URL
//! Routes are mounted at the root, so the service's partner base URL is
//! `http://127.0.0.1:PORT` (no `/api` suffix): it then calls e.g.
//! `POST http://127.0.0.1:PORT/partner/workspace/create`.
//!
//! # Behaviour
//! - Every call needs `Authorization: Bearer <token>` (401 otherwise).
//! - Success: 200 `{"status":"ok","data":...}`; the list adds `meta`, and
//!   `/partner/credit-balance` answers `{"credit":"<amount>","status":"ok"}`.
//! - Failure: 4xx/5xx `{"status":"error","message":"..."}`: 404 `Workspace not
//!   found`, 422 for validation (Laravel-style messages naming the field) and for
//!   `no_enough_credit: your partner credit is not enough`.
//! - Bodies must be JSON objects; numbers must be JSON numbers (`"qty": 2`, not
//!   `"2"`), to catch a client that sends the wrong type.
//! - Plans and add-ons are charged to partner credit up front; a refused charge
//!   changes nothing. Changing to the plan a workspace already has is free and
//!   keeps its billing period (so change-plan stays idempotent); removing an
//!   add-on refunds nothing.
//! - Owner emails are compared case-insensitively.
//! - `GET /sandbox/state` (no token, no faults, not logged) shows everything;
//!   `GET /healthz` and `GET /readyz` answer 200 while it runs.
//! - Faults ([`Faults`]) apply to every other request, after it is logged: latency to
//!   all, failures and timeouts to writes (POST, DELETE) only.

mod config;
mod faults;
mod fields;
mod state;
#[cfg(test)]
mod tests;
mod webhooks;

pub use config::{help, VARIABLES};
pub use faults::Faults;
pub use state::{CatalogItem, Client, Flow, Invite, Template, Workspace, ADDONS, PLANS, TEMPLATES};

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::partner::CallKind;

use faults::Outcome;
use fields::Fields;
use state::{Credit, Store};

pub const DEFAULT_TOKEN: &str = "sandbox-token";
pub const DEFAULT_CREDIT: f64 = 1000.0;
/// The first workspace id of a sandbox built by hand (tests): a fixed one, to assert on.
pub const DEFAULT_FIRST_WORKSPACE_ID: u64 = 1000;
const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The partner bearer token the fake accepts.
    pub token: String,
    /// Starting partner credit.
    pub credit: f64,
    pub faults: Faults,
    /// The id of the first workspace created; the next ones count up from it.
    pub first_workspace_id: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            token: DEFAULT_TOKEN.to_string(),
            credit: DEFAULT_CREDIT,
            faults: Faults::default(),
            first_workspace_id: DEFAULT_FIRST_WORKSPACE_ID,
        }
    }
}

/// One request as the fake received it; `path` includes the query string.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw body (empty when there was none).
    pub body: String,
}

impl RecordedRequest {
    /// The body as JSON, or `Null` when empty or not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads the fake's state and changes its faults while it runs.
#[derive(Clone)]
pub struct SandboxHandle {
    inner: Arc<Inner>,
}

struct Inner {
    token: String,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    /// Where partner events are posted (`/partner/set-webhook`).
    webhook: Mutex<Option<String>>,
    /// Set on shutdown so fault sleeps end and graceful shutdown is not held up.
    stopping: watch::Sender<bool>,
}

impl SandboxHandle {
    fn new(config: SandboxConfig) -> Self {
        SandboxHandle {
            inner: Arc::new(Inner {
                token: config.token,
                store: Mutex::new(Store::new(config.credit, config.first_workspace_id)),
                faults: Mutex::new(config.faults),
                webhook: Mutex::new(None),
                stopping: watch::Sender::new(false),
            }),
        }
    }

    /// All workspaces, by id.
    pub fn workspaces(&self) -> Vec<Workspace> {
        self.store().workspaces.values().cloned().collect()
    }

    pub fn workspace(&self, id: u64) -> Option<Workspace> {
        self.store().workspaces.get(&id).cloned()
    }

    /// Every request received except `/sandbox/state`, in order, including those
    /// refused or hit by a fault.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.store().requests.clone()
    }

    pub fn credit(&self) -> f64 {
        self.store().credit.0
    }

    /// Changes a workspace as someone would by hand in UChat: no request, no charge.
    /// `false` if there is no such workspace.
    pub fn edit_workspace(&self, id: u64, change: impl FnOnce(&mut Workspace)) -> bool {
        self.store().workspaces.get_mut(&id).map(change).is_some()
    }

    pub fn set_credit(&self, credit: f64) {
        self.store().credit = Credit(credit);
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    /// Takes effect from the next request.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.inner.faults) = faults;
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    /// Finds the workspace (or 404), lets `change` check, charge and apply, and
    /// answers the workspace. `change` must refuse before it changes anything.
    fn with_workspace(
        &self,
        id: &str,
        change: impl FnOnce(&mut Workspace, &mut Credit) -> Result<(), ApiError>,
    ) -> ApiResult {
        let mut store = self.store();
        let (workspace, credit) = store.find(id)?;
        change(workspace, credit)?;
        Ok(ok(workspace.view()))
    }

    /// Sleeps, cut short by shutdown.
    async fn sleep(&self, duration: Duration) {
        let mut stopping = self.inner.stopping.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fake's routes and a handle on its state. Serve it yourself (tests), or
/// use [`serve`].
pub fn router(config: SandboxConfig) -> (Router, SandboxHandle) {
    let handle = SandboxHandle::new(config);
    let workspace = "/partner/workspace/{id}";
    let calls = CallKind::WRITES
        .into_iter()
        .fold(Router::new(), |router, kind| {
            let route = kind.route().expect("every write has a route");
            router.route(&route.path, call_handler(kind))
        });
    let partner = calls
        .route(workspace, get(get_workspace))
        .route("/partner/workspaces", get(list_workspaces))
        .route("/partner/clients", get(list_clients))
        .route(&format!("{workspace}/list-flows"), get(list_flows))
        .route(&format!("{workspace}/members"), get(members))
        .route("/partner/plans", get(plans))
        .route("/partner/addons", get(addons))
        .route("/partner/templates", get(templates))
        .route("/partner/credit-balance", get(credit_balance))
        .merge(webhooks::routes())
        .fallback(route_not_found)
        // The last layer added runs first: record, then faults, then the token.
        .layer(middleware::from_fn_with_state(
            handle.clone(),
            require_token,
        ))
        .layer(middleware::from_fn_with_state(
            handle.clone(),
            inject_faults,
        ))
        .layer(middleware::from_fn_with_state(
            handle.clone(),
            record_request,
        ))
        .with_state(handle.clone());
    let app = Router::new()
        .route("/sandbox/state", get(snapshot))
        // For container health checks: no token, no faults, not logged.
        .route("/healthz", get(up))
        .route("/readyz", get(up))
        .with_state(handle.clone())
        .merge(partner);
    (app, handle)
}

async fn up() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Serves the fake on `listener` until `shutdown` completes; requests held by
/// a timeout fault are then answered at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (app, handle) = router(config);
    tracing::info!(address = ?listener.local_addr().ok(), "UChat sandbox listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            handle.inner.stopping.send_replace(true);
        })
        .await
}

/// Where each kind of call is served: at its route in the contract.
fn call_handler(kind: CallKind) -> MethodRouter<SandboxHandle> {
    let route = kind.route().expect("every write has a route");
    let method = MethodFilter::try_from(route.method).expect("the contract's methods");
    match kind {
        CallKind::Create => on(method, create_workspace),
        CallKind::CreateForExistingUser => on(method, create_for_existing_user),
        CallKind::ChangePlan => on(method, change_plan),
        CallKind::AddAddon => on(method, add_addon),
        CallKind::RemoveAddon => on(method, remove_addon),
        CallKind::TopupPoints => on(method, topup_points),
        CallKind::DeductPoints => on(method, deduct_points),
        CallKind::Pause => on(method, pause),
        CallKind::Active => on(method, activate),
        CallKind::EnableAutoRenew => on(method, enable_auto_renew),
        CallKind::DisableAutoRenew => on(method, disable_auto_renew),
        CallKind::Delete => on(method, delete_workspace),
        CallKind::InstallTemplate => on(method, install_template),
        CallKind::UpdateExtraBillingInformation => on(method, update_extra_billing_information),
        CallKind::InviteMember => on(method, invite_member),
        CallKind::RemoveMember => on(method, remove_member),
        CallKind::ClaimWorkspace | CallKind::ReuseWorkspace => {
            unreachable!("not a write of the contract")
        }
    }
}

// ---------------------------------------------------------------- errors

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("Unauthenticated.")]
    Unauthenticated,
    #[error("Workspace not found")]
    WorkspaceNotFound,
    #[error("Not found")]
    RouteNotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("no_enough_credit: your partner credit is not enough")]
    NoEnoughCredit,
    #[error("sandbox: injected failure")]
    Injected(StatusCode),
    #[error("sandbox: injected timeout")]
    Timeout,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::WorkspaceNotFound | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) | ApiError::NoEnoughCredit => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Injected(status) => *status,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "status": "error", "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Invalid(message.into())
}

type ApiResult = Result<Json<Value>, ApiError>;
type Sandbox = State<SandboxHandle>;
type WorkspaceId = Path<String>;

fn ok(data: Value) -> Json<Value> {
    Json(json!({ "status": "ok", "data": data }))
}

// ---------------------------------------------------------------- middleware

async fn record_request(
    State(h): Sandbox,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| invalid(format!("Could not read the request body: {e}")))?;
    h.store().requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), ToString::to_string),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

async fn inject_faults(State(h): Sandbox, request: Request, next: Next) -> Response {
    let faults = h.faults();
    // Latency slows every request; failures hit only writes, so a client can always
    // look at the state to find out whether a failed write took effect.
    let reads_only = request.method() == axum::http::Method::GET;
    let (latency, outcome) = {
        let mut rng = rand::thread_rng();
        let outcome = if reads_only {
            Outcome::Answer
        } else {
            faults.draw(&mut rng)
        };
        (faults.latency(&mut rng), outcome)
    };
    h.sleep(latency).await;
    let hold = Duration::from_millis(faults.timeout_ms);
    match outcome {
        Outcome::Answer => next.run(request).await,
        Outcome::Fail => {
            let status = StatusCode::from_u16(faults.fail_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::Injected(status).into_response()
        }
        Outcome::Timeout => {
            h.sleep(hold).await;
            ApiError::Timeout.into_response()
        }
        Outcome::ApplyThenTimeout => {
            let response = next.run(request).await;
            h.sleep(hold).await;
            response
        }
    }
}

async fn require_token(
    State(h): Sandbox,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches = bool::from(given.as_bytes().ct_eq(h.inner.token.as_bytes()));
    if given.is_empty() || !matches {
        return Err(ApiError::Unauthenticated);
    }
    Ok(next.run(request).await)
}

// ---------------------------------------------------------------- handlers

async fn create_workspace(State(h): Sandbox, body: Bytes) -> ApiResult {
    let fields = Fields::parse(&body)?;
    let name = fields.text("name")?;
    let email = fields.email("email")?;
    fields.text("password")?;
    let team_name = fields.text("team_name")?;
    let verification = fields.opt_choice("require_email_verification", &["yes", "no"])?;
    Fields::required("require_email_verification", verification)?;
    let trial_days = fields.trial_days()?;
    let template = fields.opt_template()?;

    let mut store = h.store();
    if store.owned_by(&email).is_some() {
        return Err(invalid("The email has already been taken."));
    }
    Ok(ok(store
        .create(name, email, Some(team_name), trial_days, template)
        .view()))
}

async fn create_for_existing_user(State(h): Sandbox, body: Bytes) -> ApiResult {
    let fields = Fields::parse(&body)?;
    let email = fields.email("email")?;
    let team_name = fields.opt_text("team_name")?;
    let trial_days = fields.trial_days()?;
    let template = fields.opt_template()?;

    let mut store = h.store();
    let owner = store
        .owned_by(&email)
        .ok_or_else(|| invalid("The selected email is invalid."))?;
    let (name, email) = (owner.name.clone(), owner.owner_email.clone());
    Ok(ok(store
        .create(name, email, team_name, trial_days, template)
        .view()))
}

async fn get_workspace(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    h.with_workspace(&id, |_, _| Ok(()))
}

async fn delete_workspace(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    let mut store = h.store();
    let id = store.find(&id)?.0.id;
    let deleted = store.workspaces.remove(&id).expect("found just now");
    h.send_webhook(json!({
        "event_type": "workspace_deleted",
        "workspace_id": id,
        "owner_email": deleted.owner_email,
    }));
    Ok(ok(json!({ "id": id })))
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<String>,
    search: Option<String>,
}

impl ListQuery {
    /// The page asked for, from 1 (1 when absent or not a page number).
    fn page(&self) -> usize {
        self.page
            .as_deref()
            .and_then(|page| page.trim().parse::<usize>().ok())
            .filter(|page| *page >= 1)
            .unwrap_or(1)
    }

    fn search(&self) -> &str {
        self.search.as_deref().unwrap_or("")
    }
}

async fn list_workspaces(State(h): Sandbox, Query(query): Query<ListQuery>) -> Json<Value> {
    Json(h.store().list(query.page(), query.search()))
}

async fn list_clients(State(h): Sandbox, Query(query): Query<ListQuery>) -> Json<Value> {
    Json(h.store().list_clients(query.page(), query.search()))
}

async fn list_flows(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    let mut store = h.store();
    let (workspace, _) = store.find(&id)?;
    Ok(ok(json!(workspace.flows)))
}

async fn members(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    let mut store = h.store();
    let (workspace, _) = store.find(&id)?;
    Ok(ok(workspace.members()))
}

async fn change_plan(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, credit| {
        let fields = Fields::parse(&body)?;
        let plan = fields.item("plan", PLANS)?;
        let auto_renew = fields.opt_choice("auto_renew", &["yes", "no"])?;
        if workspace.plan != plan.id {
            credit.charge(plan.price)?;
            workspace.switch_plan(plan.id);
        }
        if let Some(auto_renew) = auto_renew {
            workspace.auto_renew = auto_renew == "yes";
        }
        Ok(())
    })
}

async fn add_addon(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, credit| {
        let fields = Fields::parse(&body)?;
        let addon = fields.item("addon", ADDONS)?;
        let qty = fields.int("qty", 1)?;
        credit.charge(addon.price * qty as f64)?;
        *workspace.addons.entry(addon.id.to_string()).or_default() += qty;
        Ok(())
    })
}

async fn remove_addon(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        let fields = Fields::parse(&body)?;
        let addon = fields.item("addon", ADDONS)?;
        let qty = fields.int("qty", 1)?;
        let left = workspace.addon(addon.id).checked_sub(qty).ok_or_else(|| {
            invalid(format!(
                "The qty may not be greater than {} (the workspace's {} add-ons).",
                workspace.addon(addon.id),
                addon.id
            ))
        })?;
        match left {
            0 => workspace.addons.remove(addon.id),
            left => workspace.addons.insert(addon.id.to_string(), left),
        };
        Ok(())
    })
}

async fn topup_points(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        let fields = Fields::parse(&body)?;
        let points = fields.positive_number("points")?;
        fields.opt_text("note")?;
        workspace.points += points;
        Ok(())
    })
}

async fn deduct_points(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        let fields = Fields::parse(&body)?;
        let points = fields.positive_number("points")?;
        fields.opt_text("note")?;
        if points > workspace.points {
            return Err(invalid(format!(
                "The points may not be greater than {} (the workspace's balance).",
                workspace.points
            )));
        }
        workspace.points -= points;
        Ok(())
    })
}

async fn pause(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        workspace.is_paused = true;
        Ok(())
    })
}

async fn activate(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        workspace.is_paused = false;
        Ok(())
    })
}

async fn enable_auto_renew(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        workspace.auto_renew = true;
        Ok(())
    })
}

async fn disable_auto_renew(State(h): Sandbox, Path(id): WorkspaceId) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        workspace.auto_renew = false;
        Ok(())
    })
}

async fn install_template(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        let fields = Fields::parse(&body)?;
        let template = Fields::required("template_ns", fields.opt_template()?)?;
        workspace.install(template);
        Ok(())
    })
}

async fn update_extra_billing_information(
    State(h): Sandbox,
    Path(id): WorkspaceId,
    body: Bytes,
) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        let fields = Fields::parse(&body)?;
        // Empty clears it, as a form would.
        workspace.extra_billing_information = fields.opt_text("extra_billing_information")?;
        Ok(())
    })
}

async fn invite_member(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        let fields = Fields::parse(&body)?;
        let email = fields.email("email")?;
        let role = fields.text("role")?;
        if workspace.is_member(&email) {
            return Err(invalid("The email is already a member of this workspace."));
        }
        workspace.invites.push(Invite { email, role });
        Ok(())
    })
}

async fn remove_member(State(h): Sandbox, Path(id): WorkspaceId, body: Bytes) -> ApiResult {
    h.with_workspace(&id, |workspace, _| {
        let fields = Fields::parse(&body)?;
        let email = fields.email("email")?;
        if workspace.owner_email.eq_ignore_ascii_case(&email) {
            return Err(invalid("The workspace owner cannot be removed."));
        }
        let before = workspace.invites.len();
        workspace
            .invites
            .retain(|invite| !invite.email.eq_ignore_ascii_case(&email));
        if workspace.invites.len() == before {
            return Err(invalid("The selected email is invalid."));
        }
        Ok(())
    })
}

async fn plans() -> Json<Value> {
    ok(json!(PLANS))
}

async fn addons() -> Json<Value> {
    ok(json!(ADDONS))
}

async fn templates() -> Json<Value> {
    ok(json!(TEMPLATES))
}

async fn credit_balance(State(h): Sandbox) -> Json<Value> {
    Json(json!({ "credit": format!("{:.2}", h.credit()), "status": "ok" }))
}

async fn snapshot(State(h): Sandbox) -> Json<Value> {
    Json(h.store().snapshot())
}

async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}
