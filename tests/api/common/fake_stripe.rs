//! A fake Stripe API on loopback that answers from the account's latest objects, as
//! Stripe does, and remembers every request it was sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::PgPool;
use uchat_billing::secret::Secret;
use uchat_billing::stripe::api::StripeApi;

use super::{spawn_app_with, TestApp};

/// What the fake Stripe knows and saw.
#[derive(Default)]
pub struct Account {
    /// The fake's URL, for a `StripeApi` or `STRIPE_API_BASE` of the test's own.
    pub base: String,
    /// Objects by the path that retrieves them (`/v1/subscriptions/sub_1`), or lists
    /// by path and query. A `POST` is answered from the key `POST /v1/...`.
    pub objects: BTreeMap<String, Value>,
    /// The account's events, which `GET /v1/events` lists as Stripe does: newest first,
    /// filtered by `types[]` and `created[gte]`, paged by `limit` and `starting_after`.
    pub events: Vec<Value>,
    /// Every request, path and query as received (a `POST` as `POST /v1/...`).
    pub requests: Vec<String>,
    /// The form bodies of `POST` requests, with their path, in order.
    pub posted: Vec<(String, String)>,
    /// Sessions of the app's database that were inside a transaction while a request
    /// was answered.
    pub in_transaction: Vec<i64>,
}

#[derive(Clone)]
struct FakeStripe {
    account: Arc<Mutex<Account>>,
    db: PgPool,
    database: String,
}

async fn answer(
    State(fake): State<FakeStripe>,
    method: Method,
    uri: Uri,
    body: String,
) -> impl IntoResponse {
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = $1 AND state IN ('idle in transaction', 'active') AND xact_start IS NOT NULL
           AND pid <> pg_backend_pid() AND query NOT LIKE '%pg_stat_activity%'",
    )
    .bind(&fake.database)
    .fetch_one(&fake.db)
    .await
    .unwrap();
    let mut account = fake.account.lock().unwrap();
    let path = urlencoding_free(&uri.to_string());
    let key = if method == Method::POST {
        account.posted.push((uri.path().to_string(), body));
        format!("POST {path}")
    } else {
        path
    };
    account.requests.push(key.clone());
    account.in_transaction.push(open);
    if method == Method::GET && uri.path() == "/v1/events" {
        return (StatusCode::OK, Json(list_events(&account.events, &uri)));
    }
    match account.objects.get(&key) {
        Some(object) => (StatusCode::OK, Json(object.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": {"type": "invalid_request_error", "message": format!("No such object: {key}")}}),
            ),
        ),
    }
}

/// A page of `events` as Stripe's event list answers `uri`'s query.
fn list_events(events: &[Value], uri: &Uri) -> Value {
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://stripe{uri}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let types: Vec<&str> = query
        .iter()
        .filter(|(key, _)| key.starts_with("types["))
        .map(|(_, value)| value.as_str())
        .collect();
    let since: i64 = param("created[gte]").map_or(0, |v| v.parse().unwrap());
    let limit: usize = param("limit").map_or(10, |v| v.parse().unwrap());
    let mut listed: Vec<&Value> = events
        .iter()
        .filter(|event| types.is_empty() || types.contains(&event["type"].as_str().unwrap()))
        .filter(|event| event["created"].as_i64().unwrap() >= since)
        .collect();
    listed.sort_by_key(|event| std::cmp::Reverse(event["created"].as_i64().unwrap()));
    if let Some(after) = param("starting_after") {
        let position = listed
            .iter()
            .position(|event| event["id"] == after.as_str());
        listed.drain(..=position.expect("starting_after names a listed event"));
    }
    let has_more = listed.len() > limit;
    listed.truncate(limit);
    json!({"object": "list", "url": "/v1/events", "has_more": has_more, "data": listed})
}

/// Path and query with the brackets of Stripe's list filters decoded, as keys are written.
fn urlencoding_free(uri: &str) -> String {
    uri.replace("%5B", "[").replace("%5D", "]")
}

/// The app with a fake Stripe whose objects are `objects`.
pub async fn spawn_with_stripe(objects: &[(&str, Value)]) -> (TestApp, Arc<Mutex<Account>>) {
    spawn_with_stripe_and(objects, |_| {}).await
}

/// Like [`spawn_with_stripe`], with the configuration further changed by `configure`.
pub async fn spawn_with_stripe_and(
    objects: &[(&str, Value)],
    configure: impl FnOnce(&mut uchat_billing::config::Config),
) -> (TestApp, Arc<Mutex<Account>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = spawn_app_with({
        let base = base.clone();
        move |config| {
            config.stripe_api = Some(StripeApi::new(&base, Secret::new("rk_test_fake")));
            configure(config);
        }
    })
    .await;
    let account = Arc::new(Mutex::new(Account {
        base,
        objects: objects
            .iter()
            .map(|(key, object)| (key.to_string(), object.clone()))
            .collect(),
        ..Account::default()
    }));
    let fake = FakeStripe {
        account: account.clone(),
        db: app.db.clone(),
        database: app.database.as_ref().unwrap().name.clone(),
    };
    let router = Router::new().fallback(answer).with_state(fake);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (app, account)
}
