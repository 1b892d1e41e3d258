//! What events would do, without doing it: the planner's answer as operators and the
//! `plan` command show it.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::Signal;
use crate::partner::{Call, CallKind};
use crate::plan::{self, Catalog, Facts, OrderStatus, Plan, Provisioned, Workspace};
use crate::stripe::decode::{self, Event};

/// One event's effect on its order.
#[derive(Debug, Serialize, PartialEq)]
pub struct PlannedStep {
    /// The order the event belongs to, numbered from 1 in the order they start.
    pub order: usize,
    pub event: String,
    pub event_type: String,
    #[serde(flatten)]
    pub effect: Effect,
}

/// The calls an event would queue and the state it would leave its order in.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct Effect {
    pub calls: Vec<PlannedCall>,
    /// The order's status afterwards.
    pub status: OrderStatus,
    /// Why the order needs an operator, when it does.
    pub attention: Option<String>,
}

/// A call as it would be queued: the partner endpoint's kind and its JSON body.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct PlannedCall {
    #[schema(value_type = String, example = "change-plan")]
    pub kind: CallKind,
    /// The request body; `null` for calls without one.
    pub body: Value,
}

/// What one event would do to the order it belongs to, as that order stands now.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct DryRun {
    /// The order the event belongs to; `null` when it would start a new one.
    pub order_id: Option<i64>,
    #[serde(flatten)]
    pub effect: Effect,
}

impl From<&Plan> for Effect {
    fn from(plan: &Plan) -> Self {
        Effect {
            calls: plan.calls.iter().map(PlannedCall::from).collect(),
            status: plan.status,
            attention: plan.attention.clone(),
        }
    }
}

impl From<&Call> for PlannedCall {
    fn from(call: &Call) -> Self {
        PlannedCall {
            kind: call.kind(),
            body: call.body(),
        }
    }
}

/// One order as `plan` follows it: the Stripe ids that lead to it, and its state.
#[derive(Default)]
struct Order {
    links: BTreeSet<String>,
    facts: Facts,
    provisioned: Provisioned,
}

/// Applies the events from an empty start, in Stripe's order, each to its order as the
/// service finds it: by the Stripe ids the event shares with the order's earlier events.
/// Every call is taken to succeed, so a later order of a customer goes to the workspace
/// an earlier one made. `events` are (name, body); a name is what a problem is told by.
pub fn plan_events(
    catalog: &Catalog,
    events: &[(String, Vec<u8>)],
) -> Result<Vec<PlannedStep>, String> {
    let mut parsed: Vec<(&str, Event)> = events
        .iter()
        .map(|(name, body)| {
            decode::parse_event(body)
                .map(|event| (name.as_str(), event))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    parsed.sort_by_key(|(_, event)| event.stamp());

    let mut orders: Vec<Order> = Vec::new();
    let mut steps = Vec::new();
    for (name, event) in parsed {
        let Some(signal) = event
            .signal(&catalog.workspace.id_field)
            .map_err(|e| format!("{name}: {e}"))?
        else {
            continue;
        };
        let links = signal.order_keys().links();
        let number = match orders
            .iter()
            .position(|order| links.iter().any(|link| order.links.contains(link)))
        {
            Some(index) => index,
            None => {
                orders.push(Order::default());
                orders.len() - 1
            }
        };
        let customer_workspace = customer_workspace(&orders, number, &event, &signal);
        let order = &mut orders[number];
        order.links.extend(links);
        order.facts.apply(&event.stamp(), &signal);
        if order.provisioned.workspace == Workspace::None {
            order.facts.customer_workspace = order.facts.customer_workspace.or(customer_workspace);
        }
        let plan = plan::plan(&order.facts, &order.provisioned, catalog);
        steps.push(PlannedStep {
            order: number + 1,
            effect: Effect::from(&plan),
            event: event.id,
            event_type: event.event_type,
        });
        order.provisioned = plan.provisioned;
    }
    Ok(steps)
}

/// The workspace another order of the event's customer provisions, as the processor
/// would find it once that order's create succeeded; a stand-in id (the order's number)
/// for one still being created.
fn customer_workspace(
    orders: &[Order],
    this: usize,
    event: &Event,
    signal: &Signal,
) -> Option<i64> {
    let mut facts = orders[this].facts.clone();
    facts.apply(&event.stamp(), signal);
    let customer = facts.customer()?;
    orders
        .iter()
        .enumerate()
        .filter(|(index, order)| *index != this && order.facts.customer() == Some(customer))
        .find_map(|(index, order)| match order.provisioned.workspace {
            Workspace::Known(id) => Some(id),
            Workspace::Creating => Some(index as i64 + 1),
            Workspace::None => None,
        })
}
