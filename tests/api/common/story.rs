//! Stripe events for test stories, built from the real samples with only the fields a
//! story needs changed: ids, times, prices, statuses and amounts.

use serde_json::{json, Value};

use super::sample;

pub const CUSTOMER: &str = "cus_story";
pub const SUBSCRIPTION: &str = "sub_story";
pub const EMAIL: &str = "ada@example.com";
pub const NAME: &str = "Ada Lovelace";

/// Who buys, and the Stripe ids of their subscription sale.
#[derive(Clone, Debug)]
pub struct Buyer {
    pub customer: String,
    pub subscription: String,
    pub checkout_session: String,
    pub email: String,
    pub name: String,
}

impl Buyer {
    /// Ada, the buyer of the one-sale stories.
    pub fn story() -> Buyer {
        Buyer {
            customer: CUSTOMER.into(),
            subscription: SUBSCRIPTION.into(),
            checkout_session: "cs_story_subscription".into(),
            email: EMAIL.into(),
            name: NAME.into(),
        }
    }

    /// Buyer number `n` of many, each with ids and an email of their own.
    pub fn numbered(n: usize) -> Buyer {
        Buyer {
            customer: format!("cus_buyer{n}"),
            subscription: format!("sub_buyer{n}"),
            checkout_session: format!("cs_buyer{n}"),
            email: format!("buyer{n}@example.com"),
            name: format!("Buyer {n}"),
        }
    }
}

fn from_sample(file: &str, id: &str, event_type: &str, created: i64) -> Value {
    let mut event: Value = serde_json::from_slice(&sample(file)).unwrap();
    event["id"] = json!(id);
    event["type"] = json!(event_type);
    event["created"] = json!(created);
    if let Some(data) = event["data"].as_object_mut() {
        data.remove("previous_attributes");
    }
    event
}

fn bytes(event: Value) -> Vec<u8> {
    serde_json::to_vec(&event).unwrap()
}

