//! Lenient decoding of the few Stripe fields we need, from any API version, into our own
//! domain types.
//!
//! We read `serde_json::Value` rather than typed Stripe structs: typed structs follow one
//! API version and reject payloads of others (the 2020-era samples fail with async-stripe's
//! 2026 types), while a webhook endpoint may be pinned to any version. Fields that moved in
//! 2025-03-31 ("basil") are read from both places. Nothing here panics: reads go through
//! `Value`'s non-panicking `Index`, a missing or mistyped field reads as absent, and only the
//! few fields a signal cannot do without become a [`DecodeError`].

use std::borrow::Cow;

use serde_json::Value;

use crate::domain::{
    CheckoutMode, CheckoutSession, Dispute, DisputeStatus, Invoice, LineItem, Refund, RefundLine,
    Signal, Stamp, Subscription, SubscriptionStatus,
};

/// Metadata key, on subscriptions and checkout sessions, naming the buyer's existing workspace.
const WORKSPACE_METADATA_KEY: &str = "uchat_workspace_id";

/// The event types the processor acts on; any other authentic event is stored as ignored.
/// `Event::signal` answers `None` for every other type. Not among them:
/// `customer.subscription.pending_update_expired`, since a pending update that expired
/// changed nothing.
pub const ACTED_ON: [&str; 22] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_reinstated",
    "charge.dispute.funds_withdrawn",
];

pub fn acts_on(event_type: &str) -> bool {
    ACTED_ON.contains(&event_type)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not a Stripe event at all. Intake should reject it: the same bytes will
    /// never decode.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// An event of a type we act on lacks a field we cannot do without. Mark the event
    /// failed for an operator: reprocessing the same payload gives the same answer.
    #[error("{event_type}: {reason}")]
    Unusable { event_type: String, reason: String },
}

/// A Stripe event's envelope, with `data.object` kept as JSON until [`Event::signal`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    /// Seconds since the epoch; 0 when `created` is missing or not an integer.
    pub created: i64,
    pub api_version: Option<String>,
    pub livemode: bool,
    /// `data.object`, or `Null` when the event has none.
    pub object: Value,
}

/// Stripe ids are at most this long; a longer one is no Stripe id (and would not fit a
/// Postgres index entry).
pub const MAX_ID_BYTES: usize = 255;

/// Stripe's event types are dotted lowercase words (`checkout.session.completed`), none
/// near this long. The cap keeps a forged type out of the table and the metric labels.
pub const MAX_TYPE_BYTES: usize = 100;

/// Whether `text` can be a Stripe event type: lowercase ASCII letters, digits, `.` and
/// `_`, at most [`MAX_TYPE_BYTES`].
pub fn is_event_type(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_TYPE_BYTES
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
}

/// Reads the envelope of a webhook body: a UTF-8 JSON object with string `id` (at most
/// [`MAX_ID_BYTES`]) and `type` (see [`is_event_type`]). NUL characters, which Postgres
/// cannot store, are dropped from every string.
pub fn parse_event(raw: &[u8]) -> Result<Event, DecodeError> {
    let malformed = |reason: &str| DecodeError::Malformed(reason.to_owned());
    let body =
        std::str::from_utf8(raw).map_err(|e| malformed(&format!("body is not UTF-8: {e}")))?;
    let mut envelope: Value =
        serde_json::from_str(body).map_err(|e| malformed(&format!("body is not JSON: {e}")))?;
    if !envelope.is_object() {
        return Err(malformed("body is not a JSON object"));
    }
    if has_nul_escape(body) {
        drop_nuls(&mut envelope);
    }
    let id = text(&envelope["id"]).ok_or_else(|| malformed("string `id` missing"))?;
    if id.len() > MAX_ID_BYTES {
        return Err(malformed("`id` is longer than a Stripe id"));
    }
    let event_type = text(&envelope["type"]).ok_or_else(|| malformed("string `type` missing"))?;
    if !is_event_type(&event_type) {
        return Err(malformed(&format!(
            "`type` is not a Stripe event type (lowercase letters, digits, `.` and `_`, at most \
             {MAX_TYPE_BYTES})"
        )));
    }
    // Take `data.object` out rather than clone it: it is most of the body. `get_mut`, not
    // `IndexMut`, because the latter panics when `data` is not an object.
    let object = envelope
        .get_mut("data")
        .and_then(|data| data.get_mut("object"))
        .map(Value::take)
        .unwrap_or_default();
    Ok(Event {
        id,
        event_type,
        created: envelope["created"].as_i64().unwrap_or(0),
        api_version: text(&envelope["api_version"]),
        livemode: flag(&envelope["livemode"]),
        object,
    })
}

