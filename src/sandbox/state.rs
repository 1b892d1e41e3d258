//! The fake's state: workspaces, partner credit, the request log, and the price
//! lists. Everything lives in one `Store` behind one mutex.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{ApiError, RecordedRequest};

/// A plan or an add-on as `/partner/plans` and `/partner/addons` list it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CatalogItem {
    pub id: &'static str,
    pub name: &'static str,
    /// Charged to partner credit per change-plan or per add-on unit.
    pub price: f64,
}

const fn item(id: &'static str, name: &'static str, price: f64) -> CatalogItem {
    CatalogItem { id, name, price }
}

pub const PLANS: &[CatalogItem] = &[
    item("free", "Free", 0.0),
    item("business", "Business", 10.0),
    item("business_lite", "Business Lite", 5.0),
    item("business_plus", "Business Plus", 20.0),
    item("business_large", "Business Large", 50.0),
    item("business_yearly", "Business Yearly", 100.0),
];

pub const ADDONS: &[CatalogItem] = &[
    item("bot", "Extra bot", 5.0),
    item("member", "Extra member", 3.0),
    item("bot_user", "1,000 bot users", 10.0),
    item("bot_user_large", "10,000 bot users", 50.0),
    item("lists", "Lists", 2.0),
    item("inbound_webhook", "Inbound webhook", 2.0),
    item("timeout", "Timeout", 2.0),
    item("custom_domain", "Custom domain", 5.0),
];

/// A template as `/partner/templates` lists it: installing it copies its flows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Template {
    pub id: &'static str,
    pub name: &'static str,
    #[serde(skip)]
    pub flows: &'static [&'static str],
}

pub const TEMPLATES: &[Template] = &[
    Template {
        id: "tpl_lead_capture",
        name: "Lead capture",
        flows: &["Welcome", "Qualify lead"],
    },
    Template {
        id: "tpl_restaurant",
        name: "Restaurant",
        flows: &["Welcome", "Menu", "Book a table"],
    },
    Template {
        id: "tpl_support",
        name: "Customer support",
        flows: &["Welcome", "FAQ", "Human handover"],
    },
];

pub(super) fn find_template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|template| template.id == id)
}

pub(super) fn find_item(items: &'static [CatalogItem], id: &str) -> Option<&'static CatalogItem> {
    items.iter().find(|item| item.id == id)
}

const PER_PAGE: usize = 20;
const DAY: u64 = 86_400;

/// One workspace as `/sandbox/state` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workspace {
    pub id: u64,
    /// The owner's name, as given on create.
    pub name: String,
    pub owner_email: String,
    pub team_name: Option<String>,
    /// Shown as Laravel writes it, `2024-05-01T09:30:00.000000Z`: the contract does not
    /// list it, so clients must not rely on it.
    pub created_at: DateTime<Utc>,
    /// `trial` after create, then a plan id.
    pub plan: String,
    pub is_paused: bool,
    pub auto_renew: bool,
    pub points: f64,
    /// Add-on id → quantity; only add-ons the workspace has (qty > 0).
    pub addons: BTreeMap<String, u64>,
    /// `YYYY-MM-DD HH:MM:SS` (UTC).
    pub billing_start_at: Option<String>,
    pub billing_end_at: Option<String>,
    pub invites: Vec<Invite>,
    /// Installed from templates, at create or with `install-template`.
    pub flows: Vec<Flow>,
    /// Set with `update-extra-billing-information`.
    pub extra_billing_information: Option<String>,
}

/// A member invited with `invite-member`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invite {
    pub email: String,
    pub role: String,
}

/// A flow of a workspace, as `list-flows` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    pub ns: String,
    pub name: String,
}

/// A UChat user who owns (or owned) a workspace, as `/partner/clients` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Client {
    pub id: u64,
    pub name: String,
    pub email: String,
}

impl Workspace {
    /// The `data` of `GET /partner/workspace/{id}`: flags as 0/1 and one
    /// `addon_<id>` per known add-on.
    pub(super) fn view(&self) -> Value {
        let mut view = json!({
            "id": self.id,
            "name": self.name,
            "team_name": self.team_name,
            "created_at": self.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "owner_email": self.owner_email,
            "plan": self.plan,
            "is_paused": u8::from(self.is_paused),
            "auto_renew": u8::from(self.auto_renew),
            "billing_start_at": self.billing_start_at,
            "billing_end_at": self.billing_end_at,
            "points": self.points,
            "extra_billing_information": self.extra_billing_information,
        });
        for addon in ADDONS {
            view[format!("addon_{}", addon.id)] = json!(self.addon(addon.id));
        }
        view
    }

    /// Copies the template's flows in, each with a namespace of its own.
    pub(super) fn install(&mut self, template: &Template) {
        for name in template.flows {
            let ns = format!("f{}_{}", self.id, self.flows.len() + 1);
            self.flows.push(Flow {
                ns,
                name: (*name).to_owned(),
            });
        }
    }

    /// The owner first, then the invited members.
    pub(super) fn members(&self) -> Value {
        let owner = json!({ "email": self.owner_email, "name": self.name, "role": "owner" });
        let invited = self
            .invites
            .iter()
            .map(|invite| json!({ "email": invite.email, "name": "", "role": invite.role }));
        Value::Array(std::iter::once(owner).chain(invited).collect())
    }

    pub(super) fn is_member(&self, email: &str) -> bool {
        self.owner_email.eq_ignore_ascii_case(email)
            || self
                .invites
                .iter()
                .any(|invite| invite.email.eq_ignore_ascii_case(email))
    }

    pub(super) fn addon(&self, id: &str) -> u64 {
        self.addons.get(id).copied().unwrap_or(0)
    }

