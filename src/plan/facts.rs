//! What Stripe told us about one order, folded so that arrival order and repeats don't matter.
//!
//! Every field keeps the newest (by stamp), the earliest, the largest or the union of what
//! the signals said. So `apply` gives the same facts whatever order the signals come in,
//! and applying a signal twice changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::{
    CheckoutMode, DisputeStatus, Invoice, LineItem, Refund, Signal, Stamp, SubscriptionStatus,
};

use super::{OrderStatus, Provisioned, Workspace};

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
    /// The customer's other orders, as the processor found them for this planning; not
    /// stored (it is read afresh each time).
    #[serde(skip)]
    pub customer_orders: CustomerOrders,
    /// The newest `created` of any signal applied: "now", as far as the order knows.
    pub latest: i64,
    /// The newest subscription snapshot.
    pub subscription: Option<Snapshot>,
    /// A snapshot showed the subscription `trialing`.
    pub trialed: bool,
    /// A snapshot showed the subscription `active`: a trial converted.
    pub was_active: bool,
    /// Deleted, canceled or expired: final, whatever snapshot comes after.
    pub subscription_ended: bool,
    /// The newest word on payment: the subscription's status, or a paid invoice.
    pub standing: Option<Standing>,
    /// The newest `created` of a word that the subscription is in good standing.
    pub last_good: Option<i64>,
    /// The `created` of every snapshot that found the subscription overdue.
    pub overdue_seen: BTreeSet<i64>,
    /// An invoice of the order was paid: an `incomplete` subscription has been paid for.
    pub invoice_paid: bool,
    /// An invoice was paid with real money (not the $0 invoice that starts a trial).
    pub paid_with_money: bool,
    /// The lines of the paid first invoice: the items until a snapshot arrives.
    pub first_invoice_lines: Option<Vec<LineItem>>,
    /// The paid invoices that top up the subscription's points, by id: their lines, or
    /// `None` when the payload listed none (the subscription's items count then).
    pub points_invoices: BTreeMap<String, Option<Vec<LineItem>>>,
    pub checkout: Option<Checkout>,
    /// What came back of each charge, by charge id (or payment intent, when the refund
    /// names no charge).
    pub charges: BTreeMap<String, ChargeFacts>,
    pub disputes: BTreeMap<String, DisputeFacts>,
}

/// What the processor knows of the customer's other orders, for choosing a workspace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomerOrders {
    /// Other orders that have not ended.
    pub live_orders: u32,
    /// The distinct workspaces those live orders have (their creates succeeded).
    pub live_workspaces: Vec<i64>,
    /// When no order is live: the provisioned state of the newest ended order that had a
    /// workspace of its own, to resume it.
    pub returning: Option<Provisioned>,
    /// Workspaces an order of the customer deleted: nothing is planned for them again.
    pub deleted_workspaces: Vec<i64>,
}

/// Another order of the same customer, as choosing a workspace sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherOrder {
    pub status: OrderStatus,
    /// The workspace delivery bound to it (its create, claim or reuse succeeded).
    pub workspace_id: Option<i64>,
    pub provisioned: Provisioned,
}

impl OtherOrder {
    /// Not ended, and has or is getting a workspace.
    pub fn is_live(&self) -> bool {
        !self.status.ended() && self.provisioned.workspace != Workspace::None
    }
}

impl CustomerOrders {
    /// What the customer's other orders, oldest first, tell the choice of a workspace.
    pub fn of(others: &[OtherOrder]) -> CustomerOrders {
        let deleted: Vec<i64> = others
            .iter()
            .filter(|order| order.provisioned.deleted)
            .filter_map(|order| order.workspace_id)
            .collect();
        let live: Vec<&OtherOrder> = others.iter().filter(|order| order.is_live()).collect();
        let mut live_workspaces: Vec<i64> = live
            .iter()
            .filter_map(|order| order.workspace_id)
            .filter(|id| !deleted.contains(id))
            .collect();
        live_workspaces.sort_unstable();
        live_workspaces.dedup();
        let returning = match live[..] {
            [] => others
                .iter()
                .rev()
                .filter(|order| order.status.ended())
                .find_map(|order| {
                    let id = order.workspace_id.filter(|id| !deleted.contains(id))?;
                    order.provisioned.sells_plan.then(|| Provisioned {
                        workspace: Workspace::Known(id),
                        ..order.provisioned.clone()
                    })
                }),
            _ => None,
        };
        CustomerOrders {
            live_orders: u32::try_from(live.len()).unwrap_or(u32::MAX),
            live_workspaces,
            returning,
            deleted_workspaces: deleted,
        }
    }
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
    #[serde(default)]
    pub pause_collection: bool,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub cancel_at: Option<i64>,
    #[serde(default)]
    pub trial_end: Option<i64>,
}