/// The body as Postgres' `jsonb` takes it: unchanged, unless it has `\u0000` escapes,
/// which `jsonb` refuses; then re-written without the NULs, as [`parse_event`] reads it.
pub fn storable_json(raw: &str) -> Cow<'_, str> {
    if !has_nul_escape(raw) {
        return Cow::Borrowed(raw);
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(mut value) => {
            drop_nuls(&mut value);
            Cow::Owned(value.to_string())
        }
        Err(_) => Cow::Borrowed(raw),
    }
}

/// Whether JSON text may hold a NUL: only as the escape `\u0000`, since a raw NUL byte
/// is not valid JSON.
fn has_nul_escape(json: &str) -> bool {
    json.contains("\\u0000")
}

/// Removes NUL characters from every string and key.
fn drop_nuls(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(drop_nuls),
        Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(key, mut child)| {
                    drop_nuls(&mut child);
                    (key.replace('\0', ""), child)
                })
                .collect();
        }
        Value::Object(map) => map.values_mut().for_each(drop_nuls),
        _ => {}
    }
}

impl Event {
    /// Where this event stands in Stripe's order.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            created: self.created,
            event_id: self.id.clone(),
        }
    }

    /// The order keys (`OrderKeys::links`) of an event we act on; empty for any other.
    pub fn order_links(&self) -> Vec<String> {
        // The workspace id field plays no part in the keys.
        match self.signal("") {
            Ok(Some(signal)) => signal.order_keys().links(),
            _ => Vec::new(),
        }
    }

    /// What this event tells us, or `None` for types we do not act on.
    /// `workspace_id_field` is the key of the Checkout custom field where buyers name
    /// their existing workspace.
    pub fn signal(&self, workspace_id_field: &str) -> Result<Option<Signal>, DecodeError> {
        let o = &self.object;
        let decoded = match self.event_type.as_str() {
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "customer.subscription.paused"
            | "customer.subscription.resumed"
            | "customer.subscription.pending_update_applied" => {
                subscription(o).map(|subscription| Signal::Subscription {
                    subscription,
                    deleted: self.event_type == "customer.subscription.deleted",
                })
            }
            "invoice.paid" | "invoice.payment_succeeded" => {
                invoice(o).map(|invoice| Signal::InvoicePaid { invoice })
            }
            "invoice.payment_failed" => {
                invoice(o).map(|invoice| Signal::InvoicePaymentFailed { invoice })
            }
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                checkout_session(o, workspace_id_field)
                    .map(|session| Signal::CheckoutCompleted { session })
            }
            "checkout.session.async_payment_failed" => checkout_session(o, workspace_id_field)
                .map(|session| Signal::CheckoutFailed { session }),
            "charge.refunded" => charge_refunds(o).map(|refund| Signal::Refund { refund }),
            "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
                single_refund(o).map(|refund| Signal::Refund { refund })
            }
            "charge.dispute.created"
            | "charge.dispute.updated"
            | "charge.dispute.closed"
            | "charge.dispute.funds_withdrawn" => {
                dispute(o, None).map(|dispute| Signal::Dispute { dispute })
            }
            // Funds come back only to the merchant who won, whatever the status says yet.
            "charge.dispute.funds_reinstated" => {
                dispute(o, Some(DisputeStatus::Won)).map(|dispute| Signal::Dispute { dispute })
            }
            _ => return Ok(None),
        };
        decoded.map(Some).map_err(|reason| DecodeError::Unusable {
            event_type: self.event_type.clone(),
            reason,
        })
    }
}

// Decoders of `data.object`. They return the reason as a bare string; `signal` adds the
// event type.

pub(crate) fn subscription(o: &Value) -> Result<Subscription, String> {
    // The subscription is the order's whole desired state: reading a missing status or item
    // list as "none" could deprovision a paying buyer, so those stop the event instead.
    let items = o["items"]["data"]
        .as_array()
        .ok_or("data.object.items.data missing")?;
    Ok(Subscription {
        id: required(o, "id")?,
        customer: id_of(&o["customer"]),
        status: subscription_status(&required(o, "status")?),
        items: items.iter().filter_map(line_item).collect(),
        pause_collection: !o["pause_collection"].is_null(),
        cancel_at_period_end: flag(&o["cancel_at_period_end"]),
        cancel_at: o["cancel_at"].as_i64(),
        trial_end: o["trial_end"].as_i64(),
        workspace_id: text(&o["metadata"][WORKSPACE_METADATA_KEY]),
    })
}

