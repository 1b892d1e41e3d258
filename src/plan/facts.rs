//! What Stripe told us about one order, folded so that arrival order and repeats don't matter.
//!
//! Every field keeps the newest (by stamp), the earliest, the largest or the union of what
//! the signals said. So `apply` gives the same facts whatever order the signals come in,
//! and applying a signal twice changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{CheckoutMode, Invoice, LineItem, Signal, Stamp, SubscriptionStatus};

/// Everything Stripe told us about one order; stored as JSON on the order.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Facts {
    pub customer: Option<Earliest>,
    pub email: Option<Earliest>,
    pub name: Option<Earliest>,
    /// An existing workspace the buyer named, as they typed it.
    pub workspace_id: Option<Earliest>,
    pub subscription_id: Option<Earliest>,
    /// The workspace of an earlier order of the same customer; set by the processor.
    pub customer_workspace: Option<i64>,
    /// The newest subscription snapshot.
    pub subscription: Option<Snapshot>,
    /// Deleted, canceled or expired: final, whatever snapshot comes after.
    pub subscription_ended: bool,
    /// Whether the newest word on payment says the subscription is behind.
    pub standing: Option<Standing>,
    /// An invoice of the order was paid: an `incomplete` subscription has been paid for.
    pub invoice_paid: bool,
    /// The lines of the paid first invoice: the items until a snapshot arrives.
    pub first_invoice_lines: Option<Vec<LineItem>>,
    pub checkout: Option<Checkout>,
    /// Each refund's amount, by refund id.
    pub refunds: BTreeMap<String, i64>,
    /// The largest cumulative `amount_refunded` a charge reported.
    pub amount_refunded: i64,
    pub charge_amount: Option<i64>,
    pub disputes: BTreeMap<String, DisputeOutcome>,
}

/// A value and the stamp of the earliest event that gave it: the earliest one wins, so
/// the value doesn't depend on which event arrived first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Earliest {
    pub value: String,
    pub stamp: Stamp,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub stamp: Stamp,
    pub status: SubscriptionStatus,
    pub items: Vec<LineItem>,
    pub pause_collection: bool,
    pub cancel_at_period_end: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Standing {
    pub stamp: Stamp,
    pub delinquent: bool,
}

/// The order's Checkout session; one per order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Checkout {
    pub id: String,
    pub mode: CheckoutMode,
    pub paid: bool,
    pub line_items: Option<Vec<LineItem>>,
    pub amount_total: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DisputeOutcome {
    Open,
    Won,
    Lost,
}

