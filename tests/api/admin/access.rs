//! Who may use the operator API: the admin token on every route, exactly the documented
//! operations, and the API off without a token.

use std::collections::{BTreeSet, HashSet};

use serde_json::json;

use super::*;

#[tokio::test]
async fn every_route_rejects_a_missing_or_wrong_token() {
    let app = spawn_app().await;
    let operations = operations(&document(&app).await, "1");
    assert!(operations.len() >= 10, "{operations:?}");
    for (method, path) in operations {
        let url = format!("{}{path}", app.address);
        let requests = [
            ("no token", app.client.request(method.clone(), &url)),
            (
                "wrong token",
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth("admin-test-tokeN"),
            ),
            (
                "token prefix",
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth("admin-test"),
            ),
            (
                "other scheme",
                app.client
                    .request(method.clone(), &url)
                    .header("authorization", format!("Basic {ADMIN_TOKEN}")),
            ),
        ];
        for (case, request) in requests {
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{case}: {method} {path}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{method} {path}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body, json!({"error": "missing or wrong admin token"}));
        }
    }
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let documented: HashSet<(Method, String)> = operations(&document, "1").into_iter().collect();
    let paths: BTreeSet<String> = documented.iter().map(|(_, path)| path.clone()).collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            let response = app
                .admin_request(method.clone(), &path)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            if documented.contains(&(method.clone(), path.clone())) {
                // Served: an answer of the handler, which may be "order 1 not found".
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(!text.contains("route not found"), "{method} {path}: {text}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["error"], "method not allowed");
            }
        }
    }
    // An admin path nobody declared is not served, with or without the token.
    let (status, body) = app.admin_get("/admin/undeclared").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "route not found");
}

#[tokio::test]
async fn without_an_admin_token_the_operator_api_is_off_but_webhooks_work() {
    let app = spawn_app_with(|config| config.admin_token = None).await;
    let document = serde_json::to_value(uchat_billing::http::openapi()).unwrap();
    for (method, path) in operations(&document, "1") {
        for token in [None, Some(ADMIN_TOKEN)] {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.address));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body, json!({"error": "admin disabled"}));
        }
    }
    app.post_stripe_events(&sale()).await;
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn public_metrics_need_no_token_but_admin_routes_still_do() {
    let app = spawn_app_with(|config| config.metrics_public = true).await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(
        app.get("/admin/stats").await.status(),
        StatusCode::UNAUTHORIZED
    );
}
