//! Delivery against a partner on loopback: every call reaches its endpoint once, in
//! order per order, through failures, timeouts, crashes and concurrent workers.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use uchat_billing::sandbox::Faults;
use wiremock::matchers::{body_json, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ok(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"status": "ok", "data": data}))
}

/// A mock that insists on the bearer token and JSON headers of every call.
fn expect_call(verb: &str, route: &str) -> wiremock::MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(header(
            "authorization",
            format!("Bearer {PARTNER_TOKEN}").as_str(),
        ))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
}

fn empty_workspace_list() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": [], "meta": {"current_page": 1, "last_page": 1, "total": 0, "from": null, "to": null}
    }))
}

fn workspace(id: i64, points: f64, bots: i64) -> ResponseTemplate {
    ok(
        json!({"id": id, "name": "Ada", "plan": "business", "is_paused": 0, "auto_renew": 1,
              "owner_email": "ada@example.com", "points": points, "addon_bot": bots}),
    )
}

#[tokio::test]
async fn each_call_kind_reaches_its_endpoint_with_its_body() {
    let partner = MockServer::start().await;
    let ws = "/partner/workspace/42";
    for (verb, route, body) in [
        (
            "POST",
            format!("{ws}/change-plan"),
            Some(json!({"plan": "business", "auto_renew": "yes"})),
        ),
        (
            "DELETE",
            format!("{ws}/remove-addon"),
            Some(json!({"addon": "bot", "qty": 1})),
        ),
        (
            "POST",
            format!("{ws}/add-addon"),
            Some(json!({"addon": "bot", "qty": 2})),
        ),
        (
            "DELETE",
            format!("{ws}/deduct-points"),
            Some(json!({"points": 50, "note": "refund"})),
        ),
        (
            "POST",
            format!("{ws}/topup-points"),
            Some(json!({"points": 100, "note": "sale"})),
        ),
        ("POST", format!("{ws}/pause"), None),
        ("POST", format!("{ws}/active"), None),
        ("POST", format!("{ws}/disable-auto-renew"), None),
        ("POST", format!("{ws}/enable-auto-renew"), None),
        ("DELETE", ws.to_owned(), None),
    ] {
        let mock = expect_call(verb, &route);
        let mock = match body {
            Some(body) => mock.and(body_json(body)),
            None => mock,
        };
        mock.respond_with(ok(json!({})))
            .expect(1)
            .mount(&partner)
            .await;
    }
    // Counters are read before a first try, so a retry can tell whether it took effect.
    expect_call("GET", ws)
        .respond_with(workspace(42, 500.0, 3))
        .mount(&partner)
        .await;

    let app = spawn_app_delivering_to(&partner.uri()).await;
    let calls = [
        (
            "change-plan",
            json!({"plan": "business", "auto_renew": "yes"}),
        ),
        ("remove-addon", json!({"addon": "bot", "qty": 1})),
        ("add-addon", json!({"addon": "bot", "qty": 2})),
        ("deduct-points", json!({"points": 50, "note": "refund"})),
        ("topup-points", json!({"points": 100, "note": "sale"})),
        ("pause", Value::Null),
        ("active", Value::Null),
        ("disable-auto-renew", Value::Null),
        ("enable-auto-renew", Value::Null),
        ("delete", Value::Null),
    ];
    let order = app.queue_calls(Some(42), "ada@example.com", &calls).await;
    app.deliver_all().await;
    let states = app.call_states(order).await;
    assert!(
        states
            .iter()
            .all(|(_, status, attempts)| status == "succeeded" && *attempts == 1),
        "{states:?}"
    );
}