    /// Starts a billing period on `plan` now: 30 days, 365 for the yearly plan,
    /// open-ended for free.
    pub(super) fn switch_plan(&mut self, plan: &str) {
        let days = match plan {
            "free" => None,
            "business_yearly" => Some(365),
            _ => Some(30),
        };
        self.start_period(plan, days);
    }

    fn start_period(&mut self, plan: &str, days: Option<u64>) {
        let now = now();
        self.plan = plan.to_string();
        self.billing_start_at = Some(format_utc(now));
        self.billing_end_at = days.map(|days| format_utc(now + days * DAY));
    }

    fn matches(&self, needle: &str) -> bool {
        self.owner_email.to_lowercase().contains(needle)
            || self.name.to_lowercase().contains(needle)
    }
}

/// Prepaid partner credit: every plan and add-on is charged here.
#[derive(Debug)]
pub(super) struct Credit(pub f64);

impl Credit {
    /// Takes `amount`, or refuses with `no_enough_credit` and takes nothing.
    pub(super) fn charge(&mut self, amount: f64) -> Result<(), ApiError> {
        if amount > self.0 {
            return Err(ApiError::NoEnoughCredit);
        }
        self.0 -= amount;
        Ok(())
    }
}

pub(super) struct Store {
    pub credit: Credit,
    pub workspaces: BTreeMap<u64, Workspace>,
    /// By lowercased email.
    pub clients: BTreeMap<String, Client>,
    pub requests: Vec<RecordedRequest>,
    next_id: u64,
}

impl Store {
    pub(super) fn new(credit: f64, first_id: u64) -> Self {
        Store {
            credit: Credit(credit),
            workspaces: BTreeMap::new(),
            clients: BTreeMap::new(),
            requests: Vec::new(),
            next_id: first_id,
        }
    }

    /// The workspace with path id `id` (and the credit, to charge), or 404.
    pub(super) fn find(&mut self, id: &str) -> Result<(&mut Workspace, &mut Credit), ApiError> {
        let workspace = id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.workspaces.get_mut(&id))
            .ok_or(ApiError::WorkspaceNotFound)?;
        Ok((workspace, &mut self.credit))
    }

    /// The first workspace owned by `email` (compared case-insensitively).
    pub(super) fn owned_by(&self, email: &str) -> Option<&Workspace> {
        self.workspaces
            .values()
            .find(|w| w.owner_email.eq_ignore_ascii_case(email))
    }

    /// A new workspace on a `trial_days` trial, auto-renew on, not paused, with the
    /// template's flows; its owner becomes a client if they were none.
    pub(super) fn create(
        &mut self,
        name: String,
        owner_email: String,
        team_name: Option<String>,
        trial_days: u64,
        template: Option<&Template>,
    ) -> &Workspace {
        let id = self.next_id;
        self.next_id += 1;
        let client_id = self.clients.len() as u64 + 1;
        self.clients
            .entry(owner_email.to_lowercase())
            .or_insert_with(|| Client {
                id: client_id,
                name: name.clone(),
                email: owner_email.clone(),
            });
        let mut workspace = Workspace {
            id,
            name,
            owner_email,
            team_name,
            created_at: Utc::now(),
            plan: String::new(),
            is_paused: false,
            auto_renew: true,
            points: 0.0,
            addons: BTreeMap::new(),
            billing_start_at: None,
            billing_end_at: None,
            invites: Vec::new(),
            flows: Vec::new(),
            extra_billing_information: None,
        };
        workspace.start_period("trial", Some(trial_days));
        if let Some(template) = template {
            workspace.install(template);
        }
        self.workspaces.entry(id).or_insert(workspace)
    }

    /// One page (from 1) of the workspaces whose owner email or name contains
    /// `search` (case-insensitive), with Laravel-style `meta`.
    pub(super) fn list(&self, page: usize, search: &str) -> Value {
        let needle = search.trim().to_lowercase();
        let hits = self.workspaces.values().filter(|w| w.matches(&needle));
        paginate(hits.collect(), page, |w| w.view())
    }

    /// One page (from 1) of the clients whose email or name contains `search`.
    pub(super) fn list_clients(&self, page: usize, search: &str) -> Value {
        let needle = search.trim().to_lowercase();
        let hits = self.clients.values().filter(|c| {
            c.email.to_lowercase().contains(&needle) || c.name.to_lowercase().contains(&needle)
        });
        paginate(hits.collect(), page, |c| json!(c))
    }

    /// The body of `GET /sandbox/state`.
    pub(super) fn snapshot(&self) -> Value {
        json!({
            "credit": self.credit.0,
            "workspaces": self.workspaces.values().collect::<Vec<_>>(),
        })
    }
}

/// One page (from 1) of `hits`, each shown by `view`, with Laravel-style `meta`.
fn paginate<T>(hits: Vec<&T>, page: usize, view: impl Fn(&T) -> Value) -> Value {
    let skip = (page - 1).saturating_mul(PER_PAGE);
    let data: Vec<Value> = hits
        .iter()
        .skip(skip)
        .take(PER_PAGE)
        .map(|hit| view(hit))
        .collect();
    let (from, to) = match data.len() {
        0 => (Value::Null, Value::Null),
        n => (json!(skip + 1), json!(skip + n)),
    };
    json!({
        "status": "ok",
        "data": data,
        "meta": {
            "current_page": page,
            "last_page": hits.len().div_ceil(PER_PAGE).max(1),
            "per_page": PER_PAGE,
            "total": hits.len(),
            "from": from,
            "to": to,
        },
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS` for seconds since the epoch, in UTC (Howard Hinnant's
/// civil-from-days).
pub(super) fn format_utc(secs: u64) -> String {
    let (days, rest) = (secs / DAY, secs % DAY);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