/// A subscription's state as a story sets it.
#[derive(Clone)]
pub struct Sub {
    pub status: &'static str,
    pub items: Vec<(&'static str, u32)>,
    pub cancel_at_period_end: bool,
    pub paused: bool,
}

impl Sub {
    pub fn active(items: &[(&'static str, u32)]) -> Sub {
        Sub {
            status: "active",
            items: items.to_vec(),
            cancel_at_period_end: false,
            paused: false,
        }
    }

    pub fn with_status(mut self, status: &'static str) -> Sub {
        self.status = status;
        self
    }
}

/// `customer.subscription.*` for the story's subscription, from the 2020-era sample.
pub fn subscription(id: &str, event_type: &str, created: i64, sub: &Sub) -> Vec<u8> {
    subscription_of(&Buyer::story(), id, event_type, created, sub)
}

/// `customer.subscription.*` for `buyer`'s subscription, from the 2020-era sample.
pub fn subscription_of(
    buyer: &Buyer,
    id: &str,
    event_type: &str,
    created: i64,
    sub: &Sub,
) -> Vec<u8> {
    let mut event = from_sample(
        "customer.subscription.updated.json",
        id,
        event_type,
        created,
    );
    let object = &mut event["data"]["object"];
    let template = object["items"]["data"][0].clone();
    let items: Vec<Value> = sub
        .items
        .iter()
        .map(|(price, quantity)| {
            let mut item = template.clone();
            item["id"] = json!(format!("si_{price}"));
            item["price"]["id"] = json!(price);
            item["plan"]["id"] = json!(price);
            item["quantity"] = json!(quantity);
            item["subscription"] = json!(buyer.subscription);
            item
        })
        .collect();
    object["id"] = json!(buyer.subscription);
    object["customer"] = json!(buyer.customer);
    object["status"] = json!(sub.status);
    object["items"]["data"] = json!(items);
    object["cancel_at_period_end"] = json!(sub.cancel_at_period_end);
    object["pause_collection"] = if sub.paused {
        json!({"behavior": "void", "resumes_at": null})
    } else {
        Value::Null
    };
    object["metadata"] = json!({});
    bytes(event)
}

/// `invoice.paid` or `invoice.payment_failed` for the story's subscription, 2020 shape.
pub fn invoice(
    id: &str,
    event_type: &str,
    created: i64,
    billing_reason: &str,
    price: &str,
) -> Vec<u8> {
    let mut event = from_sample("invoice.paid.json", id, event_type, created);
    let object = &mut event["data"]["object"];
    object["id"] = json!(format!("in_{id}"));
    object["subscription"] = json!(SUBSCRIPTION);
    object["customer"] = json!(CUSTOMER);
    object["customer_email"] = json!(EMAIL);
    object["customer_name"] = json!(NAME);
    object["billing_reason"] = json!(billing_reason);
    object["payment_intent"] = json!(format!("pi_{id}"));
    object["charge"] = json!(format!("ch_{id}"));
    for line in object["lines"]["data"].as_array_mut().unwrap() {
        line["price"]["id"] = json!(price);
    }
    bytes(event)
}

/// `checkout.session.completed` in subscription mode, for the story's subscription.
pub fn subscription_checkout(id: &str, created: i64) -> Vec<u8> {
    subscription_checkout_of(&Buyer::story(), id, created)
}

/// `checkout.session.completed` in subscription mode, for `buyer`'s subscription.
pub fn subscription_checkout_of(buyer: &Buyer, id: &str, created: i64) -> Vec<u8> {
    let mut event = from_sample(
        "checkout.session.completed.json",
        id,
        "checkout.session.completed",
        created,
    );
    let object = &mut event["data"]["object"];
    object["id"] = json!(buyer.checkout_session);
    object["mode"] = json!("subscription");
    object["subscription"] = json!(buyer.subscription);
    object["payment_intent"] = Value::Null;
    object["customer"] = json!(buyer.customer);
    object["customer_details"]["email"] = json!(buyer.email);
    object["customer_details"]["name"] = json!(buyer.name);
    bytes(event)
}

pub const POINTS_SESSION: &str = "cs_story_points";
pub const POINTS_PAYMENT: &str = "pi_story_points";
pub const POINTS_CHARGE: &str = "ch_story_points";

/// A paid one-off Checkout payment of `amount_total`, for a buyer who names workspace
/// `workspace_id` in the session's metadata.
pub fn points_checkout(id: &str, created: i64, amount_total: i64, workspace_id: &str) -> Vec<u8> {
    let mut event = from_sample(
        "checkout.session.completed.json",
        id,
        "checkout.session.completed",
        created,
    );
    let object = &mut event["data"]["object"];
    object["id"] = json!(POINTS_SESSION);
    object["payment_intent"] = json!(POINTS_PAYMENT);
    object["customer"] = json!(CUSTOMER);
    object["amount_total"] = json!(amount_total);
    object["metadata"] = json!({ "uchat_workspace_id": workspace_id });
    bytes(event)
}

/// `charge.refunded` for the points payment: the cumulative refunded amount and the
/// refunds so far.
pub fn charge_refunded(id: &str, created: i64, amount: i64, refunds: &[(&str, i64)]) -> Vec<u8> {
    let mut event = from_sample("charge.refunded.json", id, "charge.refunded", created);
    let object = &mut event["data"]["object"];
    let refunded: i64 = refunds.iter().map(|(_, amount)| amount).sum();
    object["id"] = json!(POINTS_CHARGE);
    object["payment_intent"] = json!(POINTS_PAYMENT);
    object["invoice"] = Value::Null;
    object["customer"] = json!(CUSTOMER);
    object["amount"] = json!(amount);
    object["amount_captured"] = json!(amount);
    object["amount_refunded"] = json!(refunded);
    object["refunded"] = json!(refunded >= amount);
    let template = object["refunds"]["data"][0].clone();
    object["refunds"]["data"] = json!(refunds
        .iter()
        .map(|(refund, amount)| {
            let mut item = template.clone();
            item["id"] = json!(refund);
            item["amount"] = json!(amount);
            item["charge"] = json!(POINTS_CHARGE);
            item["payment_intent"] = json!(POINTS_PAYMENT);
            item
        })
        .collect::<Vec<_>>());
    object["refunds"]["total_count"] = json!(refunds.len());
    bytes(event)
}

/// `refund.created` for one refund of the points payment.
pub fn refund_created(id: &str, created: i64, refund: &str, amount: i64) -> Vec<u8> {
    let mut event = from_sample("refund.created.json", id, "refund.created", created);
    let object = &mut event["data"]["object"];
    object["id"] = json!(refund);
    object["amount"] = json!(amount);
    object["charge"] = json!(POINTS_CHARGE);
    object["payment_intent"] = json!(POINTS_PAYMENT);
    bytes(event)
}

/// `event` with `patch`'s keys set on its `data.object`.
pub fn patched(event: Vec<u8>, patch: Value) -> Vec<u8> {
    let mut event: Value = serde_json::from_slice(&event).unwrap();
    if let (Some(object), Value::Object(patch)) = (event["data"]["object"].as_object_mut(), patch) {
        object.extend(patch);
    }
    bytes(event)
}

/// A subscription sale of `buyer`, as Stripe reports it: Checkout completed, then the
/// subscription created active on `items`, at `created` and the second after.
pub fn subscription_sale(
    buyer: &Buyer,
    id: &str,
    created: i64,
    items: &[(&'static str, u32)],
) -> Vec<Vec<u8>> {
    vec![
        subscription_checkout_of(buyer, &format!("{id}_checkout"), created),
        subscription_of(
            buyer,
            &format!("{id}_created"),
            "customer.subscription.created",
            created + 1,
            &Sub::active(items),
        ),
    ]
}

/// The story's buyer subscribes to `items` (event ids from `evt_a`, at 100).
pub fn story_sale(items: &[(&'static str, u32)]) -> Vec<Vec<u8>> {
    subscription_sale(&Buyer::story(), "evt_a", 100, items)
}
