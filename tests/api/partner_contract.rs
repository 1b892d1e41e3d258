//! The UChat Partner API contract (`docs/uchat-partner-api.md`), one test per endpoint,
//! named after it: the client sends the documented method, path and body (as the
//! sandbox recorded them), and reads the sandbox's answer. The three webhook endpoints
//! are tested with the UChat webhooks.

use crate::common;

use common::{spawn_sandbox, PARTNER_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;
use uchat_billing::partner::{Call, ExistingUserWorkspace, NewWorkspace, PartnerClient};
use uchat_billing::sandbox::{Faults, SandboxHandle};
use uchat_billing::secret::Secret;

struct Partner {
    client: PartnerClient,
    sandbox: SandboxHandle,
}

async fn partner() -> Partner {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let client =
        PartnerClient::new(&base, Secret::new(PARTNER_TOKEN), Duration::from_secs(5)).unwrap();
    Partner { client, sandbox }
}

fn new_workspace(email: &str) -> NewWorkspace {
    NewWorkspace {
        name: "Ann".into(),
        email: email.into(),
        team_name: "Ann's team".into(),
        require_email_verification: false,
        template_ns: None,
        trial_days: None,
        password: Some(Secret::new("first-password")),
    }
}

impl Partner {
    /// A new workspace of `ann@example.com`, made through the client.
    async fn workspace(&self) -> i64 {
        let created = self
            .client
            .execute(&Call::Create(new_workspace("ann@example.com")), None)
            .await
            .unwrap();
        created.workspace_id().unwrap()
    }

    /// Sends `call` to workspace `id`, and checks it succeeded.
    async fn write(&self, id: i64, call: Call) {
        let reply = self.client.execute(&call, Some(id)).await;
        assert_eq!(reply.map(|r| r.status), Ok(200), "{call:?}");
    }

    /// The last request the sandbox received: method, path (with query) and JSON body
    /// (`Null` for none).
    fn last_request(&self) -> (String, String, Value) {
        let request = self.sandbox.requests().pop().expect("a request was made");
        (request.method.clone(), request.path.clone(), request.json())
    }

    fn expect_request(&self, method: &str, path: &str, body: Value) {
        assert_eq!(
            self.last_request(),
            (method.to_owned(), path.to_owned(), body)
        );
    }

    fn state(&self, id: i64) -> uchat_billing::sandbox::Workspace {
        self.sandbox
            .workspace(id as u64)
            .expect("the workspace exists")
    }
}

#[tokio::test]
async fn clients() {
    let partner = partner().await;
    partner.workspace().await;
    partner
        .client
        .execute(&Call::Create(new_workspace("bob@example.com")), None)
        .await
        .unwrap();

    let page = partner.client.list_clients(1, Some("bob@")).await.unwrap();
    partner.expect_request("GET", "/partner/clients?page=1&search=bob%40", Value::Null);
    let emails: Vec<&str> = page.data.iter().map(|c| c.email.as_str()).collect();
    assert_eq!(emails, ["bob@example.com"]);
    assert!(page.data[0].id > 0);
    assert_eq!((page.meta.total, page.meta.last_page), (1, 1));
}

#[tokio::test]
async fn workspaces() {
    let partner = partner().await;
    let id = partner.workspace().await;

    let page = partner.client.list_workspaces(1, None).await.unwrap();
    partner.expect_request("GET", "/partner/workspaces?page=1", Value::Null);
    assert_eq!(page.data.iter().map(|w| w.id).collect::<Vec<_>>(), [id]);
    assert_eq!(page.meta.total, 1);
}

/// Not in the contract (a guess), but what a create's repeat compares when UChat shows it.
#[tokio::test]
async fn workspaces_with_team_name_and_created_at() {
    let partner = partner().await;
    let before = chrono::Utc::now();
    let id = partner.workspace().await;
    let after = chrono::Utc::now();

    let page = partner
        .client
        .list_workspaces(1, Some("ann@example.com"))
        .await
        .unwrap();
    let [listed] = &page.data[..] else {
        panic!("one workspace expected: {page:?}")
    };
    assert_eq!(listed.id, id);
    assert_eq!(listed.team_name.as_deref(), Some("Ann's team"));
    let created = listed.created().expect("a time with its offset");
    assert!(before <= created && created <= after, "{created}");
    // Shown to the microsecond, as Laravel writes it.
    let kept = partner.state(id).created_at;
    assert_eq!(created, chrono::SubsecRound::trunc_subsecs(kept, 6));
}

#[tokio::test]
async fn workspace_create() {
    let partner = partner().await;
    let mut new = new_workspace("ann@example.com");
    new.template_ns = Some("tpl_support".into());
    new.trial_days = Some(7);

    let reply = partner
        .client
        .execute(&Call::Create(new), None)
        .await
        .unwrap();
    partner.expect_request(
        "POST",
        "/partner/workspace/create",
        json!({ "name": "Ann", "email": "ann@example.com", "password": "first-password",
                "team_name": "Ann's team", "require_email_verification": "no",
                "template_ns": "tpl_support", "trial_days": 7 }),
    );
    let id = reply.workspace_id().unwrap();
    let workspace = partner.state(id);
    assert_eq!(
        (workspace.plan.as_str(), workspace.flows.len()),
        ("trial", 3)
    );
}

#[tokio::test]
async fn workspace_create_for_existing_user() {
    let partner = partner().await;
    partner.workspace().await;
    let existing = ExistingUserWorkspace {
        email: "ann@example.com".into(),
        team_name: "Ann's second team".into(),
        template_ns: None,
        trial_days: Some(0),
    };

    let reply = partner
        .client
        .execute(&Call::CreateForExistingUser(existing), None)
        .await
        .unwrap();
    partner.expect_request(
        "POST",
        "/partner/workspace/create-for-existing-user",
        json!({ "email": "ann@example.com", "team_name": "Ann's second team", "trial_days": 0 }),
    );
    let workspace = partner.state(reply.workspace_id().unwrap());
    assert_eq!(workspace.team_name.as_deref(), Some("Ann's second team"));
}

#[tokio::test]
async fn workspace_get() {
    let partner = partner().await;
    let id = partner.workspace().await;

    let workspace = partner.client.get_workspace(id).await.unwrap();
    partner.expect_request("GET", &format!("/partner/workspace/{id}"), Value::Null);
    assert_eq!(
        (
            workspace.id,
            workspace.owner_email.as_str(),
            workspace.plan.as_str()
        ),
        (id, "ann@example.com", "trial")
    );
    assert!(workspace.auto_renew && !workspace.is_paused);
}

#[tokio::test]
async fn workspace_delete() {
    let partner = partner().await;
    let id = partner.workspace().await;

    partner.write(id, Call::Delete).await;
    partner.expect_request("DELETE", &format!("/partner/workspace/{id}"), Value::Null);
    let gone = partner.client.get_workspace(id).await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
}

#[tokio::test]
async fn update_extra_billing_information() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let note = "Stripe customer cus_1, subscription sub_1";

    partner
        .write(
            id,
            Call::UpdateExtraBillingInformation {
                extra_billing_information: note.into(),
            },
        )
        .await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/update-extra-billing-information"),
        json!({ "extra_billing_information": note }),
    );
    let workspace = partner.client.get_workspace(id).await.unwrap();
    assert_eq!(workspace.extra["extra_billing_information"], note);
}

