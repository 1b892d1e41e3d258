//! The client against a wiremock server on loopback. Every mock of a call checks the
//! method, path, headers and exact body, and expects exactly one request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wiremock::matchers::{any, body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

use super::*;

const TOKEN: &str = "tok-s3cret-123";

fn client(server: &MockServer) -> PartnerClient {
    client_at(&server.uri(), Duration::from_secs(5))
}

fn client_at(base: &str, timeout: Duration) -> PartnerClient {
    PartnerClient::new(base, Secret::new(TOKEN), timeout).unwrap()
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "status": "ok" }))
}

/// Matches one request of ours: headers, method, path and the exact JSON body (or none).
fn call(m: &str, p: &str, body: Option<Value>) -> MockBuilder {
    let mock = Mock::given(method(m))
        .and(path(p))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
        .and(header("user-agent", USER_AGENT));
    match body {
        Some(body) => mock.and(body_json(body)),
        None => mock.and(|r: &Request| r.body.is_empty()),
    }
}

async fn expect_once(
    server: &MockServer,
    m: &str,
    p: &str,
    body: Option<Value>,
    reply: ResponseTemplate,
) {
    call(m, p, body)
        .respond_with(reply)
        .expect(1)
        .mount(server)
        .await;
}

#[test]
fn user_agent_names_the_service() {
    assert!(USER_AGENT.starts_with("uchat-billing/"));
}

#[tokio::test]
async fn every_kind_reaches_its_contract_method_path_and_body() {
    let server = MockServer::start().await;
    let plan = json!({ "plan": "business", "auto_renew": "yes" });
    let addon = json!({ "addon": "bot_user", "qty": 2 });
    let points = json!({ "points": 10, "note": "invoice in_1" });
    let create = json!({ "name": "Ann", "email": "ann@example.com",
                         "team_name": "Ann's team", "require_email_verification": "no" });
    let existing = json!({ "email": "ann@example.com", "team_name": "Ann's team" });
    let cases = vec![
        (
            CallKind::Create,
            None,
            "POST",
            "/partner/workspace/create",
            Some(create),
        ),
        (
            CallKind::CreateForExistingUser,
            None,
            "POST",
            "/partner/workspace/create-for-existing-user",
            Some(existing),
        ),
        (
            CallKind::ChangePlan,
            Some(42),
            "POST",
            "/partner/workspace/42/change-plan",
            Some(plan),
        ),
        (
            CallKind::AddAddon,
            Some(42),
            "POST",
            "/partner/workspace/42/add-addon",
            Some(addon.clone()),
        ),
        (
            CallKind::RemoveAddon,
            Some(42),
            "DELETE",
            "/partner/workspace/42/remove-addon",
            Some(addon),
        ),
        (
            CallKind::TopupPoints,
            Some(42),
            "POST",
            "/partner/workspace/42/topup-points",
            Some(points.clone()),
        ),
        (
            CallKind::DeductPoints,
            Some(42),
            "DELETE",
            "/partner/workspace/42/deduct-points",
            Some(points),
        ),
        (
            CallKind::Pause,
            Some(42),
            "POST",
            "/partner/workspace/42/pause",
            None,
        ),
        (
            CallKind::Active,
            Some(42),
            "POST",
            "/partner/workspace/42/active",
            None,
        ),
        (
            CallKind::EnableAutoRenew,
            Some(42),
            "POST",
            "/partner/workspace/42/enable-auto-renew",
            None,
        ),
        (
            CallKind::DisableAutoRenew,
            Some(42),
            "POST",
            "/partner/workspace/42/disable-auto-renew",
            None,
        ),
        (
            CallKind::Delete,
            Some(42),
            "DELETE",
            "/partner/workspace/42",
            None,
        ),
        (
            CallKind::InstallTemplate,
            Some(42),
            "POST",
            "/partner/workspace/42/install-template",
            Some(json!({ "template_ns": "tpl_1" })),
        ),
        (
            CallKind::UpdateExtraBillingInformation,
            Some(42),
            "POST",
            "/partner/workspace/42/update-extra-billing-information",
            Some(json!({ "extra_billing_information": "Stripe customer cus_1" })),
        ),
        (
            CallKind::InviteMember,
            Some(42),
            "POST",
            "/partner/workspace/42/invite-member",
            Some(json!({ "email": "bob@example.com", "role": "agent" })),
        ),
        (
            CallKind::RemoveMember,
            Some(42),
            "DELETE",
            "/partner/workspace/42/remove-member",
            Some(json!({ "email": "bob@example.com" })),
        ),
    ];
    let client = client(&server);
    for (kind, id, m, p, body) in cases {
        expect_once(&server, m, p, body.clone(), ok()).await;
        // Kinds without a body drop whatever the stored row holds.
        let stored = body.unwrap_or_else(|| json!({ "stale": true }));
        let call = Call::from_stored(kind, stored).unwrap();
        let reply = client.execute(&call, id).await;
        assert_eq!(reply.map(|r| r.status), Ok(200), "kind {kind}");
    }
}