#[tokio::test]
async fn a_create_sends_a_fresh_password_and_later_calls_go_to_the_new_workspace() {
    let partner = MockServer::start().await;
    expect_call("GET", "/partner/workspaces")
        .and(query_param("search", "ada@example.com"))
        .respond_with(empty_workspace_list())
        .mount(&partner)
        .await;
    let create = json!({"email": "ada@example.com", "name": "Ada", "team_name": "Ada's team", "require_email_verification": "no"});
    expect_call("POST", "/partner/workspace/create")
        .and(body_partial_json(&create))
        .respond_with(ok(json!({"id": 77})))
        .expect(1)
        .mount(&partner)
        .await;
    expect_call("POST", "/partner/workspace/77/change-plan")
        .and(body_json(json!({"plan": "business", "auto_renew": "yes"})))
        .respond_with(ok(json!({})))
        .expect(1)
        .mount(&partner)
        .await;

    let app = spawn_app_delivering_to(&partner.uri()).await;
    let order = app
        .queue_calls(
            None,
            "ada@example.com",
            &[
                ("create", create.clone()),
                (
                    "change-plan",
                    json!({"plan": "business", "auto_renew": "yes"}),
                ),
            ],
        )
        .await;
    app.deliver_all().await;

    let sent = partner.received_requests().await.unwrap();
    let create_request = sent
        .iter()
        .find(|r| r.url.path() == "/partner/workspace/create")
        .unwrap();
    let password = create_request.body_json::<Value>().unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(password.len() >= 16);
    let stored: String =
        sqlx::query_scalar("SELECT body::text FROM partner_calls WHERE kind = 'create'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!stored.contains(&password), "the password is never stored");
    let workspace: Option<i64> =
        sqlx::query_scalar("SELECT workspace_id FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(workspace, Some(77));
}

#[tokio::test]
async fn an_email_with_a_uchat_account_gets_create_for_existing_user() {
    let partner = MockServer::start().await;
    expect_call("GET", "/partner/workspaces")
        .respond_with(empty_workspace_list())
        .mount(&partner)
        .await;
    expect_call("POST", "/partner/workspace/create")
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "The given data was invalid.", "errors": {"email": ["The email has already been taken."]}
        })))
        .expect(1)
        .mount(&partner)
        .await;
    expect_call("POST", "/partner/workspace/create-for-existing-user")
        .and(body_json(
            json!({"email": "ada@example.com", "team_name": "Ada's team"}),
        ))
        .respond_with(ok(json!({"id": 88})))
        .expect(1)
        .mount(&partner)
        .await;
    let app = spawn_app_delivering_to(&partner.uri()).await;
    let create = json!({"email": "ada@example.com", "name": "Ada", "team_name": "Ada's team", "require_email_verification": "no"});
    let order = app
        .queue_calls(None, "ada@example.com", &[("create", create)])
        .await;
    app.deliver_all().await;
    assert_eq!(
        app.call_states(order).await,
        [("create-for-existing-user".into(), "succeeded".into(), 1)]
    );
}

