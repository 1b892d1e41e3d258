//! The calls of the contract (`uchat-partner-api.md`) that change a workspace: their
//! kinds, where each goes, and their typed arguments.
//!
//! The planner says what to do in these terms; `partner_calls` keeps each call as its
//! kind and JSON body; delivery reads a stored call back into a [`Call`] once; the client
//! sends it along its kind's [`Route`]; the sandbox serves the same routes. The kinds are
//! named here and nowhere else: their serde name is the stored `kind`, and the last
//! segment of their path.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Method;
use crate::secret::Secret;

/// A kind of partner call, as `partner_calls.kind` stores it (as text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "kebab-case")]
#[sqlx(type_name = "text", rename_all = "kebab-case")]
pub enum CallKind {
    Create,
    CreateForExistingUser,
    ChangePlan,
    AddAddon,
    RemoveAddon,
    TopupPoints,
    DeductPoints,
    Pause,
    /// Resumes a paused workspace.
    Active,
    EnableAutoRenew,
    DisableAutoRenew,
    Delete,
    /// Copies a template's flows into the workspace.
    InstallTemplate,
    /// Sets the workspace's billing note (the Stripe ids, for whoever looks in UChat).
    UpdateExtraBillingInformation,
    InviteMember,
    RemoveMember,
    /// Binds a workspace the buyer named to the order, once UChat shows the buyer as its
    /// owner (`GET /partner/workspace/{id}`); refused otherwise.
    ClaimWorkspace,
    /// Binds the customer's earlier workspace to the order if UChat still has it, or
    /// creates a new one (as `create`) if UChat answers 404.
    ReuseWorkspace,
}

display_as_serialized!(CallKind);

/// How a kind of call carries its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Json,
    /// No body is sent, whatever a stored body says.
    Empty,
}

/// Where a kind of call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// Relative to the API base; `{id}` stands for the workspace id.
    pub path: String,
    pub body: Body,
}

impl CallKind {
    pub const ALL: [CallKind; 18] = [
        CallKind::Create,
        CallKind::CreateForExistingUser,
        CallKind::ChangePlan,
        CallKind::AddAddon,
        CallKind::RemoveAddon,
        CallKind::TopupPoints,
        CallKind::DeductPoints,
        CallKind::Pause,
        CallKind::Active,
        CallKind::EnableAutoRenew,
        CallKind::DisableAutoRenew,
        CallKind::Delete,
        CallKind::InstallTemplate,
        CallKind::UpdateExtraBillingInformation,
        CallKind::InviteMember,
        CallKind::RemoveMember,
        CallKind::ClaimWorkspace,
        CallKind::ReuseWorkspace,
    ];

    /// The kinds that are one write of the contract each.
    pub const WRITES: [CallKind; 16] = [
        CallKind::Create,
        CallKind::CreateForExistingUser,
        CallKind::ChangePlan,
        CallKind::AddAddon,
        CallKind::RemoveAddon,
        CallKind::TopupPoints,
        CallKind::DeductPoints,
        CallKind::Pause,
        CallKind::Active,
        CallKind::EnableAutoRenew,
        CallKind::DisableAutoRenew,
        CallKind::Delete,
        CallKind::InstallTemplate,
        CallKind::UpdateExtraBillingInformation,
        CallKind::InviteMember,
        CallKind::RemoveMember,
    ];

    /// The contract's method, path and body for this kind: the creates go to
    /// `/partner/workspace/<kind>`, delete to `/partner/workspace/{id}`, every other write
    /// to `/partner/workspace/{id}/<kind>`. `None` for the kinds that bind a workspace:
    /// delivery makes them of reads and a create.
    pub fn route(self) -> Option<Route> {
        use CallKind::*;
        let (method, body) = match self {
            ClaimWorkspace | ReuseWorkspace => return None,
            Create
            | CreateForExistingUser
            | ChangePlan
            | AddAddon
            | TopupPoints
            | InstallTemplate
            | UpdateExtraBillingInformation
            | InviteMember => (Method::POST, Body::Json),
            RemoveAddon | DeductPoints | RemoveMember => (Method::DELETE, Body::Json),
            Pause | Active | EnableAutoRenew | DisableAutoRenew => (Method::POST, Body::Empty),
            Delete => (Method::DELETE, Body::Empty),
        };
        let path = match self {
            Create | CreateForExistingUser => format!("/partner/workspace/{self}"),
            Delete => "/partner/workspace/{id}".to_owned(),
            _ => format!("/partner/workspace/{{id}}/{self}"),
        };
        Some(Route { method, path, body })
    }
}

