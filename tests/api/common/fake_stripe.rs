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
    /// Objects by the path that retrieves them (`/v1/subscriptions/sub_1`), or lists
    /// by path and query. A `POST` is answered from the key `POST /v1/...`.
    pub objects: BTreeMap<String, Value>,
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
    let app = spawn_app_with(move |config| {
        config.stripe_api = Some(StripeApi::new(&base, Secret::new("rk_test_fake")));
        configure(config);
    })
    .await;
    let account = Arc::new(Mutex::new(Account {
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
