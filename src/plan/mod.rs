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
use catalog::{OnRefund, PlanPrice, Policy, Product};
use facts::{Checkout, Overdue};
pub use facts::{CustomerOrders, Facts, OtherOrder};

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub calls: Vec<Call>,
    /// The state once these calls succeed.
    pub provisioned: Provisioned,
    pub status: OrderStatus,
    pub attention: Option<String>,
    /// The order cannot be planned yet, but will be by itself (the customer's workspace
    /// is being created): the event should be tried again shortly, not left to an
    /// operator. `attention` says why.
    pub wait: bool,
}

/// Why an order cannot be planned now.
#[derive(Debug)]
enum Problem {
    /// An operator must act (fix the catalog, name a workspace, ...).
    Attention(String),
    /// Time will fix it: another order's workspace is still being created.
    Wait(String),
}

impl From<String> for Problem {
    fn from(reason: String) -> Self {
        Problem::Attention(reason)
    }
}

impl From<&str> for Problem {
    fn from(reason: &str) -> Self {
        Problem::Attention(reason.to_owned())
    }
}

/// What an order has set up in UChat, as far as its calls go. Stored as JSON on the order.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Provisioned {
    pub workspace: Workspace,
    /// The order sells the workspace its plan: it decides pause, resume and auto-renew,
    /// and its end gets the `on_cancel` steps. An order of add-ons or points only adds
    /// to a workspace, and takes back only what it added.
    pub sells_plan: bool,
    pub plan: Option<String>,
    /// Add-on units this order added, by add-on id.
    pub addons: BTreeMap<String, u32>,
    pub points_granted: i64,
    pub points_deducted: i64,
    pub paused: bool,
    pub auto_renew: bool,
    pub deleted: bool,
}

/// The order's workspace. Until delivery binds one (a create, a claim or a reuse
/// succeeded), no call of the order can reach any workspace.
#[derive(Serialize, Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Workspace {
    #[default]
    None,
    /// A create call is planned; delivery records the id once it succeeds.
    Creating,
    /// The buyer named this workspace: a claim call checks its owner, and binds it only
    /// if the owner is the buyer.
    Claiming(i64),
    /// The customer's earlier workspace: a reuse call binds it if UChat still has it,
    /// and creates a new one otherwise.
    Reusing(i64),
    Known(i64),
}

impl Workspace {
    /// The id the order will use, once bound.
    fn id(self) -> Option<i64> {
        match self {
            Workspace::Claiming(id) | Workspace::Reusing(id) | Workspace::Known(id) => Some(id),
            Workspace::None | Workspace::Creating => None,
        }
    }
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

    /// The order has ended: its customer's next plan may resume its workspace.
    pub fn ended(self) -> bool {
        matches!(self, OrderStatus::Canceled | OrderStatus::Refunded)
    }
}

display_as_serialized!(OrderStatus);

pub fn plan(facts: &Facts, provisioned: &Provisioned, catalog: &Catalog) -> Plan {
    let sale = Sale::read(facts, &catalog.policy);
    match desire(&sale, facts, provisioned, catalog) {
        Ok(Desired { state, first, base }) => Plan {
            calls: calls(
                base.as_ref().unwrap_or(provisioned),
                &state,
                first,
                &sale.reference,
            ),
            status: sale.status(&state),
            provisioned: state,
            attention: None,
            wait: false,
        },
        Err(problem) => {
            let (reason, wait) = match problem {
                Problem::Attention(reason) => (reason, false),
                Problem::Wait(reason) => (reason, true),
            };
            Plan {
                calls: Vec::new(),
                provisioned: provisioned.clone(),
                status: OrderStatus::NeedsAttention,
                attention: Some(reason),
                wait,
            }
        }
    }
}