#[tokio::test]
async fn failures_then_success_end_succeeded_with_every_attempt_recorded() {
    let partner = MockServer::start().await;
    let route = "/partner/workspace/42/pause";
    expect_call("POST", route)
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&partner)
        .await;
    expect_call("POST", route)
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"message": "busy"})),
        )
        .up_to_n_times(1)
        .mount(&partner)
        .await;
    expect_call("POST", route)
        .respond_with(ok(json!({})).set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .mount(&partner)
        .await;
    expect_call("POST", route)
        .respond_with(ok(json!({})))
        .mount(&partner)
        .await;

    let app = spawn_app_delivering_to(&partner.uri()).await;
    let order = app
        .queue_calls(Some(42), "ada@example.com", &[("pause", Value::Null)])
        .await;
    let started = std::time::Instant::now();
    app.deliver_all().await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(
        app.call_states(order).await,
        [("pause".into(), "succeeded".into(), 4)]
    );
    assert_eq!(
        app.attempt_outcomes(order).await,
        [
            ("retry".into(), Some(500)),
            ("retry".into(), Some(503)),
            ("retry".into(), None),
            ("succeeded".into(), Some(200))
        ]
    );
    let errors: Vec<Option<String>> = sqlx::query_scalar("SELECT error FROM attempts ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        errors[2].as_deref().unwrap().contains("timed out")
            || errors[2].as_deref().unwrap().contains("timeout"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_partner_is_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let app = spawn_app_delivering_to(&format!("http://{address}")).await;
    let order = app
        .queue_calls(Some(42), "ada@example.com", &[("pause", Value::Null)])
        .await;
    app.worker().deliver_due().await.unwrap();
    let (_, status, refused_tries) = app.call_states(order).await.remove(0);
    assert_eq!(status, "pending");
    let errors: Vec<String> = sqlx::query_scalar("SELECT error FROM attempts")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(errors.len(), refused_tries as usize);
    assert!(
        errors.iter().all(|e| e.to_lowercase().contains("connect")),
        "{errors:?}"
    );

    let listener = std::net::TcpListener::bind(address).unwrap();
    let partner = MockServer::builder().listener(listener).start().await;
    expect_call("POST", "/partner/workspace/42/pause")
        .respond_with(ok(json!({})))
        .expect(1)
        .mount(&partner)
        .await;
    app.deliver_all().await;
    assert_eq!(
        app.call_states(order).await,
        [("pause".into(), "succeeded".into(), refused_tries + 1)]
    );
}

#[tokio::test]
async fn a_422_is_dead_after_one_attempt_and_the_later_calls_never_run() {
    let partner = MockServer::start().await;
    expect_call("POST", "/partner/workspace/42/change-plan")
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"message": "The selected plan is invalid."})),
        )
        .expect(1)
        .mount(&partner)
        .await;
    expect_call("POST", "/partner/workspace/42/pause")
        .respond_with(ok(json!({})))
        .expect(0)
        .mount(&partner)
        .await;
    let app = spawn_app_delivering_to(&partner.uri()).await;
    app.expect_dead_calls();
    app.expect_unfinished_calls();
    let order = app
        .queue_calls(
            Some(42),
            "ada@example.com",
            &[
                ("change-plan", json!({"plan": "nope", "auto_renew": "yes"})),
                ("pause", Value::Null),
            ],
        )
        .await;
    app.deliver_all().await;
    for _ in 0..3 {
        app.worker().deliver_due().await.unwrap();
    }
    assert_eq!(
        app.call_states(order).await,
        [
            ("change-plan".into(), "dead".into(), 1),
            ("pause".into(), "pending".into(), 0)
        ]
    );
    let (status, attention) = app.order_status(Some(order)).await;
    assert_eq!(status, "needs_attention");
    assert!(attention.unwrap().contains("The selected plan is invalid."));
}

#[tokio::test]
async fn lack_of_partner_credit_holds_the_call_until_the_partner_tops_up() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    sandbox.set_credit(0.0);
    let app = spawn_app_delivering_to(&base).await;
    let create = json!({"email": "ada@example.com", "name": "Ada", "team_name": "Ada's team", "require_email_verification": "no"});
    let order = app
        .queue_calls(
            None,
            "ada@example.com",
            &[
                ("create", create),
                (
                    "change-plan",
                    json!({"plan": "business", "auto_renew": "yes"}),
                ),
            ],
        )
        .await;
    app.deliver_all().await;
    app.worker().deliver_due().await.unwrap();
    let states = app.call_states(order).await;
    assert_eq!(states[0], ("create".into(), "succeeded".into(), 1));
    assert_eq!(
        states[1],
        ("change-plan".into(), "held".into(), 0),
        "a hold spends no attempt"
    );
    let (status, _) = app.order_status(Some(order)).await;
    assert_eq!(status, "needs_attention");

    sandbox.set_credit(1000.0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.deliver_all().await;
    assert_eq!(
        app.call_states(order).await[1],
        ("change-plan".into(), "succeeded".into(), 1)
    );
    let (status, _) = app.order_status(Some(order)).await;
    assert_eq!(status, "active", "the order completes by itself");
    assert_eq!(sandbox.workspaces()[0].plan, "business");
}