#[tokio::test]
async fn unknown_kinds_bad_bodies_and_missing_ids_are_refused_without_a_request() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ok())
        .expect(0)
        .mount(&server)
        .await;
    let client = client(&server);
    assert!(serde_json::from_value::<CallKind>(json!("explode")).is_err());
    let bad_body = Call::from_stored(CallKind::AddAddon, json!({ "addon": "bot", "qty": "2" }));
    assert!(bad_body.is_err(), "{bad_body:?}");
    let no_id = client.execute(&Call::Pause, None).await.unwrap_err();
    assert!(
        matches!(no_id, PartnerError::Rejected { status: None, .. }),
        "{no_id:?}"
    );
    assert!(no_id.message().contains("needs a workspace id"), "{no_id}");
}

#[test]
fn kinds_are_stored_and_routed_by_their_contract_names() {
    for kind in CallKind::ALL {
        let name = kind.to_string();
        assert_eq!(json!(kind), json!(name));
        assert_eq!(kind.route().is_some(), CallKind::WRITES.contains(&kind));
    }
    for kind in CallKind::WRITES {
        let path = kind.route().unwrap().path;
        assert!(
            path.ends_with(&kind.to_string()) || kind == CallKind::Delete,
            "{kind}"
        );
    }
    assert_eq!(
        CallKind::CreateForExistingUser.to_string(),
        "create-for-existing-user"
    );
    assert_eq!(CallKind::Active.to_string(), "active");
}

#[test]
fn existing_user_body_keeps_only_its_fields() {
    let create = json!({"email": "a@b.c", "name": "A", "team_name": "T", "require_email_verification": "no", "trial_days": 7});
    let Ok(Call::Create(new)) = Call::from_stored(CallKind::Create, create) else {
        panic!("a create body reads as a create");
    };
    assert_eq!(
        Call::CreateForExistingUser(new.for_existing_user()).body(),
        json!({"email": "a@b.c", "team_name": "T", "trial_days": 7})
    );
}

