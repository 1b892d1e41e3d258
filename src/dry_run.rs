//! What events would do, without doing it: the planner run over events in memory.

use serde::Serialize;
use serde_json::Value;

use crate::plan::{self, Catalog, Facts, Provisioned};
use crate::stripe::decode::{self, Event};

/// One event's effect on the order.
#[derive(Debug, Serialize, PartialEq)]
pub struct PlannedStep {
    pub event: String,
    pub event_type: String,
    pub calls: Vec<PlannedCall>,
    pub status: &'static str,
    pub attention: Option<String>,
}

/// A call as it would be queued: the partner endpoint's kind and its JSON body.
#[derive(Debug, Serialize, PartialEq)]
pub struct PlannedCall {
    pub kind: &'static str,
    pub body: Value,
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
            event: event.id,
            event_type: event.event_type,
            calls: plan
                .calls
                .iter()
                .map(|call| PlannedCall {
                    kind: call.kind(),
                    body: call.body(),
                })
                .collect(),
            status: plan.status.as_str(),
            attention: plan.attention,
        });
        provisioned = plan.provisioned;
    }
    Ok(steps)
}