#[tokio::test]
async fn a_create_or_top_up_that_applied_then_timed_out_happens_once() {
    let (base, sandbox) = spawn_sandbox(Faults {
        apply_then_timeout_rate: 1.0,
        timeout_ms: 1500,
        ..Faults::default()
    })
    .await;
    let app = spawn_app_delivering_to(&base).await;
    let create = json!({"email": "ada@example.com", "name": "Ada", "team_name": "Ada's team", "require_email_verification": "no"});
    let order = app
        .queue_calls(
            None,
            "ada@example.com",
            &[
                ("create", create),
                ("topup-points", json!({"points": 100, "note": "sale"})),
            ],
        )
        .await;
    // First tries: both applied, both timed out (the answer came after the client gave up).
    app.worker().deliver_due().await.unwrap();
    sandbox.set_faults(Faults::default());
    app.deliver_all().await;
    // The top-up was tried (and timed out) only once the create was settled.
    let workspaces = sandbox.workspaces();
    assert_eq!(workspaces.len(), 1, "one sale, one workspace");
    let outcomes = app.attempt_outcomes(order).await;
    assert_eq!(outcomes.first().unwrap().0, "retry");
    assert!(
        outcomes
            .iter()
            .any(|(outcome, _)| outcome == "already_applied"),
        "{outcomes:?}"
    );
    let workspace: Option<i64> =
        sqlx::query_scalar("SELECT workspace_id FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(workspace, Some(workspaces[0].id as i64));

    // Now the top-up, applied then timed out on its first try.
    sandbox.set_faults(Faults {
        apply_then_timeout_rate: 1.0,
        timeout_ms: 1500,
        ..Faults::default()
    });
    let topup = app
        .queue_calls(
            workspace,
            "ada@example.com",
            &[("topup-points", json!({"points": 100, "note": "pack"}))],
        )
        .await;
    app.worker().deliver_due().await.unwrap();
    sandbox.set_faults(Faults::default());
    app.deliver_all().await;
    assert_eq!(
        sandbox.workspaces()[0].points,
        200.0,
        "each top-up applied exactly once"
    );
    let outcomes = app.attempt_outcomes(topup).await;
    assert_eq!(
        outcomes.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(),
        ["retry", "already_applied"]
    );
}

fn create_body(email: &str) -> Value {
    json!({"email": email, "name": "Buyer", "team_name": "Team", "require_email_verification": "no"})
}

/// `orders` orders of the same five calls, one buyer each.
async fn queue_orders(app: &TestApp, orders: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..orders {
        let email = format!("buyer{n}@example.com");
        let calls = [
            ("create", create_body(&email)),
            (
                "change-plan",
                json!({"plan": "business", "auto_renew": "yes"}),
            ),
            ("add-addon", json!({"addon": "bot", "qty": 1})),
            ("topup-points", json!({"points": 10, "note": "pack"})),
            ("pause", Value::Null),
        ];
        ids.push(app.queue_calls(None, &email, &calls).await);
    }
    ids
}

/// Each workspace's writes, as the sandbox received them, named by kind.
fn writes_per_workspace(
    sandbox: &uchat_billing::sandbox::SandboxHandle,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let owner: std::collections::HashMap<u64, String> = sandbox
        .workspaces()
        .into_iter()
        .map(|w| (w.id, w.owner_email))
        .collect();
    let mut writes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for request in sandbox.requests().iter().filter(|r| r.method != "GET") {
        let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        let (email, kind) = match segments.as_slice() {
            ["partner", "workspace", "create"] => (
                request.json()["email"].as_str().unwrap().to_owned(),
                "create",
            ),
            ["partner", "workspace", id, kind] => {
                (owner[&id.parse::<u64>().unwrap()].clone(), *kind)
            }
            other => panic!("unexpected write {other:?}"),
        };
        writes.entry(email).or_default().push(kind.to_owned());
    }
    writes
}

#[tokio::test]
async fn each_order_reaches_the_partner_in_plan_order_while_orders_run_in_parallel() {
    let (base, sandbox) = spawn_sandbox(Faults {
        latency_jitter_ms: 15,
        ..Faults::default()
    })
    .await;
    let app = spawn_app_delivering_to(&base).await;
    queue_orders(&app, 200).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(app.worker().clone().run(stopped));
    wait_until_all_delivered(&app.db, Duration::from_secs(120)).await;
    stop.send(true).unwrap();
    worker.await.unwrap();

    let writes = writes_per_workspace(&sandbox);
    assert_eq!(writes.len(), 200);
    for (email, kinds) in &writes {
        assert_eq!(
            kinds,
            &[
                "create",
                "change-plan",
                "add-addon",
                "topup-points",
                "pause"
            ],
            "{email}"
        );
    }
    // Orders overlapped: some order's first try started before another's last one ended.
    let overlapping: i64 = sqlx::query_scalar(
        "WITH spans AS (
             SELECT c.order_id, min(a.started_at) AS first, max(a.started_at + a.duration_ms * interval '1 ms') AS last
             FROM attempts a JOIN partner_calls c ON c.id = a.call_id GROUP BY c.order_id)
         SELECT count(*) FROM spans x JOIN spans y ON x.order_id < y.order_id AND x.first < y.last AND y.first < x.last",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(overlapping > 0, "orders ran one after another");
}

#[tokio::test]
async fn a_worker_killed_mid_call_loses_and_doubles_nothing() {
    let (base, sandbox) = spawn_sandbox(Faults {
        latency_ms: 150,
        ..Faults::default()
    })
    .await;
    let app = spawn_app_delivering_to(&base).await;
    queue_orders(&app, 20).await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let crashed = tokio::spawn(app.worker().clone().run(stopped));
    tokio::time::sleep(Duration::from_millis(400)).await;
    crashed.abort();
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM partner_calls WHERE status = 'running'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(running > 0, "the crash left calls mid-flight");

    // Another worker takes the calls back once their leases expire, and finishes.
    app.deliver_all().await;
    wait_until_all_delivered(&app.db, Duration::from_secs(60)).await;
    let workspaces = sandbox.workspaces();
    assert_eq!(workspaces.len(), 20, "one workspace per order");
    for workspace in &workspaces {
        assert_eq!(
            workspace.points, 10.0,
            "{}: one top-up",
            workspace.owner_email
        );
        assert_eq!(
            workspace.addons.get("bot"),
            Some(&1),
            "{}: one add-on",
            workspace.owner_email
        );
    }
}

#[tokio::test]
async fn two_worker_processes_never_run_the_same_call() {
    let (base, sandbox) = spawn_sandbox(Faults {
        latency_jitter_ms: 10,
        ..Faults::default()
    })
    .await;
    let app = spawn_app_delivering_to(&base).await;
    queue_orders(&app, 40).await;
    let url = &app.database.as_ref().unwrap().url;
    let workers: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_uchat-billing"))
                .arg("worker")
                .env_clear()
                .env("DATABASE_URL", url)
                .env("UCHAT_API_BASE", &base)
                .env("UCHAT_API_TOKEN", PARTNER_TOKEN)
                .env("UCHAT_TIMEOUT_SECS", "5")
                .env("DELIVERY_CONCURRENCY", "4")
                .env("RUST_LOG", "warn")
                .spawn()
                .unwrap()
        })
        .collect();
    wait_until_all_delivered(&app.db, Duration::from_secs(120)).await;
    for mut worker in workers {
        std::process::Command::new("kill")
            .args(["-TERM", &worker.id().to_string()])
            .status()
            .unwrap();
        assert!(worker.wait().unwrap().success());
    }
    let tries: Vec<i64> = sqlx::query_scalar("SELECT count(*) FROM attempts GROUP BY call_id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(tries.len(), 200);
    assert!(tries.iter().all(|&n| n == 1), "a call was tried twice");
    let writes = writes_per_workspace(&sandbox);
    assert_eq!(
        writes.values().map(Vec::len).sum::<usize>(),
        200,
        "each call reached the partner once"
    );
}

