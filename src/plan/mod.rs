//! The planner: the one place where Stripe's world meets UChat's.
//!
//! `plan` reads what Stripe told us about an order (`Facts`), the partner's `Catalog`,
//! and what the order has already `Provisioned`. It works out the state the workspace
//! should be in, as another `Provisioned`, and lists the partner calls that get it there.
//! It is pure and total: no I/O, and every input has an answer.

pub mod canceled;
pub mod catalog;
pub mod facts;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::{CheckoutMode, LineItem, SubscriptionStatus};
use crate::partner::{Call, NewWorkspace};
pub use catalog::Catalog;
use catalog::{OnRefund, Policy, Product};
pub use facts::Facts;
use facts::{Checkout, DisputeOutcome};

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub calls: Vec<Call>,
    /// The state once these calls succeed.
    pub provisioned: Provisioned,
    pub status: OrderStatus,
    pub attention: Option<String>,
}

/// What an order has set up in UChat, as far as its calls go. Stored as JSON on the order.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Provisioned {
    pub workspace: Workspace,
    pub plan: Option<String>,
    /// Add-on units this order added, by add-on id.
    pub addons: BTreeMap<String, u32>,
    pub points_granted: i64,
    pub points_deducted: i64,
    pub paused: bool,
    pub auto_renew: bool,
    pub deleted: bool,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Workspace {
    #[default]
    None,
    /// A create call is planned; delivery records the id once it succeeds.
    Creating,
    Known(i64),
}

/// Stored as text in `orders.status`.
#[derive(Serialize, Deserialize, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Active,
    Paused,
    Canceled,
    Refunded,
    NeedsAttention,
}

impl OrderStatus {
    /// Every status, for those who list them (the operator API's schema).
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Active,
        OrderStatus::Paused,
        OrderStatus::Canceled,
        OrderStatus::Refunded,
        OrderStatus::NeedsAttention,
    ];
}

display_as_serialized!(OrderStatus);

pub fn plan(facts: &Facts, provisioned: &Provisioned, catalog: &Catalog) -> Plan {
    let sale = Sale::read(facts, &catalog.policy);
    match desire(&sale, facts, provisioned, catalog) {
        Ok(Desired { state, create }) => Plan {
            calls: calls(provisioned, &state, create, &sale.reference),
            status: sale.status(&state),
            provisioned: state,
            attention: None,
        },
        Err(reason) => Plan {
            calls: Vec::new(),
            provisioned: provisioned.clone(),
            status: OrderStatus::NeedsAttention,
            attention: Some(reason),
        },
    }
}

/// What the order is and where it stands, read from its facts.
struct Sale<'a> {
    /// A one-off Checkout payment; `None` for a subscription.
    one_off: Option<&'a Checkout>,
    /// Canceled or expired, or refunded in full where that ends it.
    ended: bool,
    /// Refunded in full, and policy acts on it.
    refunded: bool,
    /// Refunded in full with `on_refund = "pause"`.
    refund_pauses: bool,
    /// Names the sale in point notes.
    reference: String,
}