/// One partner call with its arguments. Calls never name the workspace they go to:
/// delivery takes it from the order, since a created workspace's id is only known once
/// its create succeeds. Only the calls that bind a workspace name one, to check it.
///
/// Serialized as `{"kind": ..., "body": ...}`, the body being the contract's JSON body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", content = "body", rename_all = "kebab-case")]
pub enum Call {
    Create(NewWorkspace),
    /// A create for an email that already has a UChat account. Never planned: delivery
    /// turns a refused create into one.
    CreateForExistingUser(ExistingUserWorkspace),
    ChangePlan {
        plan: String,
        #[serde(with = "yes_no")]
        auto_renew: bool,
    },
    AddAddon {
        addon: String,
        qty: u32,
    },
    RemoveAddon {
        addon: String,
        qty: u32,
    },
    TopupPoints {
        points: i64,
        note: String,
    },
    DeductPoints {
        points: i64,
        note: String,
    },
    Pause,
    /// Resumes a paused workspace.
    Active,
    EnableAutoRenew,
    DisableAutoRenew,
    Delete,
    InstallTemplate {
        /// A template id of `GET /partner/templates` (its namespace).
        template_ns: String,
    },
    UpdateExtraBillingInformation {
        extra_billing_information: String,
    },
    InviteMember {
        email: String,
        role: String,
    },
    RemoveMember {
        email: String,
    },
    ClaimWorkspace {
        workspace_id: i64,
        /// The buyer, who must own it.
        email: String,
    },
    ReuseWorkspace {
        workspace_id: i64,
        /// The workspace to create instead, should UChat no longer have this one.
        create: NewWorkspace,
    },
}

impl Call {
    pub fn kind(&self) -> CallKind {
        match self {
            Call::Create(_) => CallKind::Create,
            Call::CreateForExistingUser(_) => CallKind::CreateForExistingUser,
            Call::ChangePlan { .. } => CallKind::ChangePlan,
            Call::AddAddon { .. } => CallKind::AddAddon,
            Call::RemoveAddon { .. } => CallKind::RemoveAddon,
            Call::TopupPoints { .. } => CallKind::TopupPoints,
            Call::DeductPoints { .. } => CallKind::DeductPoints,
            Call::Pause => CallKind::Pause,
            Call::Active => CallKind::Active,
            Call::EnableAutoRenew => CallKind::EnableAutoRenew,
            Call::DisableAutoRenew => CallKind::DisableAutoRenew,
            Call::Delete => CallKind::Delete,
            Call::InstallTemplate { .. } => CallKind::InstallTemplate,
            Call::UpdateExtraBillingInformation { .. } => CallKind::UpdateExtraBillingInformation,
            Call::InviteMember { .. } => CallKind::InviteMember,
            Call::RemoveMember { .. } => CallKind::RemoveMember,
            Call::ClaimWorkspace { .. } => CallKind::ClaimWorkspace,
            Call::ReuseWorkspace { .. } => CallKind::ReuseWorkspace,
        }
    }

    /// The request body the partner API expects, as `partner_calls.body` stores it;
    /// `Null` for calls without one.
    pub fn body(&self) -> Value {
        let mut tagged = serde_json::to_value(self).expect("strings and numbers serialize");
        tagged["body"].take()
    }

    /// A stored call, from its kind and body. A kind without a body ignores whatever the
    /// stored body holds.
    pub fn from_stored(kind: CallKind, body: Value) -> Result<Call, serde_json::Error> {
        let body = match kind.route().map(|route| route.body) {
            Some(Body::Empty) => Value::Null,
            Some(Body::Json) | None => body,
        };
        serde_json::from_value(json!({ "kind": kind, "body": body }))
    }
}

/// The arguments of a `create`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewWorkspace {
    pub name: String,
    pub email: String,
    pub team_name: String,
    #[serde(with = "yes_no")]
    pub require_email_verification: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
    /// The owner's first password: made up by delivery when it sends the create, and
    /// never kept. A stored body never carries one, and none is read back from it.
    #[serde(
        skip_deserializing,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose"
    )]
    pub password: Option<Secret>,
}

impl NewWorkspace {
    /// The same workspace for an owner who already has a UChat account.
    pub fn for_existing_user(&self) -> ExistingUserWorkspace {
        ExistingUserWorkspace {
            email: self.email.clone(),
            team_name: self.team_name.clone(),
            template_ns: self.template_ns.clone(),
            trial_days: self.trial_days,
        }
    }
}

/// The arguments of a `create-for-existing-user`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExistingUserWorkspace {
    pub email: String,
    pub team_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
}

fn expose<S: serde::Serializer>(password: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    password.as_ref().map(Secret::expose).serialize(s)
}

/// The contract's flags: `"yes"` or `"no"`.
mod yes_no {
    use serde::de::{Deserializer, Error};
    use serde::{Deserialize, Serializer};

    pub fn serialize<S: Serializer>(flag: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if *flag { "yes" } else { "no" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match String::deserialize(d)?.as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(D::Error::custom(format!(
                "expected \"yes\" or \"no\", got {other:?}"
            ))),
        }
    }
}
