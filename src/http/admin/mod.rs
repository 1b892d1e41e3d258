//! The operator API under `/admin`, and `/metrics`: read models over the pipeline's
//! tables, and the few changes operators make (retry, cancel, reprocess).
//!
//! Each route is declared once, with its OpenAPI description (`routes!`), and both the
//! router and the document are built from those declarations, so neither can have a
//! route the other lacks (`clippy.toml` forbids the `OpenApiRouter` methods that would
//! add an undocumented one).

mod backfill;
mod calls;
mod dry_run;
mod events;
mod metrics;
mod orders;
mod page;
mod reconcile;
mod stats;

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::{Json, Router};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::{auth, ApiError, AppState};
use crate::db::Change;
use crate::plan::OrderStatus;

pub(super) use orders::{detail, CallHistory, OrderDetail, TimelineEntry};
pub(super) use page::{Page, PageParams, MAX_LIMIT};
pub(super) use reconcile::reconcile_now;

const PREFIX: &str = "/admin";

/// The security scheme's name; `security(...)` below spells it out, as the macro needs.
const SECURITY_SCHEME: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "uchat-billing operator API",
        description = "Did this customer get their workspace, and if not, why? Orders with \
            their events and partner calls; retry, cancel and reprocess; a dry run of any \
            Stripe event; counts and metrics. Every route needs `Authorization: Bearer \
            <ADMIN_TOKEN>` (`/metrics` not when `METRICS_PUBLIC=true`); without \
            `ADMIN_TOKEN` every route answers 503 \"admin disabled\"."
    ),
    modifiers(&BearerToken),
    security(("admin_token" = [])),
    // OrderStatus describes itself by hand, so it is listed here.
    components(schemas(ErrorBody, OrderStatus)),
    tags(
        (name = "orders", description = "Orders and their timelines"),
        (name = "calls", description = "Partner calls: list, retry, cancel"),
        (name = "events", description = "Stripe events: reprocess, dry run, backfill"),
        (name = "stats", description = "Counts, backlog and Prometheus metrics"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, document: &mut Document) {
        let scheme =
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        document
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(SECURITY_SCHEME, scheme);
    }
}

fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(orders::list))
        .routes(routes!(orders::show))
        .routes(routes!(calls::list))
        .routes(routes!(calls::retry))
        .routes(routes!(calls::cancel))
        .routes(routes!(events::reprocess))
        .routes(routes!(backfill::last_run))
        .routes(routes!(dry_run::dry_run))
        .routes(routes!(stats::show))
        .routes(routes!(reconcile::last, reconcile::run))
        .routes(routes!(openapi_json))
}

fn metrics_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics::scrape))
}

/// The operator routes, each behind its access check, then the check of its query.
pub fn router(state: &AppState) -> Router<AppState> {
    let admin = Router::from(admin_routes())
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(from_fn(known_parameters))
        .layer(from_fn_with_state(state.clone(), auth::require_admin));
    let metrics = Router::from(metrics_routes())
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(from_fn(known_parameters))
        .layer(from_fn_with_state(
            state.clone(),
            auth::require_metrics_access,
        ));
    Router::new().nest(PREFIX, admin).merge(metrics)
}

/// The OpenAPI 3.1 document of the operator routes.
pub fn openapi() -> Document {
    let mut document = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(PREFIX, admin_routes())
        .merge(metrics_routes())
        .into_openapi();
    add_access_errors(&mut document);
    document
}

/// Every route answers 401 without the token and 503 without `ADMIN_TOKEN`: added here
/// rather than on each route, so no route can leave them out.
fn add_access_errors(document: &mut Document) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses.insert("401".into(), error("Missing or wrong admin token").into());
            responses.insert(
                "503".into(),
                error("Admin disabled, or the database is down").into(),
            );
        }
    }
}

static DOCUMENT: LazyLock<Document> = LazyLock::new(openapi);

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of the operator API", body = Object))
)]
async fn openapi_json() -> Json<&'static Document> {
    Json(&DOCUMENT)
}

/// The query parameters each route takes, by method and path, as its OpenAPI
/// description lists them: what the document promises is what a route accepts.
static QUERY_PARAMETERS: LazyLock<HashMap<(String, String), Vec<String>>> = LazyLock::new(|| {
    let mut known = HashMap::new();
    for (path, item) in &DOCUMENT.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let names = operation
                .parameters
                .iter()
                .flatten()
                .filter(|parameter| parameter.parameter_in == ParameterIn::Query)
                .map(|parameter| parameter.name.clone())
                .collect();
            known.insert((method.to_owned(), path.clone()), names);
        }
    }
    known
});

/// Refuses a query parameter the route does not take, naming it: a misspelled filter
/// (`?stauts=dead`) would otherwise be ignored, and the answer look like a real one.
async fn known_parameters(request: Request, next: Next) -> Result<Response, ApiError> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| (request.method().to_string(), path.as_str().to_owned()));
    let known = route.and_then(|route| QUERY_PARAMETERS.get(&route));
    if let Some(known) = known.filter(|_| request.uri().query().is_some()) {
        let given = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        if let Some((unknown, _)) = given.0.iter().find(|(name, _)| !known.contains(name)) {
            let takes = if known.is_empty() {
                "this route takes none".to_owned()
            } else {
                format!("this route takes: {}", known.join(", "))
            };
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter `{unknown}` ({takes})"
            )));
        }
    }
    Ok(next.run(request).await)
}

/// The answer to an operator's change: the changed row, or why there is none.
fn changed<T>(change: Change<T>, what: impl FnOnce() -> String) -> Result<Json<T>, ApiError> {
    made(change, what).map(Json)
}

/// The changed row, or the error that says why there is none: `what` names the row.
pub(super) fn made<T>(change: Change<T>, what: impl FnOnce() -> String) -> Result<T, ApiError> {
    match change {
        Change::Made(row) => Ok(row),
        Change::NotFound => Err(ApiError::NotFound(what())),
        Change::Refused(reason) => Err(ApiError::Conflict(reason)),
    }
}