impl<'a> Sale<'a> {
    fn read(facts: &'a Facts, policy: &Policy) -> Sale<'a> {
        let one_off = facts
            .checkout
            .as_ref()
            .filter(|checkout| checkout.mode == CheckoutMode::Payment);
        // A one-off sale has nothing left to keep once all of its money went back.
        let on_refund = match one_off {
            Some(_) => OnRefund::Cancel,
            None => policy.on_refund,
        };
        let refund = facts.fully_refunded().then_some(on_refund);
        Sale {
            one_off,
            ended: facts.subscription_ended || refund == Some(OnRefund::Cancel),
            refunded: refund.is_some_and(|r| r != OnRefund::Nothing),
            refund_pauses: refund == Some(OnRefund::Pause),
            reference: match one_off {
                Some(checkout) => format!("Stripe checkout {}", checkout.id),
                None => format!(
                    "Stripe subscription {}",
                    facts.subscription_id().unwrap_or("(id unknown)")
                ),
            },
        }
    }

    /// The items paid for, to provision now; `None` while unpaid and once ended.
    fn paid_items(&self, facts: &'a Facts) -> Result<Option<&'a [LineItem]>, String> {
        if self.ended {
            return Ok(None);
        }
        if let Some(checkout) = self.one_off {
            return match (checkout.paid, &checkout.line_items) {
                (false, _) => Ok(None),
                (true, Some(items)) => Ok(Some(items)),
                (true, None) => Err(format!(
                    "the line items of checkout {} are unknown",
                    checkout.id
                )),
            };
        }
        let subscription_checkout = facts
            .checkout
            .as_ref()
            .filter(|checkout| checkout.mode == CheckoutMode::Subscription);
        let paid = facts.invoice_paid || subscription_checkout.is_some_and(|c| c.paid);
        use SubscriptionStatus::*;
        Ok(match &facts.subscription {
            // Past due and paused subscriptions were paid for once: keep them, paused.
            Some(s) => match s.status {
                Active | Trialing | PastDue | Unpaid | Paused => Some(&s.items),
                Incomplete | Other(_) if paid => Some(&s.items),
                _ => None,
            },
            None if paid => facts
                .first_invoice_lines
                .as_deref()
                .or(subscription_checkout.and_then(|c| c.line_items.as_deref())),
            None => None,
        })
    }

    fn status(&self, desired: &Provisioned) -> OrderStatus {
        if self.refunded {
            OrderStatus::Refunded
        } else if self.ended {
            OrderStatus::Canceled
        } else if desired.paused {
            OrderStatus::Paused
        } else if desired.workspace != Workspace::None {
            OrderStatus::Active
        } else {
            OrderStatus::Pending
        }
    }
}

/// The desired state, and the create call if getting there starts with one.
struct Desired {
    state: Provisioned,
    create: Option<Call>,
}

fn desire(
    sale: &Sale,
    facts: &Facts,
    had: &Provisioned,
    catalog: &Catalog,
) -> Result<Desired, String> {
    let policy = &catalog.policy;
    let mut want = had.clone();
    let mut create = None;
    if had.deleted {
        // The workspace is gone: nothing is ever planned for this order again.
        return Ok(Desired {
            state: want,
            create,
        });
    }
    if let Some(items) = sale.paid_items(facts)? {
        let terms = Terms::of(items, catalog)?;
        if want.workspace == Workspace::None && !terms.is_empty() {
            (want.workspace, create) = claim_workspace(facts, &terms, catalog)?;
        }
        if want.workspace != Workspace::None {
            want.plan = terms.plan.or(want.plan);
            want.addons = terms.addons;
            // Points are granted once; a smaller quantity later doesn't take them back.
            want.points_granted = want.points_granted.max(terms.points);
            // Auto-renew belongs to the plan: an order that sold none leaves it alone.
            if want.plan.is_some() {
                let cancels_at_period_end = facts
                    .subscription
                    .as_ref()
                    .is_some_and(|s| s.cancel_at_period_end);
                // A one-off plan purchase is provisioned as a subscription would be: its
                // access ends only by refund, dispute or an operator.
                want.auto_renew = !cancels_at_period_end;
            }
        }
    }
    if want.workspace == Workspace::None {
        // Nothing provisioned, nothing to provision: nothing to touch.
        return Ok(Desired {
            state: want,
            create,
        });
    }

    let mut cancel_pauses = false;
    if sale.ended {
        if want.plan.is_some() {
            let steps = policy.on_cancel;
            if steps.downgrade_to_free {
                want.plan = Some("free".to_owned());
            }
            if steps.downgrade_to_free || steps.disable_auto_renew {
                want.auto_renew = false;
            }
            want.deleted = steps.delete;
            cancel_pauses = steps.pause;
        } else {
            // It only added to someone's workspace: take that back, leave the rest alone.
            want.addons.clear();
        }
    }

    let stripe_paused = facts
        .subscription
        .as_ref()
        .is_some_and(|s| s.status == SubscriptionStatus::Paused || s.pause_collection);
    // A lost dispute took the money back: it pauses like an open one.
    let disputed = facts
        .disputes
        .values()
        .any(|outcome| *outcome != DisputeOutcome::Won);
    want.paused = (facts.delinquent() && policy.pause_on_payment_failed)
        || stripe_paused
        || (disputed && policy.pause_on_dispute)
        || sale.refund_pauses
        || cancel_pauses;

    if let Some(checkout) = sale.one_off {
        let owed = refunded_points(facts, checkout, want.points_granted)?;
        want.points_deducted = want.points_deducted.max(owed);
    }
    Ok(Desired {
        state: want,
        create,
    })
}

/// What a sale's items buy in UChat.
#[derive(Default)]
struct Terms {
    plan: Option<String>,
    addons: BTreeMap<String, u32>,
    points: i64,
}

impl Terms {
    fn of(items: &[LineItem], catalog: &Catalog) -> Result<Terms, String> {
        let mut terms = Terms::default();
        for item in items.iter().filter(|item| item.quantity > 0) {
            match catalog.product(&item.price) {
                None => return Err(format!("price \"{}\" is not in the catalog", item.price)),
                Some(Product::Plan(plan)) => match &terms.plan {
                    Some(other) if other != plan => {
                        return Err(format!(
                            "the order sells two plans: \"{other}\" and \"{plan}\""
                        ))
                    }
                    _ => terms.plan = Some(plan.clone()),
                },
                Some(Product::Addon { addon, qty }) => {
                    let units = terms.addons.entry(addon.clone()).or_default();
                    *units = units.saturating_add(qty.saturating_mul(item.quantity));
                }
                Some(Product::Points(points)) => {
                    let bought = points.saturating_mul(i64::from(item.quantity));
                    terms.points = terms.points.saturating_add(bought);
                }
            }
        }
        Ok(terms)
    }

    fn is_empty(&self) -> bool {
        self.plan.is_none() && self.addons.is_empty() && self.points == 0
    }
}

/// The workspace a newly paid order goes to: the one the buyer named, else the customer's
/// from an earlier order, else a new one, which only a plan sale makes.
fn claim_workspace(
    facts: &Facts,
    terms: &Terms,
    catalog: &Catalog,
) -> Result<(Workspace, Option<Call>), String> {
    if let Some(named) = facts.workspace_id() {
        return match named.parse() {
            Ok(id) if id > 0 => Ok((Workspace::Known(id), None)),
            _ => Err(format!(
                "the buyer named workspace \"{named}\", which is not a workspace id"
            )),
        };
    }
    if let Some(id) = facts.customer_workspace {
        return Ok((Workspace::Known(id), None));
    }
    if terms.plan.is_none() {
        return Err(if terms.points > 0 {
            "no workspace for a points top-up".to_owned()
        } else {
            "no workspace for the add-ons".to_owned()
        });
    }
    let email = facts.email().ok_or("no email to create a workspace with")?;
    let name = facts
        .name()
        .unwrap_or_else(|| email.split('@').next().unwrap_or(email));
    let template = &catalog.workspace;
    let create = Call::Create(NewWorkspace {
        email: email.to_owned(),
        name: name.to_owned(),
        team_name: catalog.team_name(name, email),
        require_email_verification: template.require_email_verification,
        // Zero days or no template: left out, so UChat's defaults apply.
        trial_days: Some(template.trial_days).filter(|days| *days > 0),
        template_ns: Some(template.template_ns.clone()).filter(|ns| !ns.is_empty()),
        password: None,
    });
    Ok((Workspace::Creating, Some(create)))
}

/// The points a refund takes back: the refunded share of those granted, rounded down.
fn refunded_points(facts: &Facts, checkout: &Checkout, granted: i64) -> Result<i64, String> {
    let refunded = facts.refunded();
    if refunded <= 0 || granted <= 0 {
        return Ok(0);
    }
    let paid = checkout
        .amount_total
        .or(facts.charge_amount)
        .filter(|paid| *paid > 0)
        .ok_or_else(|| {
            format!(
                "checkout {} was refunded, but its amount is unknown, so the points to deduct are too",
                checkout.id
            )
        })?;
    let share = i128::from(granted) * i128::from(refunded) / i128::from(paid);
    Ok(i64::try_from(share).unwrap_or(i64::MAX).min(granted))
}

/// The calls that take the workspace from `had` to `want`, in the fixed order.
fn calls(
    had: &Provisioned,
    want: &Provisioned,
    create: Option<Call>,
    reference: &str,
) -> Vec<Call> {
    let mut calls: Vec<Call> = create.into_iter().collect();
    let mut auto_renew = had.auto_renew;
    if let Some(plan) = want
        .plan
        .as_ref()
        .filter(|&plan| had.plan.as_ref() != Some(plan))
    {
        calls.push(Call::ChangePlan {
            plan: plan.clone(),
            auto_renew: want.auto_renew,
        });
        auto_renew = want.auto_renew;
    }
    let addons: BTreeSet<&String> = had.addons.keys().chain(want.addons.keys()).collect();
    for addon in addons {
        let units = |state: &Provisioned| state.addons.get(addon).copied().unwrap_or(0);
        let (from, to) = (units(had), units(want));
        if to > from {
            calls.push(Call::AddAddon {
                addon: addon.clone(),
                qty: to - from,
            });
        } else if from > to {
            calls.push(Call::RemoveAddon {
                addon: addon.clone(),
                qty: from - to,
            });
        }
    }
    if want.points_granted > had.points_granted {
        calls.push(Call::TopupPoints {
            points: want.points_granted - had.points_granted,
            note: reference.to_owned(),
        });
    }
    if want.points_deducted > had.points_deducted {
        calls.push(Call::DeductPoints {
            points: want.points_deducted - had.points_deducted,
            note: format!("refund of {reference}"),
        });
    }
    if want.paused != had.paused {
        calls.push(if want.paused {
            Call::Pause
        } else {
            Call::Active
        });
    }
    if want.auto_renew != auto_renew {
        calls.push(if want.auto_renew {
            Call::EnableAutoRenew
        } else {
            Call::DisableAutoRenew
        });
    }
    if want.deleted && !had.deleted {
        calls.push(Call::Delete);
    }
    calls
}

#[cfg(test)]
mod tests;