impl Facts {
    pub fn apply(&mut self, stamp: &Stamp, signal: &Signal) {
        match signal {
            Signal::Subscription {
                subscription,
                deleted,
            } => {
                keep_earliest(&mut self.customer, stamp, subscription.customer.as_deref());
                keep_earliest(
                    &mut self.workspace_id,
                    stamp,
                    subscription.workspace_id.as_deref(),
                );
                keep_earliest(&mut self.subscription_id, stamp, Some(&subscription.id));
                use SubscriptionStatus::*;
                match subscription.status {
                    PastDue | Unpaid => self.note_standing(stamp, true),
                    Active | Trialing => self.note_standing(stamp, false),
                    _ => {}
                }
                self.subscription_ended |=
                    *deleted || matches!(subscription.status, Canceled | IncompleteExpired);
                if self
                    .subscription
                    .as_ref()
                    .is_none_or(|newest| *stamp > newest.stamp)
                {
                    self.subscription = Some(Snapshot {
                        stamp: stamp.clone(),
                        status: subscription.status.clone(),
                        items: subscription.items.clone(),
                        pause_collection: subscription.pause_collection,
                        cancel_at_period_end: subscription.cancel_at_period_end,
                    });
                }
            }
            Signal::InvoicePaid { invoice } => {
                self.note_invoice(stamp, invoice);
                self.note_standing(stamp, false);
                self.invoice_paid = true;
                // Later invoices may carry proration lines; the first one lists the items.
                if invoice.billing_reason.as_deref() == Some("subscription_create") {
                    self.first_invoice_lines
                        .get_or_insert_with(|| invoice.lines.clone());
                }
            }
            Signal::InvoicePaymentFailed { invoice } => {
                self.note_invoice(stamp, invoice);
                self.note_standing(stamp, true);
            }
            Signal::CheckoutCompleted { session } => {
                keep_earliest(&mut self.customer, stamp, session.customer.as_deref());
                keep_earliest(&mut self.email, stamp, session.email.as_deref());
                keep_earliest(&mut self.name, stamp, session.name.as_deref());
                keep_earliest(
                    &mut self.workspace_id,
                    stamp,
                    session.workspace_id.as_deref(),
                );
                keep_earliest(
                    &mut self.subscription_id,
                    stamp,
                    session.subscription.as_deref(),
                );
                let checkout = self.checkout.get_or_insert_with(|| Checkout {
                    id: session.id.clone(),
                    mode: session.mode.clone(),
                    paid: false,
                    line_items: None,
                    amount_total: None,
                });
                // `completed` may say unpaid and `async_payment_succeeded` paid, in any order.
                if checkout.id == session.id {
                    checkout.paid |= session.paid;
                    if checkout.line_items.is_none() {
                        checkout.line_items.clone_from(&session.line_items);
                    }
                    checkout.amount_total = checkout.amount_total.or(session.amount_total);
                }
            }
            Signal::Refund { refund } => {
                keep_earliest(&mut self.customer, stamp, refund.customer.as_deref());
                for (id, amount) in &refund.refunds {
                    self.refunds.insert(id.clone(), *amount);
                }
                self.amount_refunded = self
                    .amount_refunded
                    .max(refund.amount_refunded.unwrap_or(0));
                self.charge_amount = self.charge_amount.max(refund.charge_amount);
            }
            Signal::DisputeOpened { dispute } => {
                self.disputes
                    .entry(dispute.id.clone())
                    .or_insert(DisputeOutcome::Open);
            }
            Signal::DisputeClosed { dispute } => {
                let outcome = if dispute.status == "won" {
                    DisputeOutcome::Won
                } else {
                    DisputeOutcome::Lost
                };
                self.disputes.insert(dispute.id.clone(), outcome);
            }
        }
    }

    /// The buyer's email and name as Stripe's customer record has them, for orders whose
    /// events named none; an email from an event still wins when it is older.
    pub fn learn_contact(&mut self, stamp: &Stamp, email: Option<&str>, name: Option<&str>) {
        keep_earliest(&mut self.email, stamp, email);
        keep_earliest(&mut self.name, stamp, name);
    }

    pub fn email(&self) -> Option<&str> {
        value(&self.email)
    }

    pub fn name(&self) -> Option<&str> {
        value(&self.name)
    }

    pub fn customer(&self) -> Option<&str> {
        value(&self.customer)
    }

    pub fn workspace_id(&self) -> Option<&str> {
        value(&self.workspace_id)
    }

    pub fn subscription_id(&self) -> Option<&str> {
        value(&self.subscription_id)
    }

    pub fn delinquent(&self) -> bool {
        self.standing.as_ref().is_some_and(|s| s.delinquent)
    }

    /// How much went back: the charge's cumulative figure, or the refunds we saw one by one
    /// if they add up to more (a `refund.created` may come before its `charge.refunded`).
    pub fn refunded(&self) -> i64 {
        let sum = self
            .refunds
            .values()
            .fold(0i64, |sum, a| sum.saturating_add(*a));
        self.amount_refunded.max(sum)
    }

    /// Everything paid was refunded. The amount paid is the charge's, or the Checkout total.
    pub fn fully_refunded(&self) -> bool {
        let paid = self
            .charge_amount
            .or(self.checkout.as_ref().and_then(|c| c.amount_total));
        let refunded = self.refunded();
        refunded > 0 && paid.is_some_and(|paid| refunded >= paid)
    }