impl Snapshot {
    /// Set to end: at period end (classic billing) or at `cancel_at` (flexible billing).
    pub fn cancel_scheduled(&self) -> bool {
        self.cancel_at_period_end || self.cancel_at.is_some()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Standing {
    pub stamp: Stamp,
    pub overdue: Overdue,
}

/// How far behind on payment the subscription is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Overdue {
    No,
    /// `past_due`: Stripe is still retrying.
    PastDue,
    /// `unpaid`: Stripe gave up retrying.
    Unpaid,
}

/// The order's Checkout session; one per order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Checkout {
    pub id: String,
    pub mode: CheckoutMode,
    pub paid: bool,
    /// The delayed payment failed: the order ends without being provisioned.
    #[serde(default)]
    pub failed: bool,
    pub line_items: Option<Vec<LineItem>>,
    pub amount_total: Option<i64>,
}

/// One charge and what came back of it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ChargeFacts {
    pub amount: Option<i64>,
    /// The invoice it paid, when known.
    pub invoice: Option<String>,
    /// The charge's own cumulative `amount_refunded`, newest.
    pub snapshot: Option<(Stamp, i64)>,
    pub refunds: BTreeMap<String, RefundFacts>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RefundFacts {
    pub amount: i64,
    /// When it was seen failed or canceled: it returned nothing.
    pub reversed: Option<Stamp>,
}

impl ChargeFacts {
    /// What went back: the refunds still standing, or the charge's own figure if larger,
    /// unless a refund failed after that figure was taken (it may count the failed one).
    pub fn refunded(&self) -> i64 {
        let standing = self
            .refunds
            .values()
            .filter(|r| r.reversed.is_none())
            .fold(0i64, |sum, r| sum.saturating_add(r.amount));
        let newest_reversal = self
            .refunds
            .values()
            .filter_map(|r| r.reversed.as_ref())
            .max();
        match &self.snapshot {
            Some((stamp, amount)) if newest_reversal.is_none_or(|r| stamp > r) => {
                standing.max(*amount)
            }
            _ => standing,
        }
    }

    /// A charge pays one invoice; should two be named, the choice must not depend on the
    /// order they came in.
    fn learn_invoice(&mut self, invoice: Option<&str>) {
        if let Some(invoice) = invoice {
            if self.invoice.as_deref().is_none_or(|known| invoice < known) {
                self.invoice = Some(invoice.to_owned());
            }
        }
    }