#[tokio::test]
async fn list_flows() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let template_ns = "tpl_lead_capture".to_owned();
    partner
        .write(id, Call::InstallTemplate { template_ns })
        .await;

    let flows = partner.client.list_flows(id).await.unwrap();
    partner.expect_request(
        "GET",
        &format!("/partner/workspace/{id}/list-flows"),
        Value::Null,
    );
    let names: Vec<&str> = flows.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Welcome", "Qualify lead"]);
    assert!(flows.iter().all(|f| !f.ns.is_empty()));
}

#[tokio::test]
async fn change_plan() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let call = Call::ChangePlan {
        plan: "business".into(),
        auto_renew: false,
    };

    partner.write(id, call).await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/change-plan"),
        json!({ "plan": "business", "auto_renew": "no" }),
    );
    let workspace = partner.state(id);
    assert_eq!(
        (workspace.plan.as_str(), workspace.auto_renew),
        ("business", false)
    );
}

#[tokio::test]
async fn add_addon() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let call = Call::AddAddon {
        addon: "bot_user".into(),
        qty: 2,
    };

    partner.write(id, call).await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/add-addon"),
        json!({ "addon": "bot_user", "qty": 2 }),
    );
    assert_eq!(partner.state(id).addons["bot_user"], 2);
}

#[tokio::test]
async fn remove_addon() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let (addon, qty) = ("member".to_owned(), 3);
    partner.write(id, Call::AddAddon { addon, qty }).await;

    let call = Call::RemoveAddon {
        addon: "member".into(),
        qty: 1,
    };
    partner.write(id, call).await;
    partner.expect_request(
        "DELETE",
        &format!("/partner/workspace/{id}/remove-addon"),
        json!({ "addon": "member", "qty": 1 }),
    );
    assert_eq!(partner.state(id).addons["member"], 2);
}

#[tokio::test]
async fn topup_points() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let call = Call::TopupPoints {
        points: 250,
        note: "Stripe checkout cs_1".into(),
    };

    partner.write(id, call).await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/topup-points"),
        json!({ "points": 250, "note": "Stripe checkout cs_1" }),
    );
    assert_eq!(partner.state(id).points, 250.0);
}

#[tokio::test]
async fn deduct_points() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let note = || "x".to_owned();
    partner
        .write(
            id,
            Call::TopupPoints {
                points: 250,
                note: note(),
            },
        )
        .await;

    let call = Call::DeductPoints {
        points: 100,
        note: "refund of Stripe checkout cs_1".into(),
    };
    partner.write(id, call).await;
    partner.expect_request(
        "DELETE",
        &format!("/partner/workspace/{id}/deduct-points"),
        json!({ "points": 100, "note": "refund of Stripe checkout cs_1" }),
    );
    assert_eq!(partner.state(id).points, 150.0);
}

