//! What events would do, without doing it: the planner's answer as operators and the
//! `plan` command show it.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::partner::{Call, CallKind};
use crate::plan::{
    self, Catalog, CustomerOrders, Facts, OrderStatus, OtherOrder, Plan, Provisioned, Workspace,
};
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
struct Order {
    links: BTreeSet<String>,
    facts: Facts,
    provisioned: Provisioned,
    status: OrderStatus,
}

impl Order {
    fn new() -> Order {
        Order {
            links: BTreeSet::new(),
            facts: Facts::default(),
            provisioned: Provisioned::default(),
            status: OrderStatus::Pending,
        }
    }

    /// The order as another order of its customer sees it. Every call is taken to
    /// succeed, so a workspace still being created has one: a stand-in id, the order's
    /// number.
    fn as_other(&self, number: usize) -> OtherOrder {
        let workspace_id = match self.provisioned.workspace {
            Workspace::Known(id) | Workspace::Claiming(id) | Workspace::Reusing(id) => Some(id),
            Workspace::Creating => Some(number as i64),
            Workspace::None => None,
        };
        OtherOrder {
            status: self.status,
            workspace_id,
            provisioned: self.provisioned.clone(),
        }
    }
}

/// Applies the events from an empty start, in Stripe's order, each to its order as the
/// service finds it: by the Stripe ids the event shares with the order's earlier events.
/// Every call is taken to succeed, so a later order of a customer sees the workspaces
/// the earlier ones made. `events` are (name, body); a name is what a problem is told by.
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
        let index = match orders
            .iter()
            .position(|order| links.iter().any(|link| order.links.contains(link)))
        {
            Some(index) => index,
            None => {
                orders.push(Order::new());
                orders.len() - 1
            }
        };
        let mut facts = orders[index].facts.clone();
        facts.apply(&event.stamp(), &signal);
        let others: Vec<OtherOrder> = orders
            .iter()
            .enumerate()
            .filter(|(other, order)| {
                *other != index
                    && facts.customer().is_some()
                    && order.facts.customer() == facts.customer()
            })
            .map(|(other, order)| order.as_other(other + 1))
            .collect();
        facts.customer_orders = CustomerOrders::of(&others);
        let order = &mut orders[index];
        let plan = plan::plan(&facts, &order.provisioned, catalog);
        steps.push(PlannedStep {
            order: index + 1,
            effect: Effect::from(&plan),
            event: event.id,
            event_type: event.event_type,
        });
        order.links.extend(links);
        order.facts = facts;
        order.provisioned = plan.provisioned;
        order.status = plan.status;
    }
    Ok(steps)
}
