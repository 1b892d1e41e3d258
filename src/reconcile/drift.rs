//! Where an order and the two sides disagree: pure comparisons, no I/O. The caller
//! gathers Stripe's subscription and UChat's workspace as they are now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::domain::{LineItem, Subscription};
use crate::partner::WorkspaceInfo;
use crate::plan::{Facts, Provisioned};

/// One field on which an order and a side disagree.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct Drift {
    pub order: i64,
    /// `status`, `items`, `cancel_at_period_end`, `cancel_at`, `subscription` (Stripe);
    /// `workspace`, `plan`, `paused`, `auto_renew`, `addon:<id>` (UChat).
    pub field: String,
    /// What the order says.
    pub expected: Value,
    /// What the side says.
    pub actual: Value,
    pub source: Source,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Stripe,
    Uchat,
}

fn drift(order: i64, field: &str, expected: Value, actual: Value, source: Source) -> Drift {
    Drift {
        order,
        field: field.to_owned(),
        expected,
        actual,
        source,
    }
}

/// The order's facts against the subscription as Stripe has it now (`None`: Stripe does
/// not know it).
pub fn stripe_drift(order: i64, facts: &Facts, now: Option<&Subscription>) -> Vec<Drift> {
    let Some(known) = &facts.subscription else {
        return Vec::new();
    };
    let id = facts.subscription_id().unwrap_or_default();
    let Some(now) = now else {
        return vec![drift(
            order,
            "subscription",
            json!(id),
            Value::Null,
            Source::Stripe,
        )];
    };
    let mut drifts = Vec::new();
    let mut compare = |field: &str, expected: Value, actual: Value| {
        if expected != actual {
            drifts.push(drift(order, field, expected, actual, Source::Stripe));
        }
    };
    compare("status", json!(known.status), json!(now.status));
    compare("items", items(&known.items), items(&now.items));
    compare(
        "cancel_at_period_end",
        json!(known.cancel_at_period_end),
        json!(now.cancel_at_period_end),
    );
    compare("cancel_at", json!(known.cancel_at), json!(now.cancel_at));
    drifts
}

/// Quantities by price, so the items' order does not matter.
fn items(items: &[LineItem]) -> Value {
    let mut by_price: BTreeMap<&str, u32> = BTreeMap::new();
    for item in items {
        *by_price.entry(&item.price).or_default() += item.quantity;
    }
    json!(by_price)
}

/// What the live orders bound to one workspace provisioned, against the workspace as
/// UChat shows it now (`None`: UChat no longer has it). The order that sells the plan
/// answers for the plan, pause and auto-renew; add-ons are the sum of every order's, a
/// difference laid at the first order that added that add-on. Points are not compared:
/// customers spend them in UChat.
pub fn uchat_drift(
    workspace_id: i64,
    orders: &[(i64, &Provisioned)],
    seen: Option<&WorkspaceInfo>,
) -> Vec<Drift> {
    let Some(seen) = seen else {
        return orders
            .iter()
            .map(|(order, _)| {
                drift(
                    *order,
                    "workspace",
                    json!(workspace_id),
                    Value::Null,
                    Source::Uchat,
                )
            })
            .collect();
    };
    let mut drifts = Vec::new();
    for (order, want) in orders.iter().filter(|(_, want)| want.sells_plan) {
        let mut compare = |field: &str, expected: Value, actual: Value| {
            if expected != actual {
                drifts.push(drift(*order, field, expected, actual, Source::Uchat));
            }
        };
        // No plan yet: the workspace runs on UChat's own trial.
        if let Some(plan) = &want.plan {
            compare("plan", json!(plan), json!(seen.plan));
            compare("auto_renew", json!(want.auto_renew), json!(seen.auto_renew));
        }
        compare("paused", json!(want.paused), json!(seen.is_paused));
    }
    let mut addons: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (order, want) in orders {
        for (addon, units) in &want.addons {
            let (first, total) = addons.entry(addon).or_insert((*order, 0));
            *first = (*first).min(*order);
            *total += i64::from(*units);
        }
    }
    for (addon, (order, total)) in addons {
        let actual = seen.addon_qty(addon);
        if actual != total {
            drifts.push(drift(
                order,
                &format!("addon:{addon}"),
                json!(total),
                json!(actual),
                Source::Uchat,
            ));
        }
    }
    drifts
}

/// The order's state as UChat shows it, from the order's own UChat drifts: what the
/// planner brings back to `want` (see [`crate::plan::restore`]).
pub fn seen_state(want: &Provisioned, drifts: &[Drift]) -> Provisioned {
    let mut seen = want.clone();
    for drift in drifts.iter().filter(|d| d.source == Source::Uchat) {
        let actual = &drift.actual;
        match drift.field.as_str() {
            "plan" => seen.plan = actual.as_str().map(str::to_owned),
            "paused" => seen.paused = actual.as_bool().unwrap_or(seen.paused),
            "auto_renew" => seen.auto_renew = actual.as_bool().unwrap_or(seen.auto_renew),
            // The workspace is gone: nothing is planned for it.
            "workspace" => seen.deleted = true,
            field => {
                let Some(addon) = field.strip_prefix("addon:") else {
                    continue;
                };
                let (Some(expected), Some(actual)) = (drift.expected.as_i64(), actual.as_i64())
                else {
                    continue;
                };
                let own = i64::from(want.addons.get(addon).copied().unwrap_or(0));
                let units = u32::try_from((own - (expected - actual)).max(0)).unwrap_or(0);
                seen.addons.insert(addon.to_owned(), units);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests;
