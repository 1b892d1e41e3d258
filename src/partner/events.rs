//! UChat's partner webhooks, read leniently: the payload shape is a guess (contract,
//! "Partner webhooks"), so any body is an event; only what it does depends on what we
//! recognise in it.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// What an event means to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerEventKind {
    WorkspaceDeleted,
    NoEnoughCredit,
    /// Plan changed or renewed: the workspace is worth reconciling.
    PlanChanged,
    /// Stored and acknowledged; nothing else.
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartnerEvent {
    /// As UChat named it (`unknown` when it did not).
    pub event_type: String,
    pub kind: PartnerEventKind,
    pub workspace_id: Option<i64>,
    /// The event's id when it has one, else the body's SHA-256: a redelivery is the same.
    pub dedup_key: String,
}

impl PartnerEvent {
    pub fn read(raw: &str) -> PartnerEvent {
        let json: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        let field = |names: &[&str]| {
            let scopes = [Some(&json), json.get("data")];
            scopes.into_iter().flatten().find_map(|scope| {
                names
                    .iter()
                    .find_map(|name| scope.get(*name).filter(|v| !v.is_null()))
            })
        };
        let event_type = field(&["event_type", "event", "type"])
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let workspace_id = field(&["workspace_id", "ws_id", "workspace"]).and_then(|value| {
            super::lenient::as_int(value)
                .or_else(|| value.get("id").and_then(super::lenient::as_int))
        });
        let dedup_key = match field(&["event_id", "uuid"]).and_then(super::lenient::as_string) {
            Some(id) => format!("id:{id}"),
            None => format!("sha256:{}", hex::encode(Sha256::digest(raw.as_bytes()))),
        };
        PartnerEvent {
            kind: kind_of(&event_type),
            event_type,
            workspace_id,
            dedup_key,
        }
    }
}

/// `workspace_deleted`, `workspace.deleted`, `Workspace Deleted` are one event.
fn kind_of(event_type: &str) -> PartnerEventKind {
    let name: String = event_type
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match name.as_str() {
        "workspace_deleted" | "deleted_workspace" => PartnerEventKind::WorkspaceDeleted,
        "no_enough_credit" | "not_enough_credit" | "insufficient_credit" => {
            PartnerEventKind::NoEnoughCredit
        }
        "plan_changed" | "workspace_plan_changed" | "plan_renewed" | "workspace_renewed" => {
            PartnerEventKind::PlanChanged
        }
        _ => PartnerEventKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_from_any_shape() {
        let cases = [
            (
                r#"{"event_type":"workspace_deleted","workspace_id":"42","owner_email":"a@b"}"#,
                PartnerEventKind::WorkspaceDeleted,
                Some(42),
            ),
            (
                r#"{"event":"Workspace Deleted","data":{"workspace":{"id":7}}}"#,
                PartnerEventKind::WorkspaceDeleted,
                Some(7),
            ),
            (
                r#"{"event_type":"no_enough_credit"}"#,
                PartnerEventKind::NoEnoughCredit,
                None,
            ),
            (
                r#"{"type":"plan_renewed","ws_id":9}"#,
                PartnerEventKind::PlanChanged,
                Some(9),
            ),
            (
                r#"{"event_type":"user_registered"}"#,
                PartnerEventKind::Other,
                None,
            ),
            ("not json at all", PartnerEventKind::Other, None),
        ];
        for (raw, kind, workspace) in cases {
            let event = PartnerEvent::read(raw);
            assert_eq!((event.kind, event.workspace_id), (kind, workspace), "{raw}");
        }
    }

    #[test]
    fn a_redelivery_has_the_same_key_and_an_id_wins() {
        let body = r#"{"event_type":"overdue","auto_renew":0}"#;
        assert_eq!(
            PartnerEvent::read(body).dedup_key,
            PartnerEvent::read(body).dedup_key
        );
        assert_eq!(
            PartnerEvent::read(r#"{"event_id":"e1"}"#).dedup_key,
            "id:e1"
        );
    }
}