fn subscription_status(status: &str) -> SubscriptionStatus {
    match status {
        "incomplete" => SubscriptionStatus::Incomplete,
        "incomplete_expired" => SubscriptionStatus::IncompleteExpired,
        "trialing" => SubscriptionStatus::Trialing,
        "active" => SubscriptionStatus::Active,
        "past_due" => SubscriptionStatus::PastDue,
        "unpaid" => SubscriptionStatus::Unpaid,
        "paused" => SubscriptionStatus::Paused,
        "canceled" => SubscriptionStatus::Canceled,
        other => SubscriptionStatus::Other(other.to_owned()),
    }
}

fn invoice(o: &Value) -> Result<Invoice, String> {
    let payment = invoice_payment(o);
    Ok(Invoice {
        id: required(o, "id")?,
        customer: id_of(&o["customer"]),
        subscription: id_of(&o["subscription"])
            .or_else(|| id_of(&o["parent"]["subscription_details"]["subscription"])),
        billing_reason: text(&o["billing_reason"]),
        customer_email: text(&o["customer_email"]),
        customer_name: text(&o["customer_name"]),
        lines: list(&o["lines"])
            .iter()
            .filter(|line| !is_proration(line))
            .filter_map(line_item)
            .collect(),
        payment_intent: id_of(&o["payment_intent"]).or_else(|| id_of(&payment["payment_intent"])),
        charge: id_of(&o["charge"]).or_else(|| id_of(&payment["charge"])),
        amount_paid: o["amount_paid"].as_i64().unwrap_or(0),
    })
}

/// Since 2025-03-31 an invoice names its payment in `payments.data[].payment`, and only
/// when Stripe includes that list. An invoice may have several attempts: prefer the paid one.
fn invoice_payment(o: &Value) -> &Value {
    let payments = list(&o["payments"]);
    payments
        .iter()
        .find(|p| p["status"] == "paid")
        .or_else(|| payments.first())
        .map_or(&Value::Null, |p| &p["payment"])
}

/// Proration lines settle the difference after a change; they do not say what the buyer
/// now has. Before 2025-03-31 a line said so itself; since then its parent does, for
/// subscription items and for invoice items alike.
fn is_proration(line: &Value) -> bool {
    let parent = &line["parent"];
    flag(&line["proration"])
        || flag(&parent["subscription_item_details"]["proration"])
        || flag(&parent["invoice_item_details"]["proration"])
}

fn checkout_session(o: &Value, workspace_id_field: &str) -> Result<CheckoutSession, String> {
    let id = required(o, "id")?;
    // The mode decides what gets provisioned, so a guess would be worse than stopping.
    let mode = match o["mode"].as_str().map(str::trim) {
        Some("payment") => CheckoutMode::Payment,
        Some("subscription") => CheckoutMode::Subscription,
        Some("setup") => CheckoutMode::Setup,
        Some(other) => return Err(format!("data.object.mode {other:?} unknown")),
        None => return Err("data.object.mode missing".into()),
    };
    let details = &o["customer_details"];
    Ok(CheckoutSession {
        id,
        customer: id_of(&o["customer"]),
        mode,
        paid: matches!(
            o["payment_status"].as_str(),
            Some("paid" | "no_payment_required")
        ),
        subscription: id_of(&o["subscription"]),
        payment_intent: id_of(&o["payment_intent"]),
        email: text(&details["email"]).or_else(|| text(&o["customer_email"])),
        name: text(&details["name"]),
        workspace_id: custom_field(o, workspace_id_field)
            .or_else(|| text(&o["client_reference_id"]))
            .or_else(|| text(&o["metadata"][WORKSPACE_METADATA_KEY])),
        amount_total: o["amount_total"].as_i64(),
        // Events carry line items only when someone expanded them; `None` tells the
        // processor to fetch them.
        line_items: o["line_items"]["data"]
            .as_array()
            .map(|items| items.iter().filter_map(line_item).collect()),
    })
}

/// The buyer's answer to the Checkout custom field keyed `key`, whatever the field's kind.
fn custom_field(o: &Value, key: &str) -> Option<String> {
    let field = o["custom_fields"]
        .as_array()?
        .iter()
        .find(|field| field["key"] == key)?;
    text(&field["text"]["value"])
        .or_else(|| text(&field["numeric"]["value"]))
        .or_else(|| text(&field["dropdown"]["value"]))
}

