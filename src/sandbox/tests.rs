use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};

use super::state::format_utc;
use super::*;
use crate::env::{ConfigErrors, Env};

struct Api {
    base: String,
    client: Client,
    handle: SandboxHandle,
}

async fn spawn(config: SandboxConfig) -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (app, handle) = router(config);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api {
        base,
        client: Client::new(),
        handle,
    }
}

async fn spawn_with_credit(credit: f64) -> Api {
    spawn(SandboxConfig {
        credit,
        ..SandboxConfig::default()
    })
    .await
}

async fn spawn_with_faults(faults: Faults) -> Api {
    spawn(SandboxConfig {
        faults,
        ..SandboxConfig::default()
    })
    .await
}

async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Api {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(DEFAULT_TOKEN)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::DELETE, path, Some(body)).await
    }

    /// Creates a workspace for `email` and returns its id.
    async fn create(&self, email: &str, name: &str) -> u64 {
        let (status, body) = self
            .post("/partner/workspace/create", create_body(email, name))
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["id"].as_u64().unwrap()
    }

    async fn state(&self) -> Value {
        let response = self
            .client
            .get(format!("{}/sandbox/state", self.base))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, 200);
        body
    }
}

fn create_body(email: &str, name: &str) -> Value {
    json!({
        "name": name,
        "email": email,
        "password": "s3cret-pass",
        "team_name": format!("{name}'s team"),
        "require_email_verification": "no",
    })
}

fn error(message: &str) -> Value {
    json!({ "status": "error", "message": message })
}