#[tokio::test]
async fn typed_mutations_send_the_contract_bodies() {
    let server = MockServer::start().await;
    let created = ResponseTemplate::new(200)
        .set_body_json(json!({ "status": "ok", "data": { "id": "101", "name": "Ann's team" } }));
    expect_once(
        &server,
        "POST",
        "/partner/workspace/create",
        Some(
            json!({ "name": "Ann", "email": "ann@example.com", "password": "pw",
                     "team_name": "Ann's team", "require_email_verification": "yes",
                     "template_ns": "tpl_1", "trial_days": 0 }),
        ),
        created,
    )
    .await;
    expect_once(
        &server,
        "POST",
        "/partner/workspace/create-for-existing-user",
        Some(json!({ "email": "bob@example.com", "team_name": "Bob", "trial_days": 7 })),
        ResponseTemplate::new(200).set_body_json(json!({ "status": "ok", "data": { "id": 102 } })),
    )
    .await;
    let w = "/partner/workspace/7";
    expect_once(
        &server,
        "POST",
        &format!("{w}/change-plan"),
        Some(json!({ "plan": "free", "auto_renew": "no" })),
        ok(),
    )
    .await;
    expect_once(
        &server,
        "POST",
        &format!("{w}/add-addon"),
        Some(json!({ "addon": "member", "qty": 3 })),
        ok(),
    )
    .await;
    expect_once(
        &server,
        "DELETE",
        &format!("{w}/remove-addon"),
        Some(json!({ "addon": "bot", "qty": 1 })),
        ok(),
    )
    .await;
    expect_once(
        &server,
        "POST",
        &format!("{w}/topup-points"),
        Some(json!({ "points": 12, "note": "top-up" })),
        ok(),
    )
    .await;
    expect_once(
        &server,
        "DELETE",
        &format!("{w}/deduct-points"),
        Some(json!({ "points": 5, "note": "refund re_1" })),
        ok(),
    )
    .await;
    for action in ["pause", "active", "enable-auto-renew", "disable-auto-renew"] {
        expect_once(&server, "POST", &format!("{w}/{action}"), None, ok()).await;
    }
    expect_once(&server, "DELETE", w, None, ok()).await;

    let c = client(&server);
    let new = NewWorkspace {
        name: "Ann".into(),
        email: "ann@example.com".into(),
        password: Some(Secret::new("pw")),
        team_name: "Ann's team".into(),
        require_email_verification: true,
        template_ns: Some("tpl_1".into()),
        trial_days: Some(0),
    };
    assert!(!format!("{new:?}").contains("pw"));
    let created = c.execute(&Call::Create(new), None).await.unwrap();
    assert_eq!(created.workspace_id(), Some(101));
    let existing = ExistingUserWorkspace {
        email: "bob@example.com".into(),
        team_name: "Bob".into(),
        template_ns: None,
        trial_days: Some(7),
    };
    let created = c
        .execute(&Call::CreateForExistingUser(existing), None)
        .await
        .unwrap();
    assert_eq!(created.workspace_id(), Some(102));
    for call in [
        Call::ChangePlan {
            plan: "free".into(),
            auto_renew: false,
        },
        Call::AddAddon {
            addon: "member".into(),
            qty: 3,
        },
        Call::RemoveAddon {
            addon: "bot".into(),
            qty: 1,
        },
        Call::TopupPoints {
            points: 12,
            note: "top-up".into(),
        },
        Call::DeductPoints {
            points: 5,
            note: "refund re_1".into(),
        },
        Call::Pause,
        Call::Active,
        Call::EnableAutoRenew,
        Call::DisableAutoRenew,
        Call::Delete,
    ] {
        c.execute(&call, Some(7)).await.unwrap();
    }
}

#[tokio::test]
async fn get_workspace_reads_numeric_strings_and_flags() {
    let server = MockServer::start().await;
    let data = json!({ "id": "42", "name": "Ann's team", "plan": "business",
        "is_paused": "1", "auto_renew": 0, "owner_email": "ann@example.com",
        "points": "12.50", "addon_bot": "2", "addon_member": 1, "addon_bot_user": null,
        "addon_lists": "4", "billing_end_at": "2025-01-31 00:00:00" });
    expect_once(
        &server,
        "GET",
        "/partner/workspace/42",
        None,
        ResponseTemplate::new(200).set_body_json(json!({ "status": "ok", "data": data })),
    )
    .await;

    let ws = client(&server).get_workspace(42).await.unwrap();
    assert_eq!(
        (ws.id, ws.plan.as_str(), ws.is_paused, ws.auto_renew),
        (42, "business", true, false)
    );
    assert_eq!(
        (ws.points, ws.owner_email.as_str()),
        (12.5, "ann@example.com")
    );
    assert_eq!(ws.billing_end_at.as_deref(), Some("2025-01-31 00:00:00"));
    assert_eq!(ws.billing_start_at, None);
    let qty = |a| ws.addon_qty(a);
    assert_eq!(
        (
            qty("bot"),
            qty("member"),
            qty("bot_user"),
            qty("addon_lists"),
            qty("timeout")
        ),
        (2, 1, 0, 4, 0)
    );
}

