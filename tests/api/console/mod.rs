//! The operator console: access (sign-in, session cookie, CSRF) over plain HTTP, the
//! pages' reads and actions, and an operator's day in a real browser.

mod access;
mod browser;
mod pages;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use uchat_billing::sandbox::{Faults, SandboxHandle};

use crate::common::story::{self, Buyer};
use crate::common::*;

/// A page or form answer: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookie(&self) -> Option<&str> {
        self.headers.get(SET_COOKIE).and_then(|v| v.to_str().ok())
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> String {
        let (_, rest) = self
            .body
            .split_once(r#"name="csrf" value=""#)
            .expect("the page has a form with a CSRF token");
        rest.split('"').next().unwrap().to_owned()
    }
}

/// An HTTP client that sees redirects and keeps the console's session cookie by hand.
pub struct Operator<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    /// `console_session=<value>`, once signed in.
    pub cookie: Option<String>,
}

impl<'a> Operator<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Operator {
            app,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// Signs in with the admin token: the session cookie is kept.
    pub async fn signed_in(app: &'a TestApp) -> Self {
        let mut operator = Operator::new(app);
        let answer = operator.sign_in(ADMIN_TOKEN).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let cookie = answer.set_cookie().expect("a session cookie");
        operator.cookie = Some(cookie.split(';').next().unwrap().to_owned());
        operator
    }

    pub async fn sign_in(&self, token: &str) -> Answer {
        self.post("/console/sign-in", &[("token", token)]).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(self.client.post(self.url(path)).form(form)).await
    }

    /// Posts a form as the page at `page` would: with that page's CSRF token.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.get(page).await.csrf();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.address)
    }

    async fn send(&self, mut request: reqwest::RequestBuilder) -> Answer {
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.expect("the console answers");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }
}

/// The sandbox refusing every request with a 422 (a call that can never work goes dead
/// at once), and the app delivering to it.
pub async fn app_with_refusing_partner() -> (TestApp, SandboxHandle) {
    let refuse = Faults {
        fail_rate: 1.0,
        fail_status: 422,
        ..Faults::default()
    };
    let (base, sandbox) = spawn_sandbox(refuse).await;
    (spawn_app_delivering_to(&base).await, sandbox)
}

/// `buyer`'s subscription sale, applied and delivered: with a refusing partner, its first
/// call ends dead and the order needs attention.
pub async fn sale_of(app: &TestApp, buyer: &Buyer, id: &str) -> i64 {
    app.post_stripe_events(&story::subscription_sale(
        buyer,
        id,
        now() - 60,
        &[("price_business", 1)],
    ))
    .await;
    app.process_events().await;
    app.deliver_all().await;
    sqlx::query_scalar("SELECT id FROM orders WHERE lower(email) = lower($1)")
        .bind(&buyer.email)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The ids of the order's calls in this status.
pub async fn calls_of(app: &TestApp, order_id: i64, status: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM partner_calls WHERE order_id = $1 AND status = $2 ORDER BY position",
    )
    .bind(order_id)
    .bind(status)
    .fetch_all(&app.db)
    .await
    .unwrap()
}