#[tokio::test]
async fn every_endpoint_answers_with_the_contract_envelope() {
    let api = spawn_with_credit(1000.0).await;

    let (status, created) = api
        .post(
            "/partner/workspace/create",
            create_body("ann@example.com", "Ann"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(created["status"], "ok");
    let data = &created["data"];
    assert_eq!(data["id"], 1000);
    assert_eq!(data["name"], "Ann");
    assert_eq!(data["owner_email"], "ann@example.com");
    assert_eq!(data["plan"], "trial");
    assert_eq!(
        (data["is_paused"].clone(), data["auto_renew"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(data["points"], 0.0);
    for addon in ADDONS {
        assert_eq!(data[format!("addon_{}", addon.id)], 0, "{addon:?}");
    }
    assert!(data["billing_start_at"].is_string() && data["billing_end_at"].is_string());

    let ws = "/partner/workspace/1000";
    let (status, got) = api.get(ws).await;
    assert_eq!((status, &got), (200, &created));

    let steps: Vec<(Method, &str, Value, &str, Value)> = vec![
        (
            Method::POST,
            "change-plan",
            json!({"plan": "business", "auto_renew": "yes"}),
            "plan",
            json!("business"),
        ),
        (
            Method::POST,
            "add-addon",
            json!({"addon": "bot", "qty": 2}),
            "addon_bot",
            json!(2),
        ),
        (
            Method::DELETE,
            "remove-addon",
            json!({"addon": "bot", "qty": 1}),
            "addon_bot",
            json!(1),
        ),
        (
            Method::POST,
            "topup-points",
            json!({"points": 10, "note": "sale"}),
            "points",
            json!(10.0),
        ),
        (
            Method::DELETE,
            "deduct-points",
            json!({"points": 4, "note": "refund"}),
            "points",
            json!(6.0),
        ),
        (Method::POST, "pause", Value::Null, "is_paused", json!(1)),
        (Method::POST, "active", Value::Null, "is_paused", json!(0)),
        (
            Method::POST,
            "disable-auto-renew",
            Value::Null,
            "auto_renew",
            json!(0),
        ),
        (
            Method::POST,
            "enable-auto-renew",
            Value::Null,
            "auto_renew",
            json!(1),
        ),
    ];
    for (method, action, body, field, expected) in steps {
        let body = Some(body).filter(|b| !b.is_null());
        let (status, answer) = api.call(method, &format!("{ws}/{action}"), body).await;
        assert_eq!(status, 200, "{action}: {answer}");
        assert_eq!(answer["status"], "ok", "{action}");
        assert_eq!(answer["data"][field], expected, "{action}: {answer}");
    }
    let (status, _) = api
        .post(
            &format!("{ws}/invite-member"),
            json!({"email": "bob@example.com", "role": "agent"}),
        )
        .await;
    assert_eq!(status, 200);

    let (_, plans) = api.get("/partner/plans").await;
    assert_eq!(plans["status"], "ok");
    assert_eq!(plans["data"].as_array().unwrap().len(), 6);
    assert_eq!(
        plans["data"][1],
        json!({"id": "business", "name": "Business", "price": 10.0})
    );
    let (_, addons) = api.get("/partner/addons").await;
    assert_eq!(addons["data"].as_array().unwrap().len(), 8);
    assert_eq!(addons["data"][2]["id"], "bot_user");

    // 1000 - 10 (business) - 2 × 5 (bots)
    let (_, credit) = api.get("/partner/credit-balance").await;
    assert_eq!(credit, json!({"credit": "980.00", "status": "ok"}));

    let (_, list) = api.get("/partner/workspaces").await;
    assert_eq!(list["status"], "ok");
    assert_eq!(list["data"][0]["id"], 1000);

    let state = api.state().await;
    assert_eq!(state["credit"], 980.0);
    let saved = &state["workspaces"][0];
    assert_eq!(saved["plan"], "business");
    assert_eq!(saved["team_name"], "Ann's team");
    assert_eq!(
        (saved["is_paused"].clone(), saved["auto_renew"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(saved["points"], 6.0);
    assert_eq!(saved["addons"], json!({"bot": 1}));
    assert_eq!(
        saved["invites"],
        json!([{"email": "bob@example.com", "role": "agent"}])
    );

    let (status, deleted) = api.call(Method::DELETE, ws, None).await;
    assert_eq!(
        (status, deleted),
        (200, json!({"status": "ok", "data": {"id": 1000}}))
    );
    assert_eq!(api.get(ws).await.0, 404);
    assert!(api.handle.workspaces().is_empty());

    let log: Vec<(String, String)> = api
        .handle
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let expected = [
        ("POST", "/partner/workspace/create"),
        ("GET", "/partner/workspace/1000"),
        ("POST", "/partner/workspace/1000/change-plan"),
        ("POST", "/partner/workspace/1000/add-addon"),
        ("DELETE", "/partner/workspace/1000/remove-addon"),
        ("POST", "/partner/workspace/1000/topup-points"),
        ("DELETE", "/partner/workspace/1000/deduct-points"),
        ("POST", "/partner/workspace/1000/pause"),
        ("POST", "/partner/workspace/1000/active"),
        ("POST", "/partner/workspace/1000/disable-auto-renew"),
        ("POST", "/partner/workspace/1000/enable-auto-renew"),
        ("POST", "/partner/workspace/1000/invite-member"),
        ("GET", "/partner/plans"),
        ("GET", "/partner/addons"),
        ("GET", "/partner/credit-balance"),
        ("GET", "/partner/workspaces"),
        ("DELETE", "/partner/workspace/1000"),
        ("GET", "/partner/workspace/1000"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(log, expected);
    assert_eq!(
        api.handle.requests()[3].json(),
        json!({"addon": "bot", "qty": 2})
    );
    assert_eq!(api.handle.requests()[1].body, "");
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let api = spawn_with_credit(1000.0).await;
    let url = format!("{}/partner/workspace/create", api.base);
    let body = create_body("ann@example.com", "Ann");

    let missing = api.client.post(&url).json(&body).send().await.unwrap();
    let wrong = api
        .client
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    let empty = api
        .client
        .post(&url)
        .header("authorization", "Bearer ")
        .json(&body)
        .send()
        .await
        .unwrap();
    for response in [missing, wrong, empty] {
        assert_eq!(read(response).await, (401, error("Unauthenticated.")));
    }
    assert!(api.handle.workspaces().is_empty());
    assert_eq!(
        api.handle.requests().len(),
        3,
        "refused calls are logged too"
    );
    assert_eq!(
        api.state().await["workspaces"],
        json!([]),
        "state needs no token"
    );
}

#[tokio::test]
async fn bad_bodies_are_422_naming_the_field() {
    let api = spawn_with_credit(1000.0).await;
    let create = "/partner/workspace/create";

    let mut no_email = create_body("ann@example.com", "Ann");
    no_email.as_object_mut().unwrap().remove("email");
    let (status, body) = api.post(create, no_email).await;
    assert_eq!((status, body), (422, error("The email field is required.")));

    let mut bad_choice = create_body("ann@example.com", "Ann");
    bad_choice["require_email_verification"] = json!("maybe");
    let (status, body) = api.post(create, bad_choice).await;
    assert_eq!(
        (status, body),
        (
            422,
            error("The selected require_email_verification is invalid.")
        )
    );

    let (status, body) = api.post(create, create_body("not-an-email", "Ann")).await;
    assert_eq!(
        (status, body),
        (422, error("The email must be a valid email address."))
    );

    let response = api
        .request(Method::POST, create)
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Malformed JSON body"),
        "{body}"
    );

    let id = api.create("ann@example.com", "Ann").await;
    let add = format!("/partner/workspace/{id}/add-addon");
    let cases = [
        (
            json!({"addon": "bot", "qty": "2"}),
            "The qty must be an integer.",
        ),
        (
            json!({"addon": "bot", "qty": 1.5}),
            "The qty must be an integer.",
        ),
        (
            json!({"addon": "bot", "qty": 0}),
            "The qty must be at least 1.",
        ),
        (json!({"addon": "bot"}), "The qty field is required."),
        (
            json!({"addon": "rocket", "qty": 1}),
            "The selected addon is invalid.",
        ),
        (json!([1, 2]), "The request body must be a JSON object."),
    ];
    for (body, message) in cases {
        assert_eq!(api.post(&add, body).await, (422, error(message)));
    }
    let plan = format!("/partner/workspace/{id}/change-plan");
    assert_eq!(
        api.post(&plan, json!({"plan": "trial"})).await,
        (422, error("The selected plan is invalid."))
    );
    let state = api.state().await;
    assert_eq!(state["credit"], 1000.0);
    assert_eq!(state["workspaces"][0]["addons"], json!({}));
}

#[tokio::test]
async fn create_refuses_an_email_that_already_owns_a_workspace() {
    let api = spawn_with_credit(1000.0).await;
    api.create("ann@example.com", "Ann").await;
    let (status, body) = api
        .post(
            "/partner/workspace/create",
            create_body("ANN@example.com", "Ann again"),
        )
        .await;
    assert_eq!(
        (status, body),
        (422, error("The email has already been taken."))
    );
    assert_eq!(api.handle.workspaces().len(), 1);
}

#[tokio::test]
async fn create_for_existing_user_needs_a_known_owner() {
    let api = spawn_with_credit(1000.0).await;
    let path = "/partner/workspace/create-for-existing-user";
    let (status, body) = api
        .post(
            path,
            json!({"email": "ann@example.com", "team_name": "Two"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (422, error("The selected email is invalid."))
    );
    assert!(api.handle.workspaces().is_empty());

    api.create("ann@example.com", "Ann").await;
    let (status, body) = api
        .post(
            path,
            json!({"email": "ann@example.com", "team_name": "Two", "trial_days": 7}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], 1001);
    assert_eq!(body["data"]["plan"], "trial");
    let second = api.handle.workspace(1001).unwrap();
    assert_eq!(
        (
            second.name.as_str(),
            second.owner_email.as_str(),
            second.team_name.as_deref()
        ),
        ("Ann", "ann@example.com", Some("Two"))
    );
    let (_, list) = api.get("/partner/workspaces?search=ann@example.com").await;
    assert_eq!(list["meta"]["total"], 2);
}

#[tokio::test]
async fn charges_draw_credit_down_and_a_short_credit_changes_nothing() {
    let api = spawn_with_credit(12.0).await;
    let id = api.create("ann@example.com", "Ann").await;
    let ws = format!("/partner/workspace/{id}");

    assert_eq!(
        api.post(&format!("{ws}/change-plan"), json!({"plan": "business"}))
            .await
            .0,
        200
    );
    assert_eq!(api.handle.credit(), 2.0);
    // Same plan again: no charge.
    assert_eq!(
        api.post(&format!("{ws}/change-plan"), json!({"plan": "business"}))
            .await
            .0,
        200
    );
    assert_eq!(api.handle.credit(), 2.0);

    let before = api.state().await;
    let refusal = error("no_enough_credit: your partner credit is not enough");
    let refused = [
        (format!("{ws}/add-addon"), json!({"addon": "bot", "qty": 1})),
        (
            format!("{ws}/add-addon"),
            json!({"addon": "lists", "qty": 2}),
        ),
        (
            format!("{ws}/change-plan"),
            json!({"plan": "business_plus", "auto_renew": "no"}),
        ),
    ];
    for (path, body) in refused {
        assert_eq!(api.post(&path, body).await, (422, refusal.clone()));
    }
    assert_eq!(api.state().await, before);

    // Enough for one list (2), and free costs nothing.
    assert_eq!(
        api.post(
            &format!("{ws}/add-addon"),
            json!({"addon": "lists", "qty": 1})
        )
        .await
        .0,
        200
    );
    let (status, body) = api
        .post(
            &format!("{ws}/change-plan"),
            json!({"plan": "free", "auto_renew": "no"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["data"]["plan"].clone(),
            body["data"]["auto_renew"].clone()
        ),
        (json!("free"), json!(0))
    );
    assert_eq!(body["data"]["billing_end_at"], Value::Null);
    let (_, credit) = api.get("/partner/credit-balance").await;
    assert_eq!(credit, json!({"credit": "0.00", "status": "ok"}));
}

#[tokio::test]
async fn an_unknown_workspace_is_404() {
    let api = spawn_with_credit(1000.0).await;
    api.create("ann@example.com", "Ann").await;
    let not_found = (404, error("Workspace not found"));
    assert_eq!(api.get("/partner/workspace/999").await, not_found);
    assert_eq!(api.get("/partner/workspace/abc").await, not_found);
    assert_eq!(
        api.post(
            "/partner/workspace/4242/change-plan",
            json!({"plan": "business"})
        )
        .await,
        not_found
    );
    // 404 comes before body validation.
    assert_eq!(
        api.post("/partner/workspace/4242/add-addon", json!({}))
            .await,
        not_found
    );
    assert_eq!(
        api.call(Method::DELETE, "/partner/workspace/4242", None)
            .await,
        not_found
    );
    assert_eq!(
        api.call(Method::POST, "/partner/workspace/4242/pause", None)
            .await,
        not_found
    );
    assert_eq!(api.handle.credit(), 1000.0);
}

#[tokio::test]
async fn unknown_routes_are_a_json_404_and_logged() {
    let api = spawn_with_credit(1000.0).await;
    assert_eq!(
        api.get("/api/partner/plans").await,
        (404, error("Not found"))
    );
    assert_eq!(api.handle.requests()[0].path, "/api/partner/plans");
}

#[tokio::test]
async fn add_ons_and_points_cannot_go_below_zero() {
    let api = spawn_with_credit(1000.0).await;
    let id = api.create("ann@example.com", "Ann").await;
    let ws = format!("/partner/workspace/{id}");
    assert_eq!(
        api.post(
            &format!("{ws}/add-addon"),
            json!({"addon": "bot", "qty": 1})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api.post(&format!("{ws}/topup-points"), json!({"points": 5}))
            .await
            .0,
        200
    );
    let before = api.state().await;

    let remove = format!("{ws}/remove-addon");
    let (status, body) = api.delete(&remove, json!({"addon": "bot", "qty": 2})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        api.delete(&remove, json!({"addon": "member", "qty": 1}))
            .await
            .0,
        422
    );
    let deduct = format!("{ws}/deduct-points");
    let (status, body) = api.delete(&deduct, json!({"points": 5.5})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("points"));
    assert_eq!(
        api.delete(&deduct, json!({"points": 0})).await,
        (422, error("The points must be greater than 0."))
    );
    assert_eq!(
        api.post(&format!("{ws}/topup-points"), json!({"points": -1}))
            .await,
        (422, error("The points must be greater than 0."))
    );
    assert_eq!(api.state().await, before);

    // Down to exactly zero is fine, and the add-on disappears from the state.
    assert_eq!(
        api.delete(&remove, json!({"addon": "bot", "qty": 1}))
            .await
            .0,
        200
    );
    assert_eq!(api.delete(&deduct, json!({"points": 5})).await.0, 200);
    let workspace = api.handle.workspace(id).unwrap();
    assert!(workspace.addons.is_empty());
    assert_eq!(workspace.points, 0.0);
}

#[tokio::test]
async fn the_list_pages_by_20_and_searches_email_and_name() {
    let api = spawn_with_credit(1000.0).await;
    for i in 1..=45 {
        api.create(&format!("user{i}@example.com"), &format!("User {i}"))
            .await;
    }
    let meta = |page: u64, from: Value, to: Value| json!({"current_page": page, "last_page": 3, "per_page": 20, "total": 45, "from": from, "to": to});

    let (_, first) = api.get("/partner/workspaces").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 20);
    assert_eq!(first["data"][0]["id"], 1000);
    assert_eq!(first["meta"], meta(1, json!(1), json!(20)));

    let (_, last) = api.get("/partner/workspaces?page=3").await;
    assert_eq!(last["data"].as_array().unwrap().len(), 5);
    assert_eq!(last["data"][4]["owner_email"], "user45@example.com");
    assert_eq!(last["meta"], meta(3, json!(41), json!(45)));

    let (_, past) = api.get("/partner/workspaces?page=4").await;
    assert_eq!(past["data"], json!([]));
    assert_eq!(past["meta"], meta(4, Value::Null, Value::Null));

    let (_, junk) = api.get("/partner/workspaces?page=zero").await;
    assert_eq!(junk["meta"]["current_page"], 1);

    let (_, by_email) = api.get("/partner/workspaces?search=USER7%40example").await;
    assert_eq!(by_email["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_email["data"][0]["owner_email"], "user7@example.com");

    // "User 1" and "User 10".."User 19".
    let (_, by_name) = api.get("/partner/workspaces?search=user%201&page=1").await;
    assert_eq!(by_name["meta"]["total"], 11);
    assert_eq!(by_name["meta"]["last_page"], 1);

    let (_, none) = api.get("/partner/workspaces?search=nobody").await;
    assert_eq!(
        none["meta"],
        json!({"current_page": 1, "last_page": 1, "per_page": 20, "total": 0, "from": null, "to": null})
    );
}

#[tokio::test]
async fn fail_rate_answers_the_fail_status_and_applies_nothing() {
    let api = spawn_with_faults(Faults {
        fail_rate: 1.0,
        fail_status: 503,
        ..Faults::default()
    })
    .await;
    let (status, body) = api
        .post(
            "/partner/workspace/create",
            create_body("ann@example.com", "Ann"),
        )
        .await;
    assert_eq!((status, body), (503, error("sandbox: injected failure")));
    let state = api.state().await; // no faults here
    assert_eq!(state["workspaces"], json!([]));
    assert_eq!(api.handle.requests().len(), 1, "the failed call is logged");

    api.handle.set_faults(Faults::default());
    api.create("ann@example.com", "Ann").await;
}

#[tokio::test]
async fn apply_then_timeout_applies_while_the_client_times_out() {
    let api = spawn_with_faults(Faults {
        apply_then_timeout_rate: 1.0,
        timeout_ms: 300,
        ..Faults::default()
    })
    .await;
    let result = api
        .request(Method::POST, "/partner/workspace/create")
        .json(&create_body("ann@example.com", "Ann"))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    let state = api.state().await;
    assert_eq!(state["workspaces"][0]["owner_email"], "ann@example.com");
}

#[tokio::test]
async fn timeout_applies_nothing_and_ends_in_504() {
    let api = spawn_with_faults(Faults {
        timeout_rate: 1.0,
        timeout_ms: 300,
        ..Faults::default()
    })
    .await;
    let result = api
        .request(Method::POST, "/partner/workspace/create")
        .json(&create_body("ann@example.com", "Ann"))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());

    let started = Instant::now();
    let response = api
        .request(Method::POST, "/partner/workspace/create")
        .json(&create_body("bob@example.com", "Bob"))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status().as_u16(), 504);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        error("sandbox: injected timeout")
    );
    assert_eq!(api.state().await["workspaces"], json!([]));
    // Reads are never faulted: a client can always look.
    assert_eq!(api.get("/partner/plans").await.0, 200);
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let api = spawn_with_faults(Faults {
        latency_ms: 150,
        latency_jitter_ms: 50,
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(api.get("/partner/plans").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn serve_ends_held_requests_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/partner/workspace/create",
        listener.local_addr().unwrap()
    );
    let config = SandboxConfig {
        faults: Faults {
            timeout_rate: 1.0,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, config, async {
        stopped.await.ok();
    }));
    let held = tokio::spawn(async move {
        let response = Client::new()
            .post(url)
            .json(&create_body("ann@example.com", "Ann"))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let served = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(served
        .expect("shutdown is not held up for 30 s")
        .unwrap()
        .is_ok());
    assert_eq!(held.await.unwrap(), 504);
}

impl SandboxConfig {
    /// What `sandbox` reads, from `get` instead of the environment.
    fn from_lookup(get: impl Fn(&str) -> Option<String> + 'static) -> Result<Self, ConfigErrors> {
        let mut env = Env::new(get);
        let config = SandboxConfig::read(&mut env);
        env.finish(Some(config))
    }
}

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn from_env_defaults_and_values() {
    let config = SandboxConfig::from_lookup(lookup(&[("SANDBOX_LATENCY_MS", "")])).unwrap();
    assert_eq!(
        (config.token.as_str(), config.credit),
        ("sandbox-token", 1000.0)
    );
    assert_eq!(config.faults, Faults::default());
    let base = config.first_workspace_id;
    assert!(
        base.is_multiple_of(1000) && (10_000..1_000_000).contains(&base),
        "a random thousand: {base}"
    );

    let config = SandboxConfig::from_lookup(lookup(&[
        ("SANDBOX_TOKEN", "tok"),
        ("SANDBOX_CREDIT", "12.5"),
        ("SANDBOX_LATENCY_MS", "10"),
        ("SANDBOX_LATENCY_JITTER_MS", "5"),
        ("SANDBOX_FAIL_RATE", "0.1"),
        ("SANDBOX_FAIL_STATUS", "429"),
        ("SANDBOX_TIMEOUT_RATE", "0.2"),
        ("SANDBOX_APPLY_THEN_TIMEOUT_RATE", " 0.3 "),
        ("SANDBOX_TIMEOUT_MS", "1000"),
    ]))
    .unwrap();
    assert_eq!((config.token.as_str(), config.credit), ("tok", 12.5));
    let expected = Faults {
        latency_ms: 10,
        latency_jitter_ms: 5,
        fail_rate: 0.1,
        fail_status: 429,
        timeout_rate: 0.2,
        apply_then_timeout_rate: 0.3,
        timeout_ms: 1000,
    };
    assert_eq!(config.faults, expected);
}

#[test]
fn from_env_reports_each_bad_value() {
    let errors = SandboxConfig::from_lookup(lookup(&[
        ("SANDBOX_CREDIT", "-5"),
        ("SANDBOX_LATENCY_MS", "fast"),
        ("SANDBOX_LATENCY_JITTER_MS", "-1"),
        ("SANDBOX_FAIL_RATE", "1.5"),
        ("SANDBOX_FAIL_STATUS", "200"),
        ("SANDBOX_TIMEOUT_RATE", "NaN"),
        ("SANDBOX_APPLY_THEN_TIMEOUT_RATE", "x"),
        ("SANDBOX_TIMEOUT_MS", "1.5"),
    ]))
    .unwrap_err();
    let named: Vec<&str> = errors
        .0
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "SANDBOX_CREDIT",
            "SANDBOX_LATENCY_MS",
            "SANDBOX_LATENCY_JITTER_MS",
            "SANDBOX_FAIL_RATE",
            "SANDBOX_FAIL_STATUS",
            "SANDBOX_TIMEOUT_RATE",
            "SANDBOX_APPLY_THEN_TIMEOUT_RATE",
            "SANDBOX_TIMEOUT_MS",
        ]
    );
    assert_eq!(
        errors.0[3],
        "SANDBOX_FAIL_RATE: expected a probability between 0 and 1, got \"1.5\""
    );
}

#[test]
fn fault_draws_follow_the_rates() {
    let mut rng = rand::thread_rng();
    let never = Faults::default();
    let always = |f: fn(&mut Faults)| {
        let mut faults = Faults::default();
        f(&mut faults);
        faults
    };
    for _ in 0..100 {
        assert_eq!(never.draw(&mut rng), Outcome::Answer);
        assert_eq!(always(|f| f.fail_rate = 1.0).draw(&mut rng), Outcome::Fail);
        assert_eq!(
            always(|f| f.timeout_rate = 1.0).draw(&mut rng),
            Outcome::Timeout
        );
        assert_eq!(
            always(|f| f.apply_then_timeout_rate = 1.0).draw(&mut rng),
            Outcome::ApplyThenTimeout
        );
        let latency = always(|f| {
            f.latency_ms = 10;
            f.latency_jitter_ms = 5;
        })
        .latency(&mut rng);
        assert!((10..=15).contains(&latency.as_millis()));
    }
}

#[test]
fn dates_are_utc_calendar_dates() {
    assert_eq!(format_utc(0), "1970-01-01 00:00:00");
    assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
    assert_eq!(format_utc(1_709_251_199), "2024-02-29 23:59:59");
}

#[tokio::test]
async fn health_routes_answer_without_a_token_and_are_not_logged() {
    let api = spawn_with_faults(Faults {
        fail_rate: 1.0,
        ..Faults::default()
    })
    .await;
    for path in ["/healthz", "/readyz"] {
        let response = api
            .client
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            read(response).await,
            (200, json!({"status": "ok"})),
            "{path}"
        );
    }
    assert!(api.handle.requests().is_empty());
}

#[tokio::test]
async fn workspaces_are_numbered_from_the_configured_first_id() {
    let api = spawn(SandboxConfig {
        first_workspace_id: 427_000,
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(api.create("ada@example.com", "Ada").await, 427_000);
    assert_eq!(api.create("grace@example.com", "Grace").await, 427_001);
}