#[test]
fn a_listed_workspace_shows_its_team_and_creation_time_when_uchat_gives_them() {
    let listed = |fields: Value| serde_json::from_value::<WorkspaceInfo>(fields).unwrap();
    let shown = listed(json!({ "id": 7, "team_name": "Ann's team",
        "created_at": "2024-05-01T09:30:00.250000Z" }));
    let at = |time: &str| DateTime::parse_from_rfc3339(time).unwrap().to_utc();
    assert_eq!(shown.team_name.as_deref(), Some("Ann's team"));
    assert_eq!(shown.created(), Some(at("2024-05-01T09:30:00.25Z")));
    let elsewhere = listed(json!({ "created_at": "2024-05-01T19:30:00+10:00" }));
    assert_eq!(elsewhere.created(), Some(at("2024-05-01T09:30:00Z")));

    // Neither is in the contract: absent, null or unreadable, each is unknown.
    for unknown in [
        json!({ "id": 7 }),
        json!({ "id": 7, "team_name": null, "created_at": null }),
        // Without an offset the zone is a guess: hours off, read in the wrong one.
        json!({ "id": 7, "created_at": "2024-05-01 09:30:00" }),
        json!({ "id": 7, "created_at": "yesterday" }),
    ] {
        let workspace = listed(unknown.clone());
        assert_eq!(workspace.created(), None, "{unknown}");
    }
    assert_eq!(listed(json!({ "id": 7 })).team_name, None);
}

#[tokio::test]
async fn lists_plans_addons_and_credit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/partner/workspaces"))
        .and(query_param("page", "2"))
        .and(query_param("search", "ann@example.com"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "id": 1, "is_paused": true }, { "id": "2", "owner_email": "ann@example.com" }],
            "meta": { "current_page": 2, "last_page": "3", "total": 5, "from": 3, "to": 4 } })))
        .expect(1)
        .mount(&server)
        .await;
    let items = json!({ "status": "ok", "data": [{ "id": "business", "name": "Business", "price": "19.00" }] });
    expect_once(
        &server,
        "GET",
        "/partner/plans",
        None,
        ResponseTemplate::new(200).set_body_json(&items),
    )
    .await;
    expect_once(
        &server,
        "GET",
        "/partner/addons",
        None,
        ResponseTemplate::new(200).set_body_json(&items),
    )
    .await;
    expect_once(
        &server,
        "GET",
        "/partner/credit-balance",
        None,
        ResponseTemplate::new(200).set_body_json(json!({ "credit": "250.75", "status": "ok" })),
    )
    .await;

    let c = client(&server);
    let page = c.list_workspaces(2, Some("ann@example.com")).await.unwrap();
    assert_eq!(page.data.iter().map(|w| w.id).collect::<Vec<_>>(), [1, 2]);
    assert!(page.data[0].is_paused);
    let meta = PageMeta {
        current_page: 2,
        last_page: 3,
        total: 5,
        from: Some(3),
        to: Some(4),
    };
    assert_eq!(page.meta, meta);
    let plans = c.plans().await.unwrap();
    assert_eq!((plans[0].id.as_str(), plans[0].price), ("business", 19.0));
    assert_eq!(c.addons().await.unwrap().len(), 1);
    assert_eq!(c.credit_balance().await, Ok(250.75));
}