/// `charge.refunded` carries the charge: its cumulative `amount_refunded` always, and its
/// refunds only before 2022-11-15, when Stripe stopped embedding them.
fn charge_refunds(charge: &Value) -> Result<Refund, String> {
    Ok(Refund {
        charge: Some(required(charge, "id")?),
        customer: id_of(&charge["customer"]),
        payment_intent: id_of(&charge["payment_intent"]),
        invoice: id_of(&charge["invoice"]),
        charge_amount: charge["amount"].as_i64(),
        amount_refunded: charge["amount_refunded"].as_i64(),
        refunds: list(&charge["refunds"])
            .iter()
            .filter_map(refund_line)
            .collect(),
    })
}

/// `refund.*` events carry one refund, which knows its charge (and, lately, its customer).
fn single_refund(refund: &Value) -> Result<Refund, String> {
    // The refund id is what lets the order count this refund once, however often it is sent.
    required(refund, "id")?;
    Ok(Refund {
        customer: id_of(&refund["customer"]),
        charge: id_of(&refund["charge"]),
        payment_intent: id_of(&refund["payment_intent"]),
        invoice: None,
        charge_amount: None,
        amount_refunded: None,
        refunds: refund_line(refund).into_iter().collect(),
    })
}

/// A refund and whether it returned money: a `failed` or `canceled` refund returned none,
/// and takes back what its creation counted.
fn refund_line(refund: &Value) -> Option<RefundLine> {
    Some(RefundLine {
        id: short(&refund["id"])?,
        amount: refund["amount"].as_i64()?,
        reversed: matches!(refund["status"].as_str(), Some("failed" | "canceled")),
    })
}

/// `status` overrides the object's status (a funds event says more than it).
fn dispute(o: &Value, status: Option<DisputeStatus>) -> Result<Dispute, String> {
    let id = required(o, "id")?;
    let status = match status {
        Some(status) => status,
        // Won or lost only by its status: without one there is no answer.
        None => match required(o, "status")?.as_str() {
            "won" | "warning_closed" | "prevented" => DisputeStatus::Won,
            "lost" => DisputeStatus::Lost,
            // needs_response, warning_needs_response, under_review, warning_under_review,
            // and any status Stripe adds: still open.
            _ => DisputeStatus::Open,
        },
    };
    Ok(Dispute {
        id,
        charge: id_of(&o["charge"]),
        payment_intent: id_of(&o["payment_intent"]),
        invoice: None,
        customer: None,
        amount: o["amount"].as_i64(),
        status,
    })
}

// Small readers shared by the decoders. Each treats a missing or mistyped field as absent.

/// A field the signal cannot do without: an id or a status, at most [`MAX_ID_BYTES`].
fn required(o: &Value, field: &str) -> Result<String, String> {
    short(&o[field]).ok_or_else(|| format!("data.object.{field} missing"))
}

/// A string no longer than a Stripe id; anything longer is no id.
fn short(v: &Value) -> Option<String> {
    text(v).filter(|s| s.len() <= MAX_ID_BYTES)
}

/// A string, trimmed; empty strings and non-strings are absent.
pub(crate) fn text(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// An id, given as `"id"` or, when the field was expanded, as an object with an `id`.
pub(crate) fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Object(_) => short(&v["id"]),
        _ => short(v),
    }
}

fn flag(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

/// The `data` of a Stripe list object; empty when the list is missing or malformed.
pub(crate) fn list(v: &Value) -> &[Value] {
    v["data"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A priced line of any era: subscription item, invoice line or checkout line item.
/// Lines without a price name nothing we sell and are skipped.
pub(super) fn line_item(line: &Value) -> Option<LineItem> {
    let price = id_of(&line["price"])
        // Invoice lines since 2025-03-31.
        .or_else(|| id_of(&line["pricing"]["price_details"]["price"]))
        // Accounts pinned to versions from before Prices existed send only the plan.
        .or_else(|| id_of(&line["plan"]))?;
    // Stripe omits the quantity of metered items; such a line stands for one.
    let quantity = line["quantity"]
        .as_u64()
        .and_then(|q| u32::try_from(q).ok())
        .unwrap_or(1);
    Some(LineItem { price, quantity })
}

#[cfg(test)]
mod tests;
