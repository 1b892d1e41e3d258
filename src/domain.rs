//! The few facts we take from Stripe, in our own words.
//!
//! The `stripe` module decodes any API version into these types; the planner reads only
//! these. Neither side sees the other's world.

use serde::{Deserialize, Serialize};

/// Where an event stands in Stripe's order: `created`, then event id.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub created: i64,
    pub event_id: String,
}

/// One priced line of a subscription, invoice or checkout session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub price: String,
    pub quantity: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Paused,
    Canceled,
    /// A status Stripe may add later; treated like `incomplete` (nothing to provision).
    Other(String),
}

/// A subscription as Stripe last described it: the desired state of its order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: Option<String>,
    pub status: SubscriptionStatus,
    pub items: Vec<LineItem>,
    /// `pause_collection` is set: Stripe stopped collecting payment, access goes on.
    pub pause_collection: bool,
    pub cancel_at_period_end: bool,
    /// When a scheduled cancellation takes effect. In flexible billing mode (the default
    /// since 2025-09-30) "cancel at period end" sets this and leaves the flag false.
    pub cancel_at: Option<i64>,
    /// When the trial ends, for a `trialing` subscription.
    pub trial_end: Option<i64>,
    /// `metadata.uchat_workspace_id`: the buyer's existing workspace.
    pub workspace_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    /// `subscription_create`, `subscription_cycle`, `subscription_update`, ...
    pub billing_reason: Option<String>,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    pub lines: Vec<LineItem>,
    pub payment_intent: Option<String>,
    pub charge: Option<String>,
    pub amount_paid: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutMode {
    Payment,
    Subscription,
    Setup,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub customer: Option<String>,
    pub mode: CheckoutMode,
    /// `payment_status` is `paid` or `no_payment_required`.
    pub paid: bool,
    pub subscription: Option<String>,
    pub payment_intent: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// An existing workspace the buyer named: custom field, `client_reference_id` or metadata.
    pub workspace_id: Option<String>,
    pub amount_total: Option<i64>,
    /// Not in the event: the processor fetches them from the Stripe API for payment mode.
    pub line_items: Option<Vec<LineItem>>,
}

/// Refunds of one charge, from `charge.refunded` (the charge, cumulative) or a `refund.*`
/// event (one refund).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub customer: Option<String>,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    /// The invoice the charge paid: in the payload before 2025-03-31, else found through
    /// Stripe's invoice payments by the processor.
    pub invoice: Option<String>,
    /// The charge's amount, when the event carries the charge.
    pub charge_amount: Option<i64>,
    /// The charge's cumulative `amount_refunded`, when the event carries the charge.
    pub amount_refunded: Option<i64>,
    /// Individual refunds seen in this event.
    pub refunds: Vec<RefundLine>,
}

/// One refund: what it returns, or that it failed or was canceled and returned nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLine {
    pub id: String,
    pub amount: i64,
    /// `failed` or `canceled`: the money stayed with the merchant.
    pub reversed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    /// The invoice the disputed charge paid, when known (as for [`Refund::invoice`]).
    pub invoice: Option<String>,
    pub customer: Option<String>,
    pub amount: Option<i64>,
    pub status: DisputeStatus,
}

/// Where a dispute stands, from Stripe's status (or a funds event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    /// `needs_response`, `warning_needs_response`, `under_review`, `warning_under_review`.
    Open,
    /// `won`, `warning_closed`, `prevented`, or funds reinstated.
    Won,
    Lost,
}

/// What one Stripe event tells us, for the event types we act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// `customer.subscription.created|updated|deleted|paused|resumed`.
    Subscription {
        subscription: Subscription,
        deleted: bool,
    },
    InvoicePaid {
        invoice: Invoice,
    },
    InvoicePaymentFailed {
        invoice: Invoice,
    },
    /// `checkout.session.completed` or `checkout.session.async_payment_succeeded`.
    CheckoutCompleted {
        session: CheckoutSession,
    },
    /// `checkout.session.async_payment_failed`: the delayed payment never came.
    CheckoutFailed {
        session: CheckoutSession,
    },
    Refund {
        refund: Refund,
    },
    /// `charge.dispute.*`: the dispute as it stands.
    Dispute {
        dispute: Dispute,
    },
}

/// The Stripe ids that tie a signal to an order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderKeys {
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub checkout_session: Option<String>,
    pub payment_intent: Option<String>,
    pub invoice: Option<String>,
    pub charge: Option<String>,
}

impl OrderKeys {
    /// The keys as stored: each id with its kind (`sub:sub_123`), sorted. Two events of
    /// one order share at least one.
    pub fn links(&self) -> Vec<String> {
        let mut links: Vec<String> = [
            ("sub", &self.subscription),
            ("cs", &self.checkout_session),
            ("pi", &self.payment_intent),
            ("in", &self.invoice),
            ("ch", &self.charge),
        ]
        .into_iter()
        .filter_map(|(kind, id)| id.as_ref().map(|id| format!("{kind}:{id}")))
        .collect();
        links.sort();
        links
    }
}

impl Signal {
    pub fn order_keys(&self) -> OrderKeys {
        match self {
            Signal::Subscription { subscription, .. } => OrderKeys {
                customer: subscription.customer.clone(),
                subscription: Some(subscription.id.clone()),
                ..OrderKeys::default()
            },
            Signal::InvoicePaid { invoice } | Signal::InvoicePaymentFailed { invoice } => {
                OrderKeys {
                    customer: invoice.customer.clone(),
                    subscription: invoice.subscription.clone(),
                    payment_intent: invoice.payment_intent.clone(),
                    invoice: Some(invoice.id.clone()),
                    charge: invoice.charge.clone(),
                    ..OrderKeys::default()
                }
            }
            Signal::CheckoutCompleted { session } | Signal::CheckoutFailed { session } => {
                OrderKeys {
                    customer: session.customer.clone(),
                    subscription: session.subscription.clone(),
                    checkout_session: Some(session.id.clone()),
                    payment_intent: session.payment_intent.clone(),
                    ..OrderKeys::default()
                }
            }
            Signal::Refund { refund } => OrderKeys {
                customer: refund.customer.clone(),
                payment_intent: refund.payment_intent.clone(),
                invoice: refund.invoice.clone(),
                charge: refund.charge.clone(),
                ..OrderKeys::default()
            },
            Signal::Dispute { dispute } => OrderKeys {
                customer: dispute.customer.clone(),
                payment_intent: dispute.payment_intent.clone(),
                invoice: dispute.invoice.clone(),
                charge: dispute.charge.clone(),
                ..OrderKeys::default()
            },
        }
    }
}