    pub fn fully_refunded(&self) -> bool {
        let refunded = self.refunded();
        refunded > 0 && self.amount.is_some_and(|amount| refunded >= amount)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DisputeFacts {
    pub stamp: Stamp,
    pub status: DisputeStatus,
    pub charge: Option<String>,
    pub amount: Option<i64>,
}

impl Facts {
    pub fn apply(&mut self, stamp: &Stamp, signal: &Signal) {
        self.latest = self.latest.max(stamp.created);
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
                self.trialed |= subscription.status == Trialing;
                self.was_active |= subscription.status == Active;
                match subscription.status {
                    PastDue => self.note_standing(stamp, Overdue::PastDue),
                    Unpaid => self.note_standing(stamp, Overdue::Unpaid),
                    Active | Trialing => self.note_standing(stamp, Overdue::No),
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
                        cancel_at: subscription.cancel_at,
                        trial_end: subscription.trial_end,
                    });
                }
            }
            Signal::InvoicePaid { invoice } => {
                self.note_invoice(stamp, invoice);
                self.note_standing(stamp, Overdue::No);
                self.invoice_paid = true;
                self.paid_with_money |= invoice.amount_paid > 0;
                // Later invoices may carry proration lines; the first one lists the items.
                if invoice.billing_reason.as_deref() == Some("subscription_create") {
                    self.first_invoice_lines
                        .get_or_insert_with(|| invoice.lines.clone());
                }
                if tops_up_points(invoice) {
                    let lines = Some(invoice.lines.clone()).filter(|lines| !lines.is_empty());
                    self.points_invoices.insert(invoice.id.clone(), lines);
                }
                if let Some(charge) = &invoice.charge {
                    let charge = self.charges.entry(charge.clone()).or_default();
                    charge.learn_invoice(Some(&invoice.id));
                }
            }
            // A failed payment alone changes nothing: the subscription's status says
            // whether it is overdue (a failed upgrade with `pending_if_incomplete` leaves
            // it active).
            Signal::InvoicePaymentFailed { invoice } => self.note_invoice(stamp, invoice),
            Signal::CheckoutCompleted { session } | Signal::CheckoutFailed { session } => {
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
                    failed: false,
                    line_items: None,
                    amount_total: None,
                });
                // `completed` may say unpaid and `async_payment_succeeded` paid, in any order.
                if checkout.id == session.id {
                    if matches!(signal, Signal::CheckoutFailed { .. }) {
                        checkout.failed = true;
                    } else {
                        checkout.paid |= session.paid;
                    }
                    if checkout.line_items.is_none() {
                        checkout.line_items.clone_from(&session.line_items);
                    }
                    checkout.amount_total = checkout.amount_total.or(session.amount_total);
                }
            }
            Signal::Refund { refund } => self.note_refund(stamp, refund),
            Signal::Dispute { dispute } => {
                keep_earliest(&mut self.customer, stamp, dispute.customer.as_deref());
                if let Some(charge) = &dispute.charge {
                    let facts = self.charges.entry(charge.clone()).or_default();
                    facts.learn_invoice(dispute.invoice.as_deref());
                }
                let known = self.disputes.get(&dispute.id);
                // Newest word wins, but a closed dispute is never reopened.
                let newer = known.is_none_or(|k| {
                    k.status == DisputeStatus::Open
                        && (*stamp > k.stamp || dispute.status != DisputeStatus::Open)
                });
                if newer {
                    self.disputes.insert(
                        dispute.id.clone(),
                        DisputeFacts {
                            stamp: stamp.clone(),
                            status: dispute.status,
                            charge: dispute.charge.clone(),
                            amount: dispute.amount,
                        },
                    );
                }
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

    /// A trial that has not converted: the subscription never was active, and no invoice
    /// was paid with real money.
    pub fn in_trial(&self) -> bool {
        self.trialed && !self.was_active && !self.paid_with_money && !self.subscription_ended
    }

    /// How far behind on payment the subscription is, by the newest word.
    pub fn overdue(&self) -> Overdue {
        self.standing.as_ref().map_or(Overdue::No, |s| s.overdue)
    }

    /// Whole days the subscription has been overdue without a good word since, as of the
    /// newest signal.
    pub fn days_overdue(&self) -> i64 {
        if self.overdue() == Overdue::No {
            return 0;
        }
        let since = self
            .overdue_seen
            .iter()
            .find(|&&at| self.last_good.is_none_or(|good| at > good));
        since.map_or(0, |since| (self.latest - since).max(0) / 86_400)
    }

    /// A charge whose every cent went back, by refund or a lost dispute.
    pub fn a_charge_fully_refunded(&self) -> bool {
        self.charges
            .iter()
            .any(|(id, charge)| charge.fully_refunded() || self.lost_dispute_of(id).is_some())
    }

    /// What went back of each charge, a lost dispute counting as all of it.
    pub fn refunded_by_charge(&self) -> impl Iterator<Item = (&String, &ChargeFacts, i64)> {
        self.charges.iter().map(|(id, charge)| {
            let refunded = match self.lost_dispute_of(id) {
                Some(lost) => charge.amount.or(lost.amount).unwrap_or(0),
                None => charge.refunded(),
            };
            (id, charge, refunded)
        })
    }

    /// Everything that went back, over all charges.
    pub fn refunded(&self) -> i64 {
        self.refunded_by_charge()
            .fold(0i64, |sum, (_, _, refunded)| sum.saturating_add(refunded))
    }

    /// What was paid over all charges, as far as the refunds and disputes told.
    pub fn charged(&self) -> Option<i64> {
        let amounts: Vec<i64> = self
            .charges
            .iter()
            .filter_map(|(id, charge)| {
                charge
                    .amount
                    .or_else(|| self.lost_dispute_of(id).and_then(|d| d.amount))
            })
            .collect();
        (!amounts.is_empty()).then(|| amounts.iter().sum())
    }

    /// A dispute is open.
    pub fn dispute_open(&self) -> bool {
        self.disputes
            .values()
            .any(|d| d.status == DisputeStatus::Open)
    }

    fn lost_dispute_of(&self, charge: &str) -> Option<&DisputeFacts> {
        self.disputes
            .values()
            .find(|d| d.status == DisputeStatus::Lost && d.charge.as_deref() == Some(charge))
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

    fn note_refund(&mut self, stamp: &Stamp, refund: &Refund) {
        keep_earliest(&mut self.customer, stamp, refund.customer.as_deref());
        let Some(key) = refund.charge.as_ref().or(refund.payment_intent.as_ref()) else {
            return;
        };
        let charge = self.charges.entry(key.clone()).or_default();
        charge.amount = charge.amount.max(refund.charge_amount);
        charge.learn_invoice(refund.invoice.as_deref());
        if let Some(refunded) = refund.amount_refunded {
            if charge.snapshot.as_ref().is_none_or(|(s, _)| stamp > s) {
                charge.snapshot = Some((stamp.clone(), refunded));
            }
        }
        for line in &refund.refunds {
            let known = charge
                .refunds
                .entry(line.id.clone())
                .or_insert(RefundFacts {
                    amount: line.amount,
                    reversed: None,
                });
            // A failed or canceled refund stays so; the earliest word of it counts.
            if line.reversed && known.reversed.as_ref().is_none_or(|at| stamp < at) {
                known.reversed = Some(stamp.clone());
            }
        }
    }

    fn note_standing(&mut self, stamp: &Stamp, overdue: Overdue) {
        if overdue == Overdue::No {
            self.last_good = self.last_good.max(Some(stamp.created));
        } else {
            self.overdue_seen.insert(stamp.created);
        }
        if self
            .standing
            .as_ref()
            .is_none_or(|newest| *stamp > newest.stamp)
        {
            self.standing = Some(Standing {
                stamp: stamp.clone(),
                overdue,
            });
        }
    }
}

/// A paid invoice of a subscription's creation or cycle tops up its points; the $0
/// invoice that starts a trial is no payment, and an update's invoice only settles a
/// proration.
fn tops_up_points(invoice: &Invoice) -> bool {
    match invoice.billing_reason.as_deref() {
        Some("subscription_create") => invoice.amount_paid > 0,
        Some("subscription_cycle") | None => true,
        Some(_) => false,
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
        CheckoutSession, Dispute, Invoice, LineItem, Refund, RefundLine, Signal, Stamp,
        Subscription, SubscriptionStatus,
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
            cancel_at: None,
            trial_end: None,
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

    /// A refund event of charge `ch_1`: its individual refunds (a negative amount: that
    /// refund failed), and the charge's figures when it carries them.
    pub(crate) fn refund(refunds: &[(&str, i64)], charge: Option<(i64, i64)>) -> Signal {
        refund_of("ch_1", refunds, charge)
    }

    pub(crate) fn refund_of(
        charge_id: &str,
        refunds: &[(&str, i64)],
        charge: Option<(i64, i64)>,
    ) -> Signal {
        Signal::Refund {
            refund: Refund {
                customer: Some("cus_1".into()),
                charge: Some(charge_id.into()),
                payment_intent: Some("pi_1".into()),
                invoice: None,
                charge_amount: charge.map(|(amount, _)| amount),
                amount_refunded: charge.map(|(_, refunded)| refunded),
                refunds: refunds
                    .iter()
                    .map(|&(id, amount)| RefundLine {
                        id: id.to_owned(),
                        amount: amount.abs(),
                        reversed: amount < 0,
                    })
                    .collect(),
            },
        }
    }

    pub(crate) fn dispute(id: &str, status: DisputeStatus) -> Signal {
        Signal::Dispute {
            dispute: Dispute {
                id: id.into(),
                charge: Some("ch_1".into()),
                payment_intent: Some("pi_1".into()),
                invoice: None,
                customer: None,
                amount: Some(5000),
                status,
            },
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
    fn the_subscription_status_decides_standing_not_a_failed_invoice() {
        let past_due = subscription(SubscriptionStatus::PastDue, &[]);
        let unpaid = subscription(SubscriptionStatus::Unpaid, &[]);
        let active = subscription(SubscriptionStatus::Active, &[]);
        let paid = invoice_paid("subscription_cycle", &[]);
        let failed = invoice_failed("subscription_cycle");
        assert_eq!(
            facts_of(&[(1, paid.clone()), (2, failed.clone())]).overdue(),
            Overdue::No
        );
        assert_eq!(
            facts_of(&[(1, paid.clone()), (2, updated(past_due.clone()))]).overdue(),
            Overdue::PastDue
        );
        assert_eq!(
            facts_of(&[(3, paid), (2, updated(unpaid.clone()))]).overdue(),
            Overdue::No
        );
        // Overdue since the first overdue word after the last good one.
        let facts = facts_of(&[
            (1, updated(active.clone())),
            (10, updated(past_due)),
            (10 + 3 * 86_400, updated(unpaid)),
        ]);
        assert_eq!(facts.overdue(), Overdue::Unpaid);
        assert_eq!(facts.days_overdue(), 3);
        // A canceled or paused snapshot says nothing about payment.
        let canceled = facts_of(&[(1, updated(active)), (2, deleted(&[]))]);
        assert_eq!(canceled.overdue(), Overdue::No);
    }

    #[test]
    fn only_the_first_invoice_lists_the_items_and_each_paid_invoice_tops_up_once() {
        let facts = facts_of(&[
            (1, invoice_paid("subscription_update", &[("price_plus", 1)])),
            (
                2,
                invoice_paid("subscription_create", &[("price_business", 1)]),
            ),
            (3, invoice_paid("subscription_cycle", &[])),
            (4, invoice_paid("subscription_cycle", &[])),
        ]);
        assert!(facts.invoice_paid);
        assert_eq!(
            facts.first_invoice_lines,
            Some(items(&[("price_business", 1)]))
        );
        assert_eq!(
            facts.points_invoices.keys().collect::<Vec<_>>(),
            ["in_subscription_create", "in_subscription_cycle"]
        );
        // The $0 invoice that starts a trial is no payment.
        let mut trial_start = invoice("subscription_create", &[("price_business", 1)]);
        trial_start.amount_paid = 0;
        let facts = facts_of(&[(
            1,
            Signal::InvoicePaid {
                invoice: trial_start,
            },
        )]);
        assert!(facts.invoice_paid && !facts.paid_with_money);
        assert!(facts.points_invoices.is_empty());
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
    fn a_checkout_paid_later_is_paid_and_a_failed_one_is_not() {
        let mut unpaid = session(CheckoutMode::Payment, None);
        unpaid.paid = false;
        let paid = session(CheckoutMode::Payment, Some(&[("price_points", 1)]));
        let facts = facts_of(&[(2, completed(paid)), (1, completed(unpaid.clone()))]);
        let checkout = facts.checkout.unwrap();
        assert!(checkout.paid);
        assert_eq!(checkout.line_items, Some(items(&[("price_points", 1)])));
        let failed = Signal::CheckoutFailed {
            session: unpaid.clone(),
        };
        let facts = facts_of(&[(2, failed), (1, completed(unpaid))]);
        let checkout = facts.checkout.unwrap();
        assert!(checkout.failed && !checkout.paid);
    }

    #[test]
    fn refunds_count_per_charge_once_and_the_charge_figure_when_larger() {
        let facts = facts_of(&[
            (1, refund(&[("re_1", 1000)], None)),
            (2, refund(&[("re_1", 1000)], Some((5000, 1000)))),
            (3, refund(&[("re_2", 500)], None)),
        ]);
        assert_eq!(facts.refunded(), 1500);
        assert!(!facts.a_charge_fully_refunded());
        let facts = facts_of(&[(1, refund(&[], Some((5000, 5000))))]);
        assert_eq!(facts.refunded(), 5000);
        assert!(facts.a_charge_fully_refunded());
        // Partial refunds of two charges never add up to a full one.
        let facts = facts_of(&[
            (1, refund_of("ch_a", &[("re_a", 2500)], Some((5000, 2500)))),
            (2, refund_of("ch_b", &[("re_b", 2500)], Some((5000, 2500)))),
        ]);
        assert_eq!(facts.refunded(), 5000);
        assert!(!facts.a_charge_fully_refunded());
    }

    #[test]
    fn a_failed_refund_gives_back_what_it_took_in_any_order() {
        let created = (1, refund(&[("re_1", 5000)], None));
        let charge = (2, refund(&[], Some((5000, 5000))));
        let failed = (3, refund(&[("re_1", -5000)], None));
        for signals in [
            vec![created.clone(), charge.clone(), failed.clone()],
            vec![failed.clone(), charge.clone(), created.clone()],
            vec![charge.clone(), failed.clone(), created.clone()],
        ] {
            let facts = facts_of(&signals);
            assert_eq!(facts.refunded(), 0, "{signals:?}");
            assert!(!facts.a_charge_fully_refunded());
        }
        // The charge's own figure after the failure is Stripe's word: it stands.
        let facts = facts_of(&[created, failed, (4, refund(&[], Some((5000, 1000))))]);
        assert_eq!(facts.refunded(), 1000);
    }

    #[test]
    fn a_closed_dispute_is_not_reopened_and_a_lost_one_takes_its_charge() {
        let facts = facts_of(&[
            (2, dispute("dp_1", DisputeStatus::Won)),
            (1, dispute("dp_1", DisputeStatus::Open)),
            (3, dispute("dp_2", DisputeStatus::Lost)),
            (4, dispute("dp_2", DisputeStatus::Open)),
        ]);
        let statuses: Vec<_> = facts.disputes.values().map(|d| d.status).collect();
        assert_eq!(statuses, [DisputeStatus::Won, DisputeStatus::Lost]);
        assert!(!facts.dispute_open());
        assert!(facts.a_charge_fully_refunded());
        assert_eq!(facts.refunded(), 5000);
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
            (5, dispute("dp_1", DisputeStatus::Open)),
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
        let facts = facts_of(&[
            (
                1,
                completed(session(CheckoutMode::Payment, Some(&[("price_points", 2)]))),
            ),
            (2, refund(&[("re_1", 100)], Some((5000, 100)))),
            (3, dispute("dp_1", DisputeStatus::Open)),
            (
                4,
                updated(subscription(
                    SubscriptionStatus::Other("new".into()),
                    &[("p", 1)],
                )),
            ),
        ]);
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(serde_json::from_value::<Facts>(json).unwrap(), facts);
        assert_eq!(
            serde_json::from_str::<Facts>("{}").unwrap(),
            Facts::default()
        );
        // Facts stored before these fields existed still read.
        let old: Facts = serde_json::from_str(
            r#"{"customer_workspace": 9, "subscription": {"stamp": {"created": 1, "event_id": "evt_1"}, "status": "active", "items": []}}"#,
        )
        .unwrap();
        assert_eq!(old.subscription.unwrap().cancel_at, None);
    }
}
