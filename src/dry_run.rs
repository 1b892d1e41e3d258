//! What events would do, without doing it: the planner's answer as operators and the
//! `plan` command show it.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::partner::{Call, CallKind};
use crate::plan::{self, Catalog, Facts, OrderStatus, Plan, Provisioned};
use crate::stripe::decode::{self, Event};

/// One event's effect on the order.
#[derive(Debug, Serialize, PartialEq)]
pub struct PlannedStep {
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

/// Applies the events, as one order from an empty start, in Stripe's order.
pub fn plan_events(catalog: &Catalog, bodies: &[Vec<u8>]) -> Result<Vec<PlannedStep>, String> {
    let mut events: Vec<Event> = bodies
        .iter()
        .map(|body| decode::parse_event(body).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    events.sort_by_key(Event::stamp);

    let mut facts = Facts::default();
    let mut provisioned = Provisioned::default();
    let mut steps = Vec::new();
    for event in events {
        let Some(signal) = event
            .signal(&catalog.workspace.id_field)
            .map_err(|e| format!("{}: {e}", event.id))?
        else {
            continue;
        };
        facts.apply(&event.stamp(), &signal);
        let plan = plan::plan(&facts, &provisioned, catalog);
        steps.push(PlannedStep {
            effect: Effect::from(&plan),
            event: event.id,
            event_type: event.event_type,
        });
        provisioned = plan.provisioned;
    }
    Ok(steps)
}
