//! Who gets in: the admin token once, then the session cookie; forms only with their
//! CSRF token; nothing at all without `ADMIN_TOKEN`.

use serde_json::json;

use super::*;

/// An order with one dead call, as delivery leaves it.
async fn dead_call(app: &TestApp) -> (i64, i64) {
    app.expect_dead_calls();
    let order = app
        .queue_calls(Some(42), "ada@example.com", &[("pause", json!(null))])
        .await;
    let call: i64 = sqlx::query_scalar(
        "UPDATE partner_calls SET status = 'dead', last_error = 'HTTP 422' WHERE order_id = $1 RETURNING id",
    )
    .bind(order)
    .fetch_one(&app.db)
    .await
    .unwrap();
    (order, call)
}

async fn call_status(app: &TestApp, call: i64) -> String {
    sqlx::query_scalar("SELECT status FROM partner_calls WHERE id = $1")
        .bind(call)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_console_is_off_without_an_admin_token() {
    let app = spawn_app_with(|config| config.admin_token = None).await;
    let operator = Operator::new(&app);
    for path in ["/console", "/console/sign-in", "/console/orders"] {
        assert_eq!(
            operator.get(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let answer = operator.sign_in(ADMIN_TOKEN).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.set_cookie().is_none());
}

#[tokio::test]
async fn signing_in_hands_out_an_http_only_strict_session_cookie_for_the_console_only() {
    let app = spawn_app().await;
    let answer = Operator::new(&app).sign_in(ADMIN_TOKEN).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), Some("/console"));
    let cookie = answer.set_cookie().unwrap();
    assert!(cookie.starts_with("console_session="), "{cookie}");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "tests serve plain HTTP: {cookie}"
    );
    assert!(!cookie.contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_configured() {
    let app = spawn_app_with(|config| config.console_secure_cookie = true).await;
    let answer = Operator::new(&app).sign_in(ADMIN_TOKEN).await;
    assert!(answer.set_cookie().unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn a_wrong_token_signs_nobody_in() {
    let app = spawn_app().await;
    let operator = Operator::new(&app);
    for token in ["", "admin-test-token", &format!("{ADMIN_TOKEN}x")] {
        let answer = operator.sign_in(token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(answer.set_cookie().is_none());
        assert!(answer.body.contains("That is not the admin token."));
    }
}

#[tokio::test]
async fn without_a_valid_session_pages_lead_to_the_sign_in_and_actions_are_refused() {
    let app = spawn_app().await;
    let (order, call) = dead_call(&app).await;
    let mut operator = Operator::new(&app);
    for cookie in [
        None,
        Some("console_session=1.2.3"),
        Some("console_session="),
    ] {
        operator.cookie = cookie.map(str::to_owned);
        for path in [
            "/console",
            "/console/orders",
            &format!("/console/orders/{order}"),
        ] {
            let answer = operator.get(path).await;
            assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path} {cookie:?}");
            assert_eq!(answer.location(), Some("/console/sign-in"));
        }
        let answer = operator
            .post(&format!("/console/calls/{call}/retry"), &[("csrf", "x")])
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{cookie:?}");
    }
    // The admin token as a bearer token is the API's way in, not the console's.
    let page = app
        .admin_request(reqwest::Method::GET, "/console")
        .send()
        .await
        .unwrap();
    assert_eq!(page.url().path(), "/console/sign-in");
    assert_eq!(call_status(&app, call).await, "dead");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let (order, call) = dead_call(&app).await;
    let operator = Operator::signed_in(&app).await;
    let other_session = Operator::signed_in(&app).await;
    let foreign = other_session.get("/console").await.csrf();
    let retry = format!("/console/calls/{call}/retry");
    for form in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", "forged")],
        vec![("csrf", foreign.as_str())],
    ] {
        let answer = operator.post(&retry, &form).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(answer.body.contains("did not come from the console"));
    }
    assert_eq!(call_status(&app, call).await, "dead");

    let page = format!("/console/orders/{order}");
    let answer = operator.submit(&page, &retry, &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location(),
        Some(format!("/console/orders/{order}#call-{call}").as_str())
    );
    assert_eq!(call_status(&app, call).await, "pending");
    app.expect_unfinished_calls();
}

#[tokio::test]
async fn signing_out_clears_the_cookie() {
    let app = spawn_app().await;
    let operator = Operator::signed_in(&app).await;
    let answer = operator.submit("/console", "/console/sign-out", &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), Some("/console/sign-in"));
    let cookie = answer.set_cookie().unwrap();
    assert!(
        cookie.starts_with("console_session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
}

#[tokio::test]
async fn console_pages_are_never_cached_nor_framed() {
    let app = spawn_app().await;
    let operator = Operator::signed_in(&app).await;
    for path in ["/console/sign-in", "/console", "/console/orders/999"] {
        let answer = operator.get(path).await;
        let header = |name: &str| answer.headers[name].to_str().unwrap().to_owned();
        assert_eq!(header("cache-control"), "no-store", "{path}");
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    }
}

#[tokio::test]
async fn a_sign_in_without_a_token_field_is_a_400_page() {
    let app = spawn_app().await;
    let answer = Operator::new(&app)
        .post("/console/sign-in", &[("password", ADMIN_TOKEN)])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("<!DOCTYPE html>") && answer.body.contains("token"));
    assert!(answer.set_cookie().is_none());
}