#[tokio::test]
async fn lists_clients_templates_flows_and_members_leniently() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/partner/clients"))
        .and(query_param("page", "1"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "id": "7", "name": null, "email": "ann@example.com", "country": "AU" }],
            "meta": { "current_page": 1, "last_page": 1, "total": "1" } })))
        .expect(1)
        .mount(&server)
        .await;
    let answer = |data: Value| {
        ResponseTemplate::new(200).set_body_json(json!({ "status": "ok", "data": data }))
    };
    let templates = answer(json!([{ "id": "tpl_1", "name": "Shop" }]));
    expect_once(&server, "GET", "/partner/templates", None, templates).await;
    let flows = answer(json!([{ "ns": "f1", "name": "Welcome", "folder_id": 3 }]));
    let w = "/partner/workspace/42";
    expect_once(&server, "GET", &format!("{w}/list-flows"), None, flows).await;
    let members = answer(json!([{ "email": "ann@example.com", "role": "owner", "id": 1 }]));
    expect_once(&server, "GET", &format!("{w}/members"), None, members).await;

    let c = client(&server);
    let clients = c.list_clients(1, None).await.unwrap();
    assert_eq!(
        (
            clients.data[0].id,
            clients.data[0].name.as_str(),
            clients.meta.total
        ),
        (7, "", 1)
    );
    assert_eq!(clients.data[0].extra["country"], "AU");
    assert_eq!(c.templates().await.unwrap()[0].id, "tpl_1");
    let flows = c.list_flows(42).await.unwrap();
    assert_eq!(
        (flows[0].ns.as_str(), flows[0].name.as_str()),
        ("f1", "Welcome")
    );
    let members = c.members(42).await.unwrap();
    assert_eq!(members[0].role, "owner");
}

/// Pauses workspace 42 against a server that answers `reply`.
async fn outcome(reply: ResponseTemplate) -> Result<Reply, PartnerError> {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(reply).mount(&server).await;
    client(&server).execute(&Call::Pause, Some(42)).await
}

