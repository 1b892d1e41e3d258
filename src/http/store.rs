//! `/store`: the storefront's public routes (README, "Your storefront"). Browser-facing:
//! CORS for the partner's origins, and a per-address rate limit on what creates objects
//! at Stripe.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::extract::Query;
use super::{auth, ApiError, AppState};
use crate::partner::{Ownership, PartnerClient};
use crate::plan::Catalog;
use crate::store::checkout::{self, CheckoutForm, CheckoutRequest};
use crate::store::status::{self, BuyerStatus};
use crate::store::{PriceCache, StoreSettings};
use crate::stripe::api::{StripeApi, StripeApiError, StripeId};

/// The longest `?wait=` a status request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Client addresses the rate limiter tracks before it drops those at full allowance.
const FORGET_ABOVE: usize = 10_000;
/// How often a waiting status request looks again.
const WAIT_STEP: Duration = Duration::from_millis(250);

/// What the storefront's handlers share.
#[derive(Clone)]
pub struct Storefront {
    pub settings: StoreSettings,
    pub catalog: Arc<Catalog>,
    pub prices: PriceCache,
    pub stripe: StripeApi,
    /// For the owner check of a named workspace; `None` without `UCHAT_API_TOKEN`.
    pub partner: Option<PartnerClient>,
    /// Reads of order status: the admin API's pool, with its short statement timeout.
    pub db: PgPool,
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Storefront {
    pub fn new(
        settings: StoreSettings,
        catalog: Arc<Catalog>,
        stripe: StripeApi,
        partner: Option<PartnerClient>,
        db: PgPool,
    ) -> Storefront {
        let per_minute = NonZeroU32::new(settings.rate_per_minute).unwrap_or(NonZeroU32::MIN);
        Storefront {
            prices: PriceCache::new(stripe.clone(), catalog.clone(), settings.catalog_refresh),
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            settings,
            catalog,
            stripe,
            partner,
            db,
        }
    }
}

pub fn router(state: &AppState) -> Router<AppState> {
    let Some(store) = &state.store else {
        return Router::new();
    };
    let limited = Router::new()
        .route("/store/checkout", post(create_checkout))
        .route("/store/portal", post(create_portal))
        .route_layer(from_fn_with_state(store.clone(), rate_limited));
    Router::new()
        .route("/store/catalog", get(catalog))
        .route("/store/status/{session}", get(order_status))
        .merge(limited)
        .route(
            "/store/",
            get(|| async { Html(include_str!("../../examples/storefront/index.html")) }),
        )
        .route(
            "/store/thanks.html",
            get(|| async { Html(include_str!("../../examples/storefront/thanks.html")) }),
        )
}

/// CORS for the partner's origins on `/store` routes only. A layer around the whole
/// router: preflights are answered before routing, whose 405 would refuse them.
pub fn cors(state: &AppState) -> Option<CorsLayer> {
    let store = state.store.as_ref()?;
    let origins: Vec<HeaderValue> = store
        .settings
        .allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    let allowed = AllowOrigin::predicate(move |origin, request| {
        request.uri.path().starts_with("/store/") && origins.contains(origin)
    });
    Some(
        CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Refuses with 429 a client address that created too many sessions lately.
async fn rate_limited(
    State(store): State<Storefront>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(address) = address {
        // Addresses whose allowance is whole again are forgotten, so the map stays small.
        if store.limiter.len() > FORGET_ABOVE {
            store.limiter.retain_recent();
        }
        if let Err(not_until) = store.limiter.check_key(&address) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            tracing::info!(%address, "store rate limit reached");
            return Err(ApiError::TooManyRequests(wait.as_secs().max(1)));
        }
    }
    Ok(next.run(request).await)
}

fn storefront(state: &AppState) -> &Storefront {
    state
        .store
        .as_ref()
        .expect("store routes exist only with a storefront")
}

#[derive(Deserialize)]
struct CatalogQuery {
    #[serde(default)]
    refresh: bool,
}

/// The public prices; `?refresh=true` (admin token) reads them from Stripe now.
async fn catalog(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CatalogQuery>,
) -> Result<Response, ApiError> {
    let store = storefront(&state);
    let list = if query.refresh {
        auth::authorize(&state, &headers)?;
        store.prices.refresh().await
    } else {
        store.prices.prices().await
    }
    .map_err(price_list_failed)?;
    let cache = [(header::CACHE_CONTROL, "public, max-age=60")];
    Ok((cache, Json(list)).into_response())
}

/// JSON or an HTML form: which one the body is.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn parse<J: DeserializeOwned, F: DeserializeOwned + Into<J>>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<J, ApiError> {
    let parsed = if is_form(headers) {
        serde_urlencoded::from_bytes::<F>(body)
            .map(Into::into)
            .map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<J>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|reason| ApiError::BadRequest(format!("invalid request: {reason}")))
}

/// JSON `{url, id}`, or a 303 to the page for a form post.
fn hosted(headers: &HeaderMap, url: String, id: String) -> Response {
    if is_form(headers) {
        Redirect::to(&url).into_response()
    } else {
        Json(json!({ "url": url, "id": id })).into_response()
    }
}

async fn create_checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let store = storefront(&state);
    let request: CheckoutRequest = parse::<CheckoutRequest, CheckoutForm>(&headers, &body)?;
    let prices = store.prices.prices().await.map_err(price_list_failed)?;
    let checkout = checkout::check(&request, &store.catalog, &prices.prices, &store.settings)
        .map_err(ApiError::BadRequest)?;
    if let (Some(id), true) = (checkout.workspace_id, store.catalog.workspace.check_owner) {
        let email = checkout
            .session
            .customer_email
            .as_deref()
            .unwrap_or_default();
        check_owner(store, id, email).await?;
    }
    let key = idempotency_key("checkout", &headers, &body);
    let session = store
        .stripe
        .create_checkout(&checkout.session, &key)
        .await
        .map_err(stripe_failed)?;
    tracing::info!(session = %session.id, "checkout session created");
    Ok(hosted(&headers, session.url, session.id))
}