/// What the order is and where it stands, read from its facts.
struct Sale<'a> {
    /// A one-off Checkout payment; `None` for a subscription.
    one_off: Option<&'a Checkout>,
    /// Canceled, expired, never paid, or refunded in full where that ends it.
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
        // A one-off sale has nothing left to keep once all of its money went back; a
        // subscription follows `on_refund` once one of its payments went back in full.
        let refund = match one_off {
            Some(checkout) => {
                let paid = checkout.amount_total.or(facts.charged());
                let refunded = facts.refunded();
                (refunded > 0 && paid.is_some_and(|paid| refunded >= paid))
                    .then_some(OnRefund::Cancel)
            }
            None => facts.a_charge_fully_refunded().then_some(policy.on_refund),
        };
        let checkout_failed = facts.checkout.as_ref().is_some_and(|c| c.failed && !c.paid);
        Sale {
            one_off,
            ended: facts.subscription_ended || checkout_failed || refund == Some(OnRefund::Cancel),
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

/// The desired state; the call that binds the order a workspace, if this planning
/// chooses one, with the calls that set the workspace up right after; and, for a resumed
/// workspace, the state it starts from.
struct Desired {
    state: Provisioned,
    first: Vec<Call>,
    base: Option<Provisioned>,
}

fn desire(
    sale: &Sale,
    facts: &Facts,
    had: &Provisioned,
    catalog: &Catalog,
) -> Result<Desired, Problem> {
    let policy = &catalog.policy;
    let mut want = had.clone();
    let mut first = Vec::new();
    let mut base = None;
    let gone = had
        .workspace
        .id()
        .is_some_and(|id| facts.customer_orders.deleted_workspaces.contains(&id));
    if had.deleted || gone {
        // The workspace is gone: nothing is ever planned for it again.
        return Ok(Desired {
            state: want,
            first,
            base,
        });
    }
    if let Some(items) = sale.paid_items(facts)? {
        let terms = Terms::of(items, catalog)?;
        if want.workspace == Workspace::None && !terms.is_empty() {
            let chosen = choose_workspace(facts, &terms, catalog)?;
            want.workspace = chosen.workspace;
            first = set_up(chosen.call, sale, facts, &terms, catalog);
            if let Some(resumed) = chosen.base {
                want = Provisioned {
                    workspace: chosen.workspace,
                    ..resumed.clone()
                };
                base = Some(resumed);
            }
        }
        if want.workspace != Workspace::None {
            want.sells_plan |= terms.plan.is_some();
            // A trial runs on UChat's own trial, with nothing paid for, until it
            // converts; unless policy says to provision the paid plan at once.
            let on_trial = facts.in_trial() && !policy.paid_plan_in_trial;
            if let Some(plan) = terms.plan.as_ref().filter(|_| !on_trial) {
                want.plan = Some(plan.plan.clone());
                want.auto_renew = match sale.one_off {
                    Some(_) => plan.auto_renew,
                    // Scheduled to end, or overdue: UChat must not renew it from partner
                    // credit meanwhile.
                    None => {
                        let scheduled = facts
                            .subscription
                            .as_ref()
                            .is_some_and(|s| s.cancel_scheduled());
                        !scheduled && facts.overdue() == Overdue::No
                    }
                };
            }
            if !on_trial {
                want.points_granted = want
                    .points_granted
                    .max(points(sale, facts, &terms, catalog));
                want.addons = terms.addons;
            }
        }
    }
    if want.workspace == Workspace::None {
        // Nothing provisioned, nothing to provision: nothing to touch.
        return Ok(Desired {
            state: want,
            first,
            base,
        });
    }

    let mut cancel_pauses = false;
    if sale.ended {
        if want.sells_plan {
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

    // Pause and resume follow the order that sells the plan.
    if want.sells_plan {
        let stripe_paused = facts.subscription.as_ref().is_some_and(|s| {
            s.status == SubscriptionStatus::Paused
                || (s.pause_collection && policy.pause_on_pause_collection)
        });
        let overdue_pauses = policy.pause_on_payment_failed
            && facts.overdue() >= policy.pause_when
            && facts.days_overdue() >= i64::from(policy.payment_grace_days);
        want.paused = overdue_pauses
            || stripe_paused
            || (facts.dispute_open() && policy.pause_on_dispute)
            || sale.refund_pauses
            || cancel_pauses;
    }

    want.points_deducted = refunded_points(sale, facts, want.points_granted, catalog)?;
    Ok(Desired {
        state: want,
        first,
        base,
    })
}

/// What a sale's items buy in UChat.
#[derive(Default)]
struct Terms {
    plan: Option<PlanPrice>,
    addons: BTreeMap<String, u32>,
    points: i64,
}

impl Terms {
    fn of(items: &[LineItem], catalog: &Catalog) -> Result<Terms, String> {
        let mut terms = Terms::default();
        for item in items.iter().filter(|item| item.quantity > 0) {
            match catalog.product(&item.price) {
                None => return Err(format!("price \"{}\" is not in the catalog", item.price)),
                Some(Product::Plan(plan)) => {
                    if let Some(other) = terms.plan.as_ref().filter(|o| o.plan != plan.plan) {
                        return Err(format!(
                            "the order sells two plans: \"{}\" and \"{}\"",
                            other.plan, plan.plan
                        ));
                    }
                    if item.quantity > 1 {
                        let Some(addon) = &plan.quantity_addon else {
                            return Err(format!(
                                "price \"{}\" sells plan \"{}\" in quantity {}, and UChat has \
                                 no per-plan seats (the catalog may map extra units to an \
                                 add-on with quantity_addon)",
                                item.price, plan.plan, item.quantity
                            ));
                        };
                        let units = terms.addons.entry(addon.clone()).or_default();
                        *units = units.saturating_add(item.quantity - 1);
                    }
                    terms.plan = Some(plan.clone());
                }
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

/// The points the order grants: a one-off purchase's, once; a subscription's on each
/// paid invoice of its creation and cycles (its lines, or its items when the invoice
/// listed none).
fn points(sale: &Sale, facts: &Facts, terms: &Terms, catalog: &Catalog) -> i64 {
    if sale.one_off.is_some() {
        return terms.points;
    }
    facts
        .points_invoices
        .values()
        .map(|lines| match lines {
            Some(lines) => points_of(lines, catalog),
            None => terms.points,
        })
        .fold(0i64, i64::saturating_add)
}

fn points_of(lines: &[LineItem], catalog: &Catalog) -> i64 {
    lines
        .iter()
        .filter_map(|line| match catalog.product(&line.price) {
            Some(Product::Points(points)) => Some(points.saturating_mul(i64::from(line.quantity))),
            _ => None,
        })
        .fold(0i64, i64::saturating_add)
}

/// Where a newly paid order goes, and the call that binds it there.
struct Chosen {
    workspace: Workspace,
    call: Option<Call>,
    /// A resumed workspace's state as its last order left it.
    base: Option<Provisioned>,
}

/// The workspace a newly paid order goes to: the one the buyer named (once UChat shows
/// them as its owner); for a plan, a new one, or the customer's last one if every earlier
/// order of theirs ended; for add-ons or points alone, the customer's only live one.
fn choose_workspace(facts: &Facts, terms: &Terms, catalog: &Catalog) -> Result<Chosen, Problem> {
    let customer = &facts.customer_orders;
    if let Some(named) = facts.workspace_id() {
        let id = match named.parse::<i64>() {
            Ok(id) if id > 0 => id,
            _ => {
                return Err(format!(
                    "the buyer named workspace \"{named}\", which is not a workspace id"
                )
                .into())
            }
        };
        if customer.deleted_workspaces.contains(&id) {
            return Err(format!("the buyer named workspace {id}, which was deleted").into());
        }
        if !catalog.workspace.check_owner {
            return Ok(Chosen {
                workspace: Workspace::Known(id),
                call: None,
                base: None,
            });
        }
        let email = facts
            .email()
            .ok_or_else(|| format!("no email to check the owner of workspace {id} with"))?;
        return Ok(Chosen {
            workspace: Workspace::Claiming(id),
            call: Some(Call::ClaimWorkspace {
                workspace_id: id,
                email: email.to_owned(),
            }),
            base: None,
        });
    }
    if terms.plan.is_none() {
        let what = if terms.addons.is_empty() {
            "a points top-up"
        } else {
            "the add-ons"
        };
        return match customer.live_workspaces[..] {
            [only] => Ok(Chosen {
                workspace: Workspace::Known(only),
                call: None,
                base: None,
            }),
            [] if customer.live_orders > 0 => Err(Problem::Wait(format!(
                "no workspace for {what} yet: the customer's workspace is still being created"
            ))),
            [] => Err(format!(
                "no workspace for {what}: the customer has none, and the buyer named none"
            )
            .into()),
            ref several => Err(format!(
                "no workspace for {what}: the customer has {} workspaces ({}), and the buyer \
                 named none",
                several.len(),
                several
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into()),
        };
    }
    let new = new_workspace(facts, catalog)?;
    match &customer.returning {
        Some(last) if customer.live_orders == 0 => {
            let id = last
                .workspace
                .id()
                .ok_or("the customer's last workspace has no id")?;
            Ok(Chosen {
                workspace: Workspace::Reusing(id),
                call: Some(Call::ReuseWorkspace {
                    workspace_id: id,
                    create: new,
                }),
                base: Some(Provisioned {
                    workspace: Workspace::None,
                    sells_plan: true,
                    // The plan is set again: the last one may have lapsed meanwhile.
                    plan: None,
                    addons: last.addons.clone(),
                    points_granted: 0,
                    points_deducted: 0,
                    paused: last.paused,
                    auto_renew: last.auto_renew,
                    deleted: false,
                }),
            })
        }
        _ => Ok(Chosen {
            workspace: Workspace::Creating,
            call: Some(Call::Create(new)),
            base: None,
        }),
    }
}

/// A new workspace for the buyer, from the catalog's template; on a trial, UChat's trial
/// lasts as long as Stripe's.
fn new_workspace(facts: &Facts, catalog: &Catalog) -> Result<NewWorkspace, String> {
    let email = facts.email().ok_or("no email to create a workspace with")?;
    let name = facts
        .name()
        .unwrap_or_else(|| email.split('@').next().unwrap_or(email));
    let template = &catalog.workspace;
    let stripe_trial = facts
        .subscription
        .as_ref()
        .filter(|_| facts.in_trial() && !catalog.policy.paid_plan_in_trial)
        .and_then(|s| s.trial_end)
        .map(|end| ((end - facts.latest).max(0) + 86_399) / 86_400)
        .and_then(|days| u32::try_from(days).ok())
        .filter(|days| *days > 0);
    Ok(NewWorkspace {
        email: email.to_owned(),
        name: name.to_owned(),
        team_name: catalog.team_name(name, email),
        require_email_verification: template.require_email_verification,
        // Zero days or no template: left out, so UChat's defaults apply.
        trial_days: stripe_trial.or(Some(template.trial_days).filter(|days| *days > 0)),
        template_ns: Some(template.template_ns.clone()).filter(|ns| !ns.is_empty()),
        password: None,
    })
}

/// The points refunds take back: of a one-off purchase, the refunded share of those
/// granted; of a subscription, each refunded charge's share of the points its invoice
/// granted. Rounded down, never more than granted; it falls again when a refund fails.
fn refunded_points(
    sale: &Sale,
    facts: &Facts,
    granted: i64,
    catalog: &Catalog,
) -> Result<i64, String> {
    let share = |points: i64, refunded: i64, paid: i64| {
        let share = i128::from(points) * i128::from(refunded) / i128::from(paid.max(1));
        i64::try_from(share).unwrap_or(i64::MAX).min(points)
    };
    if let Some(checkout) = sale.one_off {
        let refunded = facts.refunded();
        if refunded <= 0 || granted <= 0 {
            return Ok(0);
        }
        let paid = checkout
            .amount_total
            .or(facts.charged())
            .filter(|paid| *paid > 0)
            .ok_or_else(|| {
                format!(
                    "checkout {} was refunded, but its amount is unknown, so the points to deduct are too",
                    checkout.id
                )
            })?;
        return Ok(share(granted, refunded, paid));
    }
    let deducted = facts
        .refunded_by_charge()
        .filter_map(|(_, charge, refunded)| {
            let lines = facts.points_invoices.get(charge.invoice.as_ref()?)?;
            let points = match lines {
                Some(lines) => points_of(lines, catalog),
                None => facts
                    .subscription
                    .as_ref()
                    .map_or(0, |s| points_of(&s.items, catalog)),
            };
            let paid = charge.amount.filter(|amount| *amount > 0)?;
            Some(share(points, refunded, paid))
        })
        .fold(0i64, i64::saturating_add);
    Ok(deducted.min(granted))
}

/// The call that binds a workspace, then what sets it up for the plan sold: the price's
/// template, installed into a new workspace, and the order's Stripe ids, written into
/// the workspace's billing information when the catalog asks for it.
fn set_up(
    bind: Option<Call>,
    sale: &Sale,
    facts: &Facts,
    terms: &Terms,
    catalog: &Catalog,
) -> Vec<Call> {
    let Some(bind) = bind else {
        return Vec::new();
    };
    let Some(plan) = &terms.plan else {
        // Add-ons or points for a named workspace: it is not this order's to describe.
        return vec![bind];
    };
    let template = plan
        .template
        .clone()
        .filter(|_| matches!(bind, Call::Create(_)))
        .map(|template_ns| Call::InstallTemplate { template_ns });
    let billing = catalog
        .workspace
        .billing_information
        .then(|| stripe_ids(sale, facts))
        .flatten()
        .map(
            |extra_billing_information| Call::UpdateExtraBillingInformation {
                extra_billing_information,
            },
        );
    [Some(bind), template, billing]
        .into_iter()
        .flatten()
        .collect()
}

/// The order's Stripe ids, as someone in UChat reads them: `Stripe customer cus_1,
/// subscription sub_1` (a one-off purchase names its checkout). `None` when none is known.
fn stripe_ids(sale: &Sale, facts: &Facts) -> Option<String> {
    let customer = facts.customer().map(|id| format!("customer {id}"));
    let order = match sale.one_off {
        Some(checkout) => Some(format!("checkout {}", checkout.id)),
        None => facts
            .subscription_id()
            .map(|id| format!("subscription {id}")),
    };
    let ids: Vec<String> = [customer, order].into_iter().flatten().collect();
    (!ids.is_empty()).then(|| format!("Stripe {}", ids.join(", ")))
}

/// The calls that bring a workspace UChat shows in the state `seen` back to `want`, the
/// state the order provisioned (a reconciliation's repair): the same calls, in the same
/// order, as any change of plan.
pub fn restore(want: &Provisioned, seen: &Provisioned, reference: &str) -> Vec<Call> {
    if want.deleted || seen.deleted {
        return Vec::new();
    }
    calls(seen, want, Vec::new(), reference)
}

/// The calls that take the workspace from `had` to `want`, in the fixed order.
fn calls(had: &Provisioned, want: &Provisioned, first: Vec<Call>, reference: &str) -> Vec<Call> {
    let mut calls = first;
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
    } else if want.points_deducted < had.points_deducted {
        // A refund failed or was canceled: what it took goes back.
        calls.push(Call::TopupPoints {
            points: had.points_deducted - want.points_deducted,
            note: format!("refund of {reference} reversed"),
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