#[tokio::test]
async fn enable_auto_renew() {
    let partner = partner().await;
    let id = partner.workspace().await;
    partner.write(id, Call::DisableAutoRenew).await;

    partner.write(id, Call::EnableAutoRenew).await;
    let path = format!("/partner/workspace/{id}/enable-auto-renew");
    partner.expect_request("POST", &path, Value::Null);
    assert!(partner.state(id).auto_renew);
}

#[tokio::test]
async fn disable_auto_renew() {
    let partner = partner().await;
    let id = partner.workspace().await;

    partner.write(id, Call::DisableAutoRenew).await;
    let path = format!("/partner/workspace/{id}/disable-auto-renew");
    partner.expect_request("POST", &path, Value::Null);
    assert!(!partner.state(id).auto_renew);
}

#[tokio::test]
async fn pause() {
    let partner = partner().await;
    let id = partner.workspace().await;

    partner.write(id, Call::Pause).await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/pause"),
        Value::Null,
    );
    assert!(partner.state(id).is_paused);
}

#[tokio::test]
async fn active() {
    let partner = partner().await;
    let id = partner.workspace().await;
    partner.write(id, Call::Pause).await;

    partner.write(id, Call::Active).await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/active"),
        Value::Null,
    );
    assert!(!partner.state(id).is_paused);
}

#[tokio::test]
async fn members() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let (email, role) = ("bob@example.com".to_owned(), "agent".to_owned());
    partner.write(id, Call::InviteMember { email, role }).await;

    let members = partner.client.members(id).await.unwrap();
    partner.expect_request(
        "GET",
        &format!("/partner/workspace/{id}/members"),
        Value::Null,
    );
    let members: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.email.as_str(), m.role.as_str()))
        .collect();
    assert_eq!(
        members,
        [("ann@example.com", "owner"), ("bob@example.com", "agent")]
    );
}

#[tokio::test]
async fn invite_member() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let invite = || Call::InviteMember {
        email: "bob@example.com".into(),
        role: "agent".into(),
    };

    partner.write(id, invite()).await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/invite-member"),
        json!({ "email": "bob@example.com", "role": "agent" }),
    );
    assert_eq!(partner.state(id).invites.len(), 1);
    let again = partner
        .client
        .execute(&invite(), Some(id))
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(422), "a member is invited once");
}

#[tokio::test]
async fn remove_member() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let (email, role) = ("bob@example.com".to_owned(), "agent".to_owned());
    partner.write(id, Call::InviteMember { email, role }).await;

    let remove = |email: &str| Call::RemoveMember {
        email: email.into(),
    };
    partner.write(id, remove("bob@example.com")).await;
    partner.expect_request(
        "DELETE",
        &format!("/partner/workspace/{id}/remove-member"),
        json!({ "email": "bob@example.com" }),
    );
    assert!(partner.state(id).invites.is_empty());
    let owner = partner
        .client
        .execute(&remove("ann@example.com"), Some(id))
        .await
        .unwrap_err();
    assert_eq!(owner.status(), Some(422), "the owner stays");
}

#[tokio::test]
async fn install_template() {
    let partner = partner().await;
    let id = partner.workspace().await;
    let install = |template_ns: &str| Call::InstallTemplate {
        template_ns: template_ns.into(),
    };

    partner.write(id, install("tpl_restaurant")).await;
    partner.expect_request(
        "POST",
        &format!("/partner/workspace/{id}/install-template"),
        json!({ "template_ns": "tpl_restaurant" }),
    );
    assert_eq!(partner.state(id).flows.len(), 3);
    let unknown = partner
        .client
        .execute(&install("tpl_nope"), Some(id))
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), Some(422));
}

#[tokio::test]
async fn plans() {
    let partner = partner().await;

    let plans = partner.client.plans().await.unwrap();
    partner.expect_request("GET", "/partner/plans", Value::Null);
    let business = plans.iter().find(|p| p.id == "business").unwrap();
    assert_eq!((business.name.as_str(), business.price), ("Business", 10.0));
}

#[tokio::test]
async fn addons() {
    let partner = partner().await;

    let addons = partner.client.addons().await.unwrap();
    partner.expect_request("GET", "/partner/addons", Value::Null);
    assert!(addons.iter().any(|a| a.id == "bot_user" && a.price > 0.0));
}

#[tokio::test]
async fn templates() {
    let partner = partner().await;

    let templates = partner.client.templates().await.unwrap();
    partner.expect_request("GET", "/partner/templates", Value::Null);
    let ids: Vec<&str> = templates.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["tpl_lead_capture", "tpl_restaurant", "tpl_support"]);
    assert!(templates.iter().all(|t| !t.name.is_empty()));
}

#[tokio::test]
async fn credit_balance() {
    let partner = partner().await;
    partner.sandbox.set_credit(123.45);

    let credit = partner.client.credit_balance().await.unwrap();
    partner.expect_request("GET", "/partner/credit-balance", Value::Null);
    assert_eq!(credit, 123.45);
}