fn json_reply(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

#[tokio::test]
async fn status_ok_and_empty_bodies_succeed() {
    let reply = outcome(json_reply(
        200,
        json!({ "status": "ok", "data": { "id": 1 } }),
    ))
    .await
    .unwrap();
    assert_eq!((reply.status, reply.workspace_id()), (200, Some(1)));
    assert_eq!(reply.raw_excerpt, r#"{"data":{"id":1},"status":"ok"}"#);
    assert_eq!(
        outcome(ResponseTemplate::new(200)).await.unwrap().body,
        Value::Null
    );
}

#[tokio::test]
async fn status_error_in_a_200_is_rejected_with_its_message() {
    let err = outcome(json_reply(
        200,
        json!({ "status": "error", "message": "Workspace is locked" }),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PartnerError::Rejected { status: Some(200), message, .. } if message == "Workspace is locked"),
        "{err:?}"
    );
    let html = outcome(ResponseTemplate::new(200).set_body_string("<html>login</html>")).await;
    assert!(
        matches!(
            html,
            Err(PartnerError::Rejected {
                status: Some(200),
                ..
            })
        ),
        "{html:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retryable_and_ambiguous_with_retry_after() {
    let err = outcome(json_reply(500, json!({ "message": "Server Error" })))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PartnerError::Retryable {
            status: Some(500),
            message: "Server Error".into(),
            excerpt: Some(r#"{"message":"Server Error"}"#.into()),
            retry_after: None,
            ambiguous: true,
        }
    );
    let err = outcome(ResponseTemplate::new(503).insert_header("Retry-After", "7"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PartnerError::Retryable { status: Some(503), retry_after: Some(d), ambiguous: true, .. } if d == Duration::from_secs(7)),
        "{err:?}"
    );
}

#[tokio::test]
async fn throttling_is_retryable_and_not_ambiguous() {
    for status in [429, 408] {
        let reply = json_reply(status, json!({ "message": "Too Many Attempts." }))
            .insert_header("Retry-After", "30");
        let err = outcome(reply).await.unwrap_err();
        assert!(
            matches!(&err, PartnerError::Retryable { retry_after: Some(d), ambiguous: false, .. } if *d == Duration::from_secs(30)),
            "{err:?}"
        );
        assert_eq!(err.status(), Some(status));
    }
}

#[tokio::test]
async fn a_timeout_is_retryable_and_ambiguous() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ok().set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let client = client_at(&server.uri(), Duration::from_millis(200));
    let err = client.execute(&Call::Pause, Some(42)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PartnerError::Retryable {
                status: None,
                ambiguous: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_refused_connection_is_retryable_and_not_ambiguous() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_at(&format!("http://{addr}/api/"), Duration::from_secs(2));
    let plan = Call::ChangePlan {
        plan: "business".into(),
        auto_renew: true,
    };
    let err = client.execute(&plan, Some(42)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PartnerError::Retryable {
                status: None,
                ambiguous: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?} {client:?}").contains(TOKEN));
}

#[tokio::test]
async fn client_errors_are_rejected() {
    let validation = json!({ "message": "The given data was invalid.", "errors": { "plan": ["The selected plan is invalid."] } });
    let err = outcome(json_reply(422, validation)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            PartnerError::Rejected {
                status: Some(422),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        "The given data was invalid. (The selected plan is invalid.)"
    );
    for status in [401, 403, 404] {
        let err = outcome(ResponseTemplate::new(status)).await.unwrap_err();
        assert!(
            matches!(err, PartnerError::Rejected { status: Some(s), .. } if s == status),
            "{err:?}"
        );
    }
    let redirect = outcome(ResponseTemplate::new(302).insert_header("Location", "/login")).await;
    assert!(
        matches!(
            redirect,
            Err(PartnerError::Rejected {
                status: Some(302),
                ..
            })
        ),
        "{redirect:?}"
    );
}

#[tokio::test]
async fn an_email_with_an_account_is_an_existing_account() {
    let server = MockServer::start().await;
    let refusals = [
        json_reply(
            422,
            json!({ "message": "The email has already been taken.",
                                "errors": { "email": ["The email has already been taken."] } }),
        ),
        json_reply(
            400,
            json!({ "message": "User with this email already exists" }),
        ),
        json_reply(
            200,
            json!({ "status": "error", "message": "Email already registered" }),
        ),
    ];
    let create = Call::Create(NewWorkspace {
        name: "Ann".into(),
        email: "ann@example.com".into(),
        password: Some(Secret::new("pw")),
        team_name: "Ann".into(),
        require_email_verification: false,
        template_ns: None,
        trial_days: None,
    });
    let client = client(&server);
    for refusal in refusals {
        server.reset().await;
        Mock::given(any())
            .respond_with(refusal)
            .mount(&server)
            .await;
        let err = client.execute(&create, None).await.unwrap_err();
        assert!(
            matches!(err, PartnerError::ExistingAccount { .. }),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_lack_of_credit_is_insufficient_credit() {
    let refusals = [
        json_reply(400, json!({ "message": "no_enough_credit" })),
        json_reply(
            422,
            json!({ "message": "Not enough credit to upgrade this workspace" }),
        ),
        json_reply(
            200,
            json!({ "status": "error", "message": "Insufficient credit" }),
        ),
        json_reply(
            500,
            json!({ "status": "error", "error": "no_enough_credit" }),
        ),
        ResponseTemplate::new(402),
    ];
    for refusal in refusals {
        let err = outcome(refusal).await.unwrap_err();
        assert!(
            matches!(err, PartnerError::InsufficientCredit { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn token_and_build_errors_never_show_the_token() {
    assert_eq!(format!("{:?}", Secret::new(TOKEN)), "Secret(***)");
    let client = client_at("http://127.0.0.1:1/api", Duration::from_secs(1));
    assert!(!format!("{client:?}").contains(TOKEN));
    let bad =
        PartnerClient::new("http://x", Secret::new("a\nb"), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(bad, BuildError::Token), "{bad}");
    let bad =
        PartnerClient::new("not a url", Secret::new(TOKEN), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(bad, BuildError::BaseUrl(_)), "{bad}");
}

#[test]
fn excerpts_stop_at_4_kib_on_a_char_boundary() {
    let long = "é".repeat(3000);
    let cut = error::excerpt(&long);
    assert!(cut.len() <= EXCERPT_BYTES && cut.len() >= EXCERPT_BYTES - 1);
    assert!(long.starts_with(&cut));
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", UNIX_EPOCH),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after(
            "Thu, 29 Feb 2024 00:00:10 GMT",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_164_800)
        ),
        Some(Duration::from_secs(10))
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-3", now), None);
}