/// `create`'s body for Ada, as the planner stores it.
fn adas_create() -> Value {
    json!({"email": "ada@example.com", "name": "Ada", "team_name": "Ada's team", "require_email_verification": "no"})
}

/// A page of `GET /partner/workspaces` with these items.
fn workspace_list(items: Value) -> ResponseTemplate {
    let total = items.as_array().map_or(0, Vec::len);
    ResponseTemplate::new(200).set_body_json(json!({
        "data": items, "meta": {"current_page": 1, "last_page": 1, "total": total}
    }))
}

/// The sandbox's requests, as `METHOD path` without the query.
fn requests_made(sandbox: &uchat_billing::sandbox::SandboxHandle) -> Vec<String> {
    sandbox
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
        .collect()
}

/// A fake UChat that fails the test if the owner's workspaces are listed: a create's
/// first try must not look.
async fn partner_never_asked_for_workspaces() -> MockServer {
    let partner = MockServer::start().await;
    expect_call("GET", "/partner/workspaces")
        .respond_with(empty_workspace_list())
        .expect(0)
        .mount(&partner)
        .await;
    partner
}

#[tokio::test]
async fn a_creates_first_try_makes_only_the_create() {
    let partner = partner_never_asked_for_workspaces().await;
    expect_call("POST", "/partner/workspace/create")
        .respond_with(ok(json!({"id": 77})))
        .expect(1)
        .mount(&partner)
        .await;
    let app = spawn_app_delivering_to(&partner.uri()).await;
    let order = app
        .queue_calls(None, "ada@example.com", &[("create", adas_create())])
        .await;
    app.deliver_all().await;
    assert_eq!(partner.received_requests().await.unwrap().len(), 1);
    assert_eq!(
        app.call_states(order).await,
        [("create".into(), "succeeded".into(), 1)]
    );
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn an_existing_users_first_try_makes_only_the_two_creates() {
    let partner = partner_never_asked_for_workspaces().await;
    expect_call("POST", "/partner/workspace/create")
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "The given data was invalid.", "errors": {"email": ["The email has already been taken."]}
        })))
        .expect(1)
        .mount(&partner)
        .await;
    expect_call("POST", "/partner/workspace/create-for-existing-user")
        .respond_with(ok(json!({"id": 88})))
        .expect(1)
        .mount(&partner)
        .await;
    let app = spawn_app_delivering_to(&partner.uri()).await;
    let order = app
        .queue_calls(None, "ada@example.com", &[("create", adas_create())])
        .await;
    app.deliver_all().await;
    assert_eq!(
        app.call_states(order).await,
        [("create-for-existing-user".into(), "succeeded".into(), 1)]
    );
}