/// Refuses a workspace UChat does not show as the buyer's, before Stripe is asked.
async fn check_owner(store: &Storefront, id: i64, email: &str) -> Result<(), ApiError> {
    let unavailable =
        || ApiError::Upstream("workspaces cannot be checked right now; try again shortly".into());
    let partner = store.partner.as_ref().ok_or_else(unavailable)?;
    match partner.ownership(id, email).await {
        Ok(Ownership::Owner) => Ok(()),
        Ok(Ownership::OtherOwner) => Err(ApiError::BadRequest(format!(
            "workspace {id} is not registered to {email}: use the email you log in to that \
             workspace with, or leave the workspace id empty for a new workspace"
        ))),
        Ok(Ownership::NoSuchWorkspace) => Err(ApiError::BadRequest(format!(
            "there is no workspace {id}: check the id in your UChat settings, or leave it \
             empty for a new workspace"
        ))),
        Err(error) => {
            tracing::warn!(%error, workspace_id = id, "owner check at checkout failed");
            Err(unavailable())
        }
    }
}

/// The client's `Idempotency-Key` with what it asked for: a retried request gets the
/// session of its first try. Without one, every request is new.
fn idempotency_key(kind: &str, headers: &HeaderMap, body: &[u8]) -> String {
    let client_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 200);
    match client_key {
        Some(client_key) => {
            let digest = Sha256::new()
                .chain_update(client_key)
                .chain_update([0])
                .chain_update(body)
                .finalize();
            format!("store-{kind}-{}", hex::encode(digest))
        }
        None => format!("store-{kind}-{}", uuid::Uuid::new_v4()),
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    /// Seconds to wait for a state other than `since` (or, without it, than the first
    /// one seen), at most [`MAX_WAIT`].
    wait: Option<u64>,
    since: Option<status::State>,
}

async fn order_status(
    State(state): State<AppState>,
    Path(session): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<Json<BuyerStatus>, ApiError> {
    let store = storefront(&state);
    let session = checkout_session_id(&session)?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let login = store.settings.login_url.as_str();
    let mut since = query.since;
    loop {
        let progress = crate::db::store::progress(&store.db, session.as_str()).await?;
        let answer = status::buyer_status(&progress, login);
        let known = *since.get_or_insert(answer.state);
        if answer.state != known
            || answer.state.is_settled()
            || tokio::time::Instant::now() + WAIT_STEP > deadline
        {
            return Ok(Json(answer));
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

#[derive(Deserialize)]
struct PortalRequest {
    session_id: String,
}

async fn create_portal(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let store = storefront(&state);
    let request: PortalRequest = parse::<PortalRequest, PortalRequest>(&headers, &body)?;
    let session = checkout_session_id(&request.session_id)?;
    let customer = store
        .stripe
        .checkout_customer(session.as_str())
        .await
        .map_err(stripe_failed)?
        .ok_or_else(|| ApiError::BadRequest("this purchase has no customer account yet".into()))?;
    let key = idempotency_key("portal", &headers, &body);
    let portal = store
        .stripe
        .create_portal(&customer, store.settings.cancel_url.as_str(), &key)
        .await
        .map_err(stripe_failed)?;
    Ok(hosted(&headers, portal.url, portal.id))
}

fn checkout_session_id(id: &str) -> Result<StripeId, ApiError> {
    StripeId::parse(id)
        .ok()
        .filter(|id| id.as_str().starts_with("cs_"))
        .ok_or_else(|| ApiError::BadRequest("not a checkout session id".into()))
}

/// The public prices could not be read: a price Stripe does not know is the catalog's
/// fault, not the buyer's, so the log says what to fix and the buyer hears nothing of it.
fn price_list_failed(error: StripeApiError) -> ApiError {
    tracing::error!(%error, "the store's price list could not be read from Stripe; check the catalog's public prices (uchat-billing check-catalog) and STRIPE_API_KEY");
    ApiError::Upstream("the price list is unavailable; try again shortly".into())
}

/// Stripe's details go to the log; the buyer hears what they can do.
fn stripe_failed(error: StripeApiError) -> ApiError {
    tracing::warn!(%error, "store request to Stripe failed");
    match error {
        StripeApiError::Refused(_) if error.to_string().contains("HTTP 404") => {
            ApiError::NotFound("purchase".into())
        }
        _ => ApiError::Upstream("the payment provider is unavailable; try again shortly".into()),
    }
}
