//! The envelope every Stripe event shares, read leniently: intake must store any
//! authentic event, whatever API version rendered its object.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::Stamp;

/// The event types the processor acts on; any other authentic event is stored as ignored.
pub const ACTED_ON: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.closed",
];

pub fn acts_on(event_type: &str) -> bool {
    ACTED_ON.contains(&event_type)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub api_version: Option<String>,
    pub livemode: bool,
    pub object: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body is not a JSON object")]
    NotJsonObject,
    #[error("event has no string `{0}`")]
    MissingField(&'static str),
}

/// Only what intake needs; everything else stays in the stored payload.
#[derive(Deserialize)]
struct Envelope {
    id: Option<Value>,
    #[serde(rename = "type")]
    event_type: Option<Value>,
    created: Option<Value>,
    api_version: Option<Value>,
    livemode: Option<Value>,
    data: Option<Value>,
}

pub fn parse_event(raw: &[u8]) -> Result<Event, EnvelopeError> {
    let text = std::str::from_utf8(raw).map_err(|_| EnvelopeError::NotUtf8)?;
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|_| EnvelopeError::NotJsonObject)?;
    let id = non_empty_string(envelope.id).ok_or(EnvelopeError::MissingField("id"))?;
    let event_type =
        non_empty_string(envelope.event_type).ok_or(EnvelopeError::MissingField("type"))?;
    Ok(Event {
        id,
        event_type,
        created: envelope.created.and_then(|v| v.as_i64()).unwrap_or(0),
        api_version: non_empty_string(envelope.api_version),
        livemode: envelope.livemode.and_then(|v| v.as_bool()).unwrap_or(false),
        object: envelope
            .data
            .and_then(|mut data| data.get_mut("object").map(Value::take))
            .unwrap_or(Value::Null),
    })
}

fn non_empty_string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        _ => None,
    }
}

impl Event {
    pub fn stamp(&self) -> Stamp {
        Stamp {
            created: self.created,
            event_id: self.id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_envelope_of_any_shape() {
        let event = parse_event(
            br#"{"id":"evt_1","type":"invoice.paid","created":5,"api_version":"2020-03-02","livemode":true,"data":{"object":{"id":"in_1"}}}"#,
        )
        .unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.event_type, "invoice.paid");
        assert_eq!(event.created, 5);
        assert_eq!(event.api_version.as_deref(), Some("2020-03-02"));
        assert!(event.livemode);
        assert_eq!(event.object["id"], "in_1");
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        for (body, expected) in [
            (&b"\xff\xfe"[..], EnvelopeError::NotUtf8),
            (b"[1,2]", EnvelopeError::NotJsonObject),
            (b"not json", EnvelopeError::NotJsonObject),
            (br#"{"type":"x"}"#, EnvelopeError::MissingField("id")),
            (br#"{"id":"evt_1"}"#, EnvelopeError::MissingField("type")),
            (br#"{"id":7,"type":"x"}"#, EnvelopeError::MissingField("id")),
            (
                br#"{"id":"evt_1","type":""}"#,
                EnvelopeError::MissingField("type"),
            ),
        ] {
            assert_eq!(parse_event(body), Err(expected));
        }
    }

    #[test]
    fn odd_optional_fields_do_not_reject_the_event() {
        let event =
            parse_event(br#"{"id":"evt_1","type":"x","created":"soon","livemode":"yes","data":7}"#)
                .unwrap();
        assert_eq!((event.created, event.livemode), (0, false));
        assert_eq!(event.object, Value::Null);
    }
}