#[tokio::test]
async fn a_create_applied_then_timed_out_is_found_by_the_repeat_alone() {
    let (base, sandbox) = spawn_sandbox(Faults {
        apply_then_timeout_rate: 1.0,
        timeout_ms: 1500,
        ..Faults::default()
    })
    .await;
    let app = spawn_app_delivering_to(&base).await;
    let order = app
        .queue_calls(None, "ada@example.com", &[("create", adas_create())])
        .await;
    app.worker().deliver_due().await.unwrap();
    sandbox.set_faults(Faults::default());
    app.deliver_all().await;

    let [made] = &sandbox.workspaces()[..] else {
        panic!("one workspace expected: {:?}", sandbox.workspaces())
    };
    // The first try sent the create alone; the look came only before the repeat, which
    // found the workspace and sent nothing.
    let requests = requests_made(&sandbox);
    assert_eq!(requests[0], "POST /partner/workspace/create");
    assert_eq!(requests[1], "GET /partner/workspaces");
    assert_eq!(
        requests.iter().filter(|r| r.starts_with("POST")).count(),
        1,
        "{requests:?}"
    );
    let outcomes = app.attempt_outcomes(order).await;
    assert_eq!(outcomes.first().unwrap().0, "retry");
    assert_eq!(outcomes.last().unwrap().0, "already_applied");
    let workspace: Option<i64> =
        sqlx::query_scalar("SELECT workspace_id FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(workspace, Some(made.id as i64));
}

#[tokio::test]
async fn a_create_for_an_existing_user_applied_then_lost_is_found_by_the_repeat() {
    let partner = MockServer::start().await;
    let before_the_first_try = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let listed = |id: i64, created_at: chrono::DateTime<chrono::Utc>| {
        json!({"id": id, "name": "Ada", "owner_email": "ADA@example.com",
               "team_name": "Ada's team", "created_at": created_at.to_rfc3339()})
    };
    expect_call("POST", "/partner/workspace/create")
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "The given data was invalid.", "errors": {"email": ["The email has already been taken."]}
        })))
        .expect(1)
        .mount(&partner)
        .await;
    // Made, but its answer comes after the client gave up.
    expect_call("POST", "/partner/workspace/create-for-existing-user")
        .respond_with(ok(json!({"id": 88})).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&partner)
        .await;
    // Ada's own workspace from before, and the one the first try made.
    expect_call("GET", "/partner/workspaces")
        .and(query_param("search", "ada@example.com"))
        .respond_with(workspace_list(json!([
            listed(5, before_the_first_try),
            listed(88, chrono::Utc::now())
        ])))
        .expect(1)
        .mount(&partner)
        .await;
    let app = spawn_app_delivering_to(&partner.uri()).await;
    let order = app
        .queue_calls(None, "ada@example.com", &[("create", adas_create())])
        .await;
    app.deliver_all().await;

    let paths: Vec<String> = partner
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "POST /partner/workspace/create",
            "POST /partner/workspace/create-for-existing-user",
            "GET /partner/workspaces"
        ]
    );
    assert_eq!(
        app.attempt_outcomes(order).await,
        [("retry".into(), None), ("already_applied".into(), None)]
    );
    let workspace: Option<i64> =
        sqlx::query_scalar("SELECT workspace_id FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(workspace, Some(88));
}