    fn note_invoice(&mut self, stamp: &Stamp, invoice: &Invoice) {
        keep_earliest(&mut self.customer, stamp, invoice.customer.as_deref());
        keep_earliest(&mut self.email, stamp, invoice.customer_email.as_deref());
        keep_earliest(&mut self.name, stamp, invoice.customer_name.as_deref());
        keep_earliest(
            &mut self.subscription_id,
            stamp,
            invoice.subscription.as_deref(),
        );
    }

    fn note_standing(&mut self, stamp: &Stamp, delinquent: bool) {
        if self
            .standing
            .as_ref()
            .is_none_or(|newest| *stamp > newest.stamp)
        {
            self.standing = Some(Standing {
                stamp: stamp.clone(),
                delinquent,
            });
        }
    }
}

fn keep_earliest(slot: &mut Option<Earliest>, stamp: &Stamp, value: Option<&str>) {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return;
    };
    if slot.as_ref().is_none_or(|earliest| *stamp < earliest.stamp) {
        *slot = Some(Earliest {
            value: value.to_owned(),
            stamp: stamp.clone(),
        });
    }
}

fn value(slot: &Option<Earliest>) -> Option<&str> {
    slot.as_ref().map(|earliest| earliest.value.as_str())
}

/// Signal builders, shared with the planner's tests.
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{
        CheckoutSession, Dispute, Invoice, LineItem, Refund, Signal, Stamp, Subscription,
        SubscriptionStatus,
    };

    pub(crate) fn stamp(n: i64) -> Stamp {
        Stamp {
            created: 1_700_000_000 + n,
            event_id: format!("evt_{n:03}"),
        }
    }

    pub(crate) fn items(list: &[(&str, u32)]) -> Vec<LineItem> {
        list.iter()
            .map(|&(price, quantity)| LineItem {
                price: price.to_owned(),
                quantity,
            })
            .collect()
    }

    pub(crate) fn subscription(status: SubscriptionStatus, list: &[(&str, u32)]) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            customer: Some("cus_1".into()),
            status,
            items: items(list),
            pause_collection: false,
            cancel_at_period_end: false,
            workspace_id: None,
        }
    }

    pub(crate) fn updated(subscription: Subscription) -> Signal {
        Signal::Subscription {
            subscription,
            deleted: false,
        }
    }

    pub(crate) fn deleted(list: &[(&str, u32)]) -> Signal {
        Signal::Subscription {
            subscription: subscription(SubscriptionStatus::Canceled, list),
            deleted: true,
        }
    }

    pub(crate) fn invoice(billing_reason: &str, list: &[(&str, u32)]) -> Invoice {
        Invoice {
            id: format!("in_{billing_reason}"),
            customer: Some("cus_1".into()),
            subscription: Some("sub_1".into()),
            billing_reason: Some(billing_reason.into()),
            customer_email: Some("ann@example.com".into()),
            customer_name: Some("Ann".into()),
            lines: items(list),
            payment_intent: None,
            charge: Some("ch_1".into()),
            amount_paid: 5000,
        }
    }

    pub(crate) fn invoice_paid(billing_reason: &str, list: &[(&str, u32)]) -> Signal {
        Signal::InvoicePaid {
            invoice: invoice(billing_reason, list),
        }
    }

    pub(crate) fn invoice_failed(billing_reason: &str) -> Signal {
        Signal::InvoicePaymentFailed {
            invoice: invoice(billing_reason, &[]),
        }
    }

    pub(crate) fn session(mode: CheckoutMode, list: Option<&[(&str, u32)]>) -> CheckoutSession {
        CheckoutSession {
            id: "cs_1".into(),
            customer: Some("cus_1".into()),
            subscription: (mode == CheckoutMode::Subscription).then(|| "sub_1".into()),
            mode,
            paid: true,
            payment_intent: Some("pi_1".into()),
            email: Some("ann@example.com".into()),
            name: Some("Ann".into()),
            workspace_id: None,
            amount_total: Some(5000),
            line_items: list.map(items),
        }
    }

    pub(crate) fn completed(session: CheckoutSession) -> Signal {
        Signal::CheckoutCompleted { session }
    }

    /// A refund event: its individual refunds, and the charge's figures when it carries them.
    pub(crate) fn refund(refunds: &[(&str, i64)], charge: Option<(i64, i64)>) -> Signal {
        Signal::Refund {
            refund: Refund {
                customer: Some("cus_1".into()),
                charge: Some("ch_1".into()),
                payment_intent: Some("pi_1".into()),
                invoice: None,
                charge_amount: charge.map(|(amount, _)| amount),
                amount_refunded: charge.map(|(_, refunded)| refunded),
                refunds: refunds.iter().map(|&(id, a)| (id.to_owned(), a)).collect(),
            },
        }
    }

    pub(crate) fn dispute(id: &str, status: &str) -> Dispute {
        Dispute {
            id: id.into(),
            charge: Some("ch_1".into()),
            payment_intent: Some("pi_1".into()),
            status: status.into(),
        }
    }

    pub(crate) fn facts_of(signals: &[(i64, Signal)]) -> Facts {
        let mut facts = Facts::default();
        for (n, signal) in signals {
            facts.apply(&stamp(*n), signal);
        }
        facts
    }

    #[test]
    fn only_a_newer_snapshot_changes_the_subscription() {
        let business = subscription(SubscriptionStatus::Active, &[("price_business", 1)]);
        let plus = subscription(SubscriptionStatus::Active, &[("price_plus", 1)]);
        let facts = facts_of(&[(2, updated(plus.clone())), (1, updated(business))]);
        let snapshot = facts.subscription.unwrap();
        assert_eq!(snapshot.items, plus.items);
        assert_eq!(snapshot.stamp, stamp(2));
    }

    #[test]
    fn a_deleted_subscription_stays_ended() {
        let active = subscription(SubscriptionStatus::Active, &[("price_business", 1)]);
        let facts = facts_of(&[(1, deleted(&[])), (2, updated(active))]);
        assert!(facts.subscription_ended);
        let expired = subscription(SubscriptionStatus::IncompleteExpired, &[]);
        assert!(facts_of(&[(1, updated(expired))]).subscription_ended);
    }

    #[test]
    fn the_newest_word_on_payment_decides_standing() {
        let past_due = subscription(SubscriptionStatus::PastDue, &[]);
        let active = subscription(SubscriptionStatus::Active, &[]);
        let paid = invoice_paid("subscription_cycle", &[]);
        assert!(
            facts_of(&[(1, paid.clone()), (2, invoice_failed("subscription_cycle"))]).delinquent()
        );
        assert!(
            !facts_of(&[(3, paid.clone()), (2, invoice_failed("subscription_cycle"))]).delinquent()
        );
        assert!(facts_of(&[(1, paid), (2, updated(past_due))]).delinquent());
        // A canceled or paused snapshot says nothing about payment.
        let canceled = facts_of(&[(1, updated(active)), (2, deleted(&[]))]);
        assert!(!canceled.delinquent());
    }

    #[test]
    fn only_the_first_invoice_lists_the_items() {
        let facts = facts_of(&[
            (1, invoice_paid("subscription_update", &[("price_plus", 1)])),
            (
                2,
                invoice_paid("subscription_create", &[("price_business", 1)]),
            ),
        ]);
        assert!(facts.invoice_paid);
        assert_eq!(
            facts.first_invoice_lines,
            Some(items(&[("price_business", 1)]))
        );
    }

    #[test]
    fn the_earliest_non_empty_identity_wins() {
        let mut early = session(CheckoutMode::Subscription, None);
        early.email = Some("  ".into());
        early.name = Some("Ann".into());
        early.workspace_id = Some(" 42 ".into());
        let mut late = invoice("subscription_create", &[]);
        late.customer_email = Some("ann@example.com".into());
        late.customer_name = Some("Annie".into());
        let signals = [
            (1, completed(early)),
            (2, Signal::InvoicePaid { invoice: late }),
        ];
        let reversed: Vec<_> = signals.iter().rev().cloned().collect();
        for facts in [facts_of(&signals), facts_of(&reversed)] {
            assert_eq!(facts.email(), Some("ann@example.com"));
            assert_eq!(facts.name(), Some("Ann"));
            assert_eq!(facts.workspace_id(), Some("42"));
            assert_eq!(facts.customer(), Some("cus_1"));
            assert_eq!(facts.subscription_id(), Some("sub_1"));
        }
    }

    #[test]
    fn a_checkout_paid_later_is_paid() {
        let mut unpaid = session(CheckoutMode::Payment, None);
        unpaid.paid = false;
        let paid = session(CheckoutMode::Payment, Some(&[("price_points", 1)]));
        let facts = facts_of(&[(2, completed(paid)), (1, completed(unpaid))]);
        let checkout = facts.checkout.unwrap();
        assert!(checkout.paid);
        assert_eq!(checkout.line_items, Some(items(&[("price_points", 1)])));
    }

    #[test]
    fn refunds_count_once_and_the_charge_figure_when_larger() {
        let facts = facts_of(&[
            (1, refund(&[("re_1", 1000)], None)),
            (2, refund(&[("re_1", 1000)], Some((5000, 1000)))),
            (3, refund(&[("re_2", 500)], None)),
        ]);
        assert_eq!(facts.refunded(), 1500);
        assert!(!facts.fully_refunded());
        let facts = facts_of(&[(1, refund(&[], Some((5000, 5000))))]);
        assert_eq!(facts.refunded(), 5000);
        assert!(facts.fully_refunded());
    }

    #[test]
    fn a_closed_dispute_is_not_reopened() {
        let opened = Signal::DisputeOpened {
            dispute: dispute("dp_1", "needs_response"),
        };
        let won = Signal::DisputeClosed {
            dispute: dispute("dp_1", "won"),
        };
        let lost = Signal::DisputeClosed {
            dispute: dispute("dp_2", "lost"),
        };
        let facts = facts_of(&[(2, won), (1, opened.clone()), (3, lost), (4, opened)]);
        assert_eq!(
            facts.disputes.into_iter().collect::<Vec<_>>(),
            [
                ("dp_1".to_owned(), DisputeOutcome::Won),
                ("dp_2".to_owned(), DisputeOutcome::Lost)
            ]
        );
    }

    #[test]
    fn applying_a_signal_twice_changes_nothing() {
        let signals = [
            (1, completed(session(CheckoutMode::Subscription, None))),
            (
                2,
                updated(subscription(
                    SubscriptionStatus::Active,
                    &[("price_business", 1)],
                )),
            ),
            (
                3,
                invoice_paid("subscription_create", &[("price_business", 1)]),
            ),
            (4, refund(&[("re_1", 100)], Some((5000, 100)))),
            (
                5,
                Signal::DisputeOpened {
                    dispute: dispute("dp_1", "needs_response"),
                },
            ),
        ];
        let once = facts_of(&signals);
        let mut twice = once.clone();
        for (n, signal) in &signals {
            twice.apply(&stamp(*n), signal);
        }
        assert_eq!(twice, once);
    }

    #[test]
    fn facts_round_trip_through_json_and_tolerate_missing_fields() {
        let mut facts = facts_of(&[
            (
                1,
                completed(session(CheckoutMode::Payment, Some(&[("price_points", 2)]))),
            ),
            (2, refund(&[("re_1", 100)], Some((5000, 100)))),
            (
                3,
                Signal::DisputeOpened {
                    dispute: dispute("dp_1", "needs_response"),
                },
            ),
            (
                4,
                updated(subscription(
                    SubscriptionStatus::Other("new".into()),
                    &[("p", 1)],
                )),
            ),
        ]);
        facts.customer_workspace = Some(7);
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(serde_json::from_value::<Facts>(json).unwrap(), facts);
        assert_eq!(
            serde_json::from_str::<Facts>("{}").unwrap(),
            Facts::default()
        );
        let partial: Facts = serde_json::from_str(r#"{"customer_workspace": 9}"#).unwrap();
        assert_eq!(partial.customer_workspace, Some(9));
    }
}