/// The migrations before `version`, copied to a directory of their own.
fn migrations_before(version: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for file in std::fs::read_dir(all).unwrap() {
        let file = file.unwrap();
        if file.file_name().to_string_lossy().as_ref() < version {
            std::fs::copy(file.path(), dir.join(file.file_name())).unwrap();
        }
    }
    dir
}

#[tokio::test]
async fn a_create_tried_before_the_upgrade_is_found_by_its_repeat_after_it() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let database = fresh_database().await;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database.url)
        .await
        .unwrap();
    let before = migrations_before("0013");
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&db)
        .await
        .unwrap();
    std::fs::remove_dir_all(before).unwrap();
    // Before the upgrade, a first try kept the owner's workspaces (none), sent the
    // create, and lost the answer.
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (email, status) VALUES ('ada@example.com', 'active') RETURNING id",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO partner_calls (order_id, position, kind, body, attempts, baseline)
         VALUES ($1, 1, 'create', $2, 1, '{\"workspace_ids\": []}')",
    )
    .bind(order)
    .bind(adas_create())
    .execute(&db)
    .await
    .unwrap();
    let mut sent = adas_create();
    sent["password"] = json!("first-password");
    let made = reqwest::Client::new()
        .post(format!("{base}/partner/workspace/create"))
        .bearer_auth(PARTNER_TOKEN)
        .json(&sent)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);

    sqlx::migrate!("./migrations").run(&db).await.unwrap();
    let delivery = delivery_to(&base);
    let worker = uchat_billing::delivery::Worker::new(
        db.clone(),
        delivery.partner,
        delivery.settings,
        Default::default(),
    );
    worker.deliver_due().await.unwrap();

    let [workspace] = &sandbox.workspaces()[..] else {
        panic!("one workspace expected: {:?}", sandbox.workspaces())
    };
    let (status, bound): (String, Option<i64>) = sqlx::query_as(
        "SELECT c.status, o.workspace_id FROM partner_calls c JOIN orders o ON o.id = c.order_id",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), bound),
        ("succeeded", Some(workspace.id as i64))
    );
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM attempts")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(outcome, "already_applied");
    db.close().await;
}

#[tokio::test]
async fn where_uchat_shows_no_creation_times_a_repeat_takes_the_owners_newest_workspace() {
    let partner = MockServer::start().await;
    // Made, but its answer comes after the client gave up.
    expect_call("POST", "/partner/workspace/create")
        .respond_with(ok(json!({"id": 88})).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&partner)
        .await;
    // As the contract lists them: no team name, no creation time.
    expect_call("GET", "/partner/workspaces")
        .respond_with(workspace_list(json!([
            {"id": 5, "name": "Ada", "owner_email": "ada@example.com"},
            {"id": 88, "name": "Ada", "owner_email": "ada@example.com"}
        ])))
        .expect(1)
        .mount(&partner)
        .await;
    let app = spawn_app_delivering_to(&partner.uri()).await;
    let order = app
        .queue_calls(None, "ada@example.com", &[("create", adas_create())])
        .await;
    app.deliver_all().await;
    let workspace: Option<i64> =
        sqlx::query_scalar("SELECT workspace_id FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(workspace, Some(88));
}
