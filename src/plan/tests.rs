use serde_json::{json, Value};

use super::facts::tests::*;
use super::*;
use crate::domain::{CheckoutMode::*, DisputeStatus, Signal, SubscriptionStatus::*};

const PRICES: &str = r#"
    [[price]]
    stripe_price = "price_business"
    plan = "business"
    [[price]]
    stripe_price = "price_plus"
    plan = "business_plus"
    [[price]]
    stripe_price = "price_bot"
    addon = "bot"
    [[price]]
    stripe_price = "price_users"
    addon = "bot_user"
    qty = 2
    [[price]]
    stripe_price = "price_points"
    points = 1000
"#;

fn catalog(policy: &str) -> Catalog {
    Catalog::parse(&format!("[policy]\n{policy}\n{PRICES}")).unwrap()
}

/// One order as the processor sees it: signals arrive one at a time and each is
/// planned, assuming the calls before it succeeded.
struct Order {
    catalog: Catalog,
    facts: Facts,
    provisioned: Provisioned,
    last: Option<Plan>,
    next: i64,
}

impl Order {
    fn new(policy: &str) -> Order {
        Order {
            catalog: catalog(policy),
            facts: Facts::default(),
            provisioned: Provisioned::default(),
            last: None,
            next: 1,
        }
    }

    /// The customer has another live order, on workspace `id`.
    fn with_customer_workspace(mut self, id: i64) -> Order {
        self.facts.customer_orders = CustomerOrders {
            live_orders: 1,
            live_workspaces: vec![id],
            ..CustomerOrders::default()
        };
        self
    }

    fn with_customer_orders(mut self, orders: CustomerOrders) -> Order {
        self.facts.customer_orders = orders;
        self
    }

    /// Applies and plans the signals in turn; returns every call planned.
    fn step(&mut self, signals: impl IntoIterator<Item = Signal>) -> Vec<Call> {
        let mut calls = Vec::new();
        for signal in signals {
            self.facts.apply(&stamp(self.next), &signal);
            self.next += 1;
            let planned = plan(&self.facts, &self.provisioned, &self.catalog);
            assert_settled(&self.facts, &planned, &self.catalog);
            calls.extend(planned.calls.iter().cloned());
            self.provisioned = planned.provisioned.clone();
            self.last = Some(planned);
        }
        calls
    }

    fn status(&self) -> OrderStatus {
        self.last.as_ref().unwrap().status
    }

    fn attention(&self) -> Option<&str> {
        self.last.as_ref().unwrap().attention.as_deref()
    }
}

/// Planning again from the state a plan reaches asks for nothing more.
fn assert_settled(facts: &Facts, planned: &Plan, catalog: &Catalog) {
    let again = plan(facts, &planned.provisioned, catalog);
    assert_eq!(again.calls, [], "planning again after {planned:?}");
    assert_eq!(again.provisioned, planned.provisioned);
    assert_eq!(again.status, planned.status);
}

fn active(list: &[(&str, u32)]) -> Signal {
    updated(subscription(Active, list))
}

fn status(status: SubscriptionStatus, list: &[(&str, u32)]) -> Signal {
    updated(subscription(status, list))
}

const BUSINESS: &[(&str, u32)] = &[("price_business", 1), ("price_bot", 1)];

/// A subscription sale as Stripe reports it, in its usual order.
fn sale(list: &[(&str, u32)]) -> Vec<Signal> {
    vec![
        completed(session(Subscription, None)),
        status(Incomplete, list),
        invoice_paid("subscription_create", list),
        active(list),
    ]
}

fn create() -> Call {
    Call::Create(NewWorkspace {
        email: "ann@example.com".into(),
        name: "Ann".into(),
        team_name: "Ann".into(),
        require_email_verification: false,
        trial_days: None,
        template_ns: None,
        password: None,
    })
}

fn change_plan(plan: &str, auto_renew: bool) -> Call {
    Call::ChangePlan {
        plan: plan.into(),
        auto_renew,
    }
}

fn add(addon: &str, qty: u32) -> Call {
    Call::AddAddon {
        addon: addon.into(),
        qty,
    }
}

fn remove(addon: &str, qty: u32) -> Call {
    Call::RemoveAddon {
        addon: addon.into(),
        qty,
    }
}

fn deduct(points: i64) -> Call {
    Call::DeductPoints {
        points,
        note: "refund of Stripe checkout cs_1".into(),
    }
}

fn opened(id: &str) -> Signal {
    dispute(id, DisputeStatus::Open)
}

fn closed(id: &str, status: DisputeStatus) -> Signal {
    dispute(id, status)
}

fn topup(points: i64, note: &str) -> Call {
    Call::TopupPoints {
        points,
        note: note.into(),
    }
}

fn claim(id: i64) -> Call {
    Call::ClaimWorkspace {
        workspace_id: id,
        email: "ann@example.com".into(),
    }
}

#[test]
fn a_paid_subscription_gets_a_workspace_its_plan_and_addons() {
    let mut order = Order::new("");
    let list = [("price_business", 1), ("price_bot", 2), ("price_users", 3)];
    assert_eq!(
        order.step(sale(&list)),
        [
            create(),
            change_plan("business", true),
            add("bot", 2),
            add("bot_user", 6)
        ]
    );
    assert_eq!(order.status(), OrderStatus::Active);
    assert_eq!(order.provisioned.workspace, Workspace::Creating);
    assert!(order.provisioned.sells_plan);
}

#[test]
fn a_subscription_is_provisioned_once_anything_says_it_is_paid() {
    let expected = [create(), change_plan("business", true), add("bot", 1)];

    let mut unpaid = Order::new("");
    assert_eq!(unpaid.step([status(Incomplete, BUSINESS)]), []);
    assert_eq!(unpaid.status(), OrderStatus::Pending);
    let mut checkout = session(Subscription, None);
    checkout.paid = false;
    assert_eq!(unpaid.step([completed(checkout)]), []);
    assert_eq!(
        unpaid.step([invoice_paid("subscription_create", &[])]),
        expected
    );

    let mut invoice_first = Order::new("");
    assert_eq!(
        invoice_first.step([invoice_paid("subscription_create", BUSINESS)]),
        expected
    );

    let mut checkout_paid = Order::new("");
    checkout_paid.step([status(Incomplete, BUSINESS)]);
    assert_eq!(
        checkout_paid.step([completed(session(Subscription, None))]),
        expected
    );
}

#[test]
fn points_on_a_subscription_are_topped_up_on_every_paid_invoice_once() {
    let mut order = Order::new("");
    let list = [("price_business", 1), ("price_points", 2)];
    let note = "Stripe subscription sub_1";
    assert_eq!(
        order.step(sale(&list)),
        [create(), change_plan("business", true), topup(2000, note)]
    );
    let mut second = invoice("subscription_cycle", &list);
    second.id = "in_2".into();
    let second = Signal::InvoicePaid { invoice: second };
    assert_eq!(
        order.step([second.clone(), active(&list)]),
        [topup(2000, note)]
    );
    // The same invoice told again, or `invoice.payment_succeeded` beside `invoice.paid`.
    assert_eq!(order.step([second]), []);
    // An invoice without lines tops up what the subscription's items sell.
    let mut third = invoice("subscription_cycle", &[]);
    third.id = "in_3".into();
    assert_eq!(
        order.step([Signal::InvoicePaid { invoice: third }]),
        [topup(2000, note)]
    );
    // A proration invoice of an upgrade tops up nothing.
    assert_eq!(order.step([invoice_paid("subscription_update", &list)]), []);
    assert_eq!(order.provisioned.points_granted, 6000);
}

#[test]
fn every_subscription_that_sells_a_plan_gets_its_own_workspace() {
    // The customer already has a live workspace: a second plan gets a second one.
    let mut second = Order::new("").with_customer_workspace(7);
    assert_eq!(
        second.step(sale(BUSINESS)),
        [create(), change_plan("business", true), add("bot", 1)]
    );
    assert_eq!(second.provisioned.workspace, Workspace::Creating);
}

#[test]
fn a_workspace_the_buyer_names_is_claimed_once_its_owner_is_checked() {
    let mut named = session(Subscription, None);
    named.workspace_id = Some("42".into());
    let mut order = Order::new("");
    let calls = order.step([completed(named.clone()), active(BUSINESS)]);
    assert_eq!(
        calls,
        [claim(42), change_plan("business", true), add("bot", 1)]
    );
    assert_eq!(order.provisioned.workspace, Workspace::Claiming(42));

    // A partner who sets the id server-side may turn the check off.
    let mut unchecked = Order::new("");
    unchecked.catalog.workspace.check_owner = false;
    assert_eq!(
        unchecked.step([completed(named.clone()), active(BUSINESS)]),
        [change_plan("business", true), add("bot", 1)]
    );
    assert_eq!(unchecked.provisioned.workspace, Workspace::Known(42));

    let mut typo = session(Subscription, None);
    typo.workspace_id = Some("my team".into());
    let mut order = Order::new("").with_customer_workspace(7);
    assert_eq!(order.step([completed(typo), active(BUSINESS)]), []);
    assert_eq!(order.status(), OrderStatus::NeedsAttention);
    assert_eq!(
        order.attention(),
        Some("the buyer named workspace \"my team\", which is not a workspace id")
    );

    let mut gone = Order::new("").with_customer_orders(CustomerOrders {
        deleted_workspaces: vec![42],
        ..CustomerOrders::default()
    });
    assert_eq!(gone.step([completed(named), active(BUSINESS)]), []);
    assert_eq!(
        gone.attention(),
        Some("the buyer named workspace 42, which was deleted")
    );
}

#[test]
fn a_returning_customer_resumes_their_last_workspace() {
    let last = Provisioned {
        workspace: Workspace::Known(7),
        sells_plan: true,
        plan: Some("business".into()),
        addons: [("bot".to_owned(), 1)].into(),
        paused: true,
        auto_renew: false,
        ..Provisioned::default()
    };
    let mut order = Order::new("").with_customer_orders(CustomerOrders {
        returning: Some(last.clone()),
        ..CustomerOrders::default()
    });
    let list = [("price_plus", 1), ("price_bot", 2)];
    let Call::Create(new) = create() else {
        unreachable!()
    };
    assert_eq!(
        order.step(sale(&list)),
        [
            Call::ReuseWorkspace {
                workspace_id: 7,
                create: new
            },
            change_plan("business_plus", true),
            add("bot", 1),
            Call::Active,
        ]
    );
    assert_eq!(order.provisioned.workspace, Workspace::Reusing(7));

    // Another order still live: not a returning customer, so a workspace of its own.
    let mut busy = Order::new("").with_customer_orders(CustomerOrders {
        live_orders: 1,
        live_workspaces: vec![8],
        returning: None,
        ..CustomerOrders::default()
    });
    assert_eq!(busy.step(sale(&list))[0], create());
}

#[test]
fn nothing_is_planned_for_a_workspace_known_to_be_deleted() {
    let mut order = Order::new("").with_customer_workspace(7);
    assert_eq!(order.step(sale(&[("price_bot", 2)])), [add("bot", 2)]);
    order.facts.customer_orders.deleted_workspaces = vec![7];
    assert_eq!(order.step([deleted(&[("price_bot", 2)])]), []);
}

#[test]
fn addons_or_points_alone_go_to_the_named_or_the_only_live_workspace() {
    let bots = [("price_bot", 2)];
    let mut only = Order::new("").with_customer_workspace(7);
    assert_eq!(only.step(sale(&bots)), [add("bot", 2)]);
    assert_eq!(only.provisioned.workspace, Workspace::Known(7));
    assert!(!only.provisioned.sells_plan);

    let mut named = session(Subscription, None);
    named.workspace_id = Some("42".into());
    let mut order = Order::new("").with_customer_workspace(7);
    assert_eq!(
        order.step([completed(named), active(&bots)]),
        [claim(42), add("bot", 2)]
    );

    let mut several = Order::new("").with_customer_orders(CustomerOrders {
        live_orders: 2,
        live_workspaces: vec![7, 8],
        ..CustomerOrders::default()
    });
    assert_eq!(several.step(sale(&bots)), []);
    assert_eq!(
        several.attention(),
        Some("no workspace for the add-ons: the customer has 2 workspaces (7, 8), and the buyer named none")
    );

    let mut none = Order::new("");
    assert_eq!(none.step(sale(&bots)), []);
    assert_eq!(
        none.attention(),
        Some("no workspace for the add-ons: the customer has none, and the buyer named none")
    );

    let mut creating = Order::new("").with_customer_orders(CustomerOrders {
        live_orders: 1,
        ..CustomerOrders::default()
    });
    assert_eq!(creating.step(sale(&bots)), []);
    assert!(creating
        .attention()
        .unwrap()
        .contains("still being created"));
}

#[test]
fn an_addon_order_on_a_shared_workspace_undoes_only_its_own_effects() {
    let bots = [("price_bot", 2)];
    let mut order = Order::new("").with_customer_workspace(7);
    order.step(sale(&bots));
    // Pause and resume follow the plan's order, not this one.
    assert_eq!(order.step([status(PastDue, &bots)]), []);
    assert_eq!(order.step([opened("dp_1")]), []);
    assert_eq!(order.step([status(Paused, &bots)]), []);
    // Its end takes back its add-ons and nothing else.
    assert_eq!(order.step([deleted(&bots)]), [remove("bot", 2)]);
    assert_eq!(order.status(), OrderStatus::Canceled);
}

#[test]
fn a_plan_price_change_is_one_change_plan() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    let plus = [("price_plus", 1), ("price_bot", 1)];
    assert_eq!(
        order.step([active(&plus)]),
        [change_plan("business_plus", true)]
    );
    let mut ending = subscription(Active, BUSINESS);
    ending.cancel_at_period_end = true;
    assert_eq!(
        order.step([updated(ending)]),
        [change_plan("business", false)]
    );
}

#[test]
fn addon_quantity_changes_add_or_remove_the_difference() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    let more = [("price_business", 1), ("price_bot", 3), ("price_users", 1)];
    assert_eq!(
        order.step([active(&more)]),
        [add("bot", 2), add("bot_user", 2)]
    );
    let fewer = [("price_business", 1), ("price_bot", 2), ("price_users", 1)];
    assert_eq!(order.step([active(&fewer)]), [remove("bot", 1)]);
    assert_eq!(
        order.step([active(&[("price_business", 1)])]),
        [remove("bot", 2), remove("bot_user", 2)]
    );
}

#[test]
fn overdue_pauses_with_auto_renew_off_and_paying_again_restores_both() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    // A failed payment alone changes nothing: the subscription's status decides.
    assert_eq!(order.step([invoice_failed("subscription_cycle")]), []);
    assert_eq!(
        order.step([status(PastDue, BUSINESS)]),
        [Call::Pause, Call::DisableAutoRenew]
    );
    assert_eq!(order.status(), OrderStatus::Paused);
    assert_eq!(
        order.step([invoice_paid("subscription_cycle", &[]), active(BUSINESS)]),
        [Call::Active, Call::EnableAutoRenew]
    );
    assert_eq!(order.status(), OrderStatus::Active);
    assert_eq!(
        order.step([status(Unpaid, BUSINESS)]),
        [Call::Pause, Call::DisableAutoRenew]
    );
    assert_eq!(
        order.step([active(BUSINESS)]),
        [Call::Active, Call::EnableAutoRenew]
    );

    // Without pausing, overdue still stops UChat renewing from partner credit.
    let mut lenient = Order::new(r#"on_payment_failed = "none""#);
    lenient.step(sale(BUSINESS));
    assert_eq!(
        lenient.step([status(PastDue, BUSINESS)]),
        [Call::DisableAutoRenew]
    );
    assert_eq!(lenient.status(), OrderStatus::Active);
}

#[test]
fn a_failed_upgrade_payment_that_leaves_the_subscription_active_changes_nothing() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    // `pending_if_incomplete`: the upgrade's invoice fails, the subscription stays as it
    // was, active; `pending_update_expired` is not an event the service acts on.
    assert_eq!(
        order.step([invoice_failed("subscription_update"), active(BUSINESS)]),
        []
    );
    assert_eq!(order.status(), OrderStatus::Active);
}

#[test]
fn a_grace_period_pauses_only_at_unpaid_or_after_so_many_days() {
    let mut at_unpaid = Order::new(r#"pause_when = "unpaid""#);
    at_unpaid.step(sale(BUSINESS));
    assert_eq!(
        at_unpaid.step([status(PastDue, BUSINESS)]),
        [Call::DisableAutoRenew]
    );
    assert_eq!(at_unpaid.step([status(Unpaid, BUSINESS)]), [Call::Pause]);

    let mut days = Order::new("payment_grace_days = 3");
    days.step(sale(BUSINESS));
    assert_eq!(
        days.step([status(PastDue, BUSINESS)]),
        [Call::DisableAutoRenew]
    );
    // Stripe retries the payment over days; each word is planned at its time.
    days.next += 2 * 86_400;
    assert_eq!(days.step([invoice_failed("subscription_cycle")]), []);
    days.next += 86_400;
    assert_eq!(days.step([status(PastDue, BUSINESS)]), [Call::Pause]);
}

#[test]
fn paying_again_does_not_resume_while_another_pause_reason_holds() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    assert_eq!(
        order.step([status(PastDue, BUSINESS)]),
        [Call::Pause, Call::DisableAutoRenew]
    );
    assert_eq!(order.step([opened("dp_1")]), []);
    assert_eq!(
        order.step([invoice_paid("subscription_cycle", &[]), active(BUSINESS)]),
        [Call::EnableAutoRenew]
    );
    assert_eq!(order.status(), OrderStatus::Paused);
}

#[test]
fn pausing_payment_collection_keeps_access_and_only_a_paused_subscription_pauses() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    let mut collection_paused = subscription(Active, BUSINESS);
    collection_paused.pause_collection = true;
    assert_eq!(order.step([updated(collection_paused.clone())]), []);
    assert_eq!(order.status(), OrderStatus::Active);
    assert_eq!(order.step([status(Paused, BUSINESS)]), [Call::Pause]);
    assert_eq!(order.step([active(BUSINESS)]), [Call::Active]);

    let mut opted_in = Order::new(r#"on_pause_collection = "pause""#);
    opted_in.step(sale(BUSINESS));
    assert_eq!(opted_in.step([updated(collection_paused)]), [Call::Pause]);
    assert_eq!(opted_in.step([active(BUSINESS)]), [Call::Active]);
}

#[test]
fn a_scheduled_cancellation_turns_auto_renew_off_and_on_in_both_billing_modes() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    // Classic billing mode: the flag.
    let mut ending = subscription(Active, BUSINESS);
    ending.cancel_at_period_end = true;
    assert_eq!(order.step([updated(ending)]), [Call::DisableAutoRenew]);
    assert_eq!(order.step([active(BUSINESS)]), [Call::EnableAutoRenew]);
    // Flexible billing mode: `cancel_at` set, the flag left false.
    let mut ending = subscription(Active, BUSINESS);
    ending.cancel_at = Some(1_800_000_000);
    assert_eq!(order.step([updated(ending)]), [Call::DisableAutoRenew]);
    assert_eq!(order.step([active(BUSINESS)]), [Call::EnableAutoRenew]);
}

#[test]
fn a_trial_runs_on_uchats_trial_until_it_converts() {
    let mut trial = subscription(Trialing, BUSINESS);
    trial.trial_end = Some(stamp(2).created + 7 * 86_400 - 100);
    let mut zero = invoice("subscription_create", BUSINESS);
    zero.amount_paid = 0;
    let mut order = Order::new("");
    let Call::Create(mut new) = create() else {
        unreachable!()
    };
    new.trial_days = Some(7);
    assert_eq!(
        order.step([
            completed(session(Subscription, None)),
            updated(trial.clone()),
            Signal::InvoicePaid { invoice: zero },
        ]),
        [Call::Create(new)]
    );
    assert_eq!(order.status(), OrderStatus::Active);
    assert_eq!(order.provisioned.plan, None);
    // Converted: the subscription becomes active.
    assert_eq!(
        order.step([active(BUSINESS)]),
        [change_plan("business", true), add("bot", 1)]
    );

    // Or an invoice with a real payment is paid.
    let mut paid = Order::new("");
    paid.step([
        completed(session(Subscription, None)),
        updated(trial.clone()),
    ]);
    let mut conversion = invoice("subscription_cycle", &[]);
    conversion.id = "in_conversion".into();
    assert_eq!(
        paid.step([Signal::InvoicePaid {
            invoice: conversion
        }]),
        [change_plan("business", true), add("bot", 1)]
    );

    // A trial that ends unpaid follows on_payment_failed, or on_cancel once canceled.
    let mut unpaid = Order::new("");
    unpaid.step([
        completed(session(Subscription, None)),
        updated(trial.clone()),
    ]);
    assert_eq!(unpaid.step([status(PastDue, BUSINESS)]), [Call::Pause]);
    assert_eq!(unpaid.step([deleted(BUSINESS)]), []);
    assert_eq!(unpaid.status(), OrderStatus::Canceled);

    // Policy may provision the paid plan at once; the catalog's trial days then apply.
    let mut at_once = Order::new(r#"trial = "paid_plan""#);
    assert_eq!(
        at_once.step([completed(session(Subscription, None)), updated(trial)]),
        [create(), change_plan("business", true), add("bot", 1)]
    );
}

#[test]
fn a_canceled_subscription_gets_the_on_cancel_steps() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    assert_eq!(
        order.step([deleted(BUSINESS)]),
        [Call::Pause, Call::DisableAutoRenew]
    );
    assert_eq!(order.status(), OrderStatus::Canceled);
    assert_eq!(
        order.step([active(BUSINESS), invoice_paid("subscription_cycle", &[])]),
        []
    );

    let mut downgraded = Order::new(r#"on_cancel = ["downgrade_to_free"]"#);
    downgraded.step(sale(BUSINESS));
    assert_eq!(
        downgraded.step([deleted(BUSINESS)]),
        [change_plan("free", false)]
    );
    assert_eq!(downgraded.status(), OrderStatus::Canceled);
}

#[test]
fn a_deleted_workspace_is_the_last_call() {
    let mut order = Order::new(r#"on_cancel = ["delete", "pause", "downgrade_to_free"]"#);
    order.step(sale(BUSINESS));
    assert_eq!(
        order.step([deleted(BUSINESS)]),
        [change_plan("free", false), Call::Pause, Call::Delete]
    );
    let later = [
        opened("dp_1"),
        refund(&[], Some((5000, 5000))),
        active(&[("price_plus", 1)]),
    ];
    assert_eq!(order.step(later), []);
    assert!(order.provisioned.deleted);
}

#[test]
fn a_subscription_that_ends_before_provisioning_needs_nothing() {
    let mut canceled = Order::new("");
    assert_eq!(
        canceled.step([status(Incomplete, BUSINESS), deleted(BUSINESS)]),
        []
    );
    assert_eq!(canceled.status(), OrderStatus::Canceled);
    assert_eq!(
        canceled.step([invoice_paid("subscription_create", BUSINESS)]),
        []
    );

    let mut expired = Order::new("");
    assert_eq!(expired.step([status(IncompleteExpired, BUSINESS)]), []);
    assert_eq!(expired.status(), OrderStatus::Canceled);
}

#[test]
fn an_async_payment_that_fails_ends_the_order_unprovisioned() {
    let mut pending = session(Payment, Some(BUSINESS));
    pending.paid = false;
    let mut order = Order::new("");
    assert_eq!(order.step([completed(pending.clone())]), []);
    assert_eq!(order.status(), OrderStatus::Pending);
    assert_eq!(
        order.step([Signal::CheckoutFailed { session: pending }]),
        []
    );
    assert_eq!(order.status(), OrderStatus::Canceled);
}

#[test]
fn a_one_off_points_purchase_tops_up_the_customers_workspace() {
    let points = [("price_points", 2)];
    let topup = topup(2000, "Stripe checkout cs_1");
    let mut order = Order::new("").with_customer_workspace(7);
    assert_eq!(
        order.step([completed(session(Payment, Some(&points)))]),
        std::slice::from_ref(&topup)
    );
    assert_eq!(order.provisioned.workspace, Workspace::Known(7));
    assert_eq!(order.status(), OrderStatus::Active);

    let mut named = session(Payment, Some(&points));
    named.workspace_id = Some("42".into());
    let mut order = Order::new("");
    assert_eq!(order.step([completed(named)]), [claim(42), topup]);
    assert_eq!(order.provisioned.workspace, Workspace::Claiming(42));

    let mut order = Order::new("");
    assert_eq!(order.step([completed(session(Payment, Some(&points)))]), []);
    assert_eq!(order.status(), OrderStatus::NeedsAttention);
    assert_eq!(
        order.attention(),
        Some("no workspace for a points top-up: the customer has none, and the buyer named none")
    );
}

#[test]
fn a_one_off_plan_purchase_lapses_unless_its_price_renews() {
    let mut order = Order::new("");
    assert_eq!(
        order.step([completed(session(Payment, Some(BUSINESS)))]),
        [create(), change_plan("business", false), add("bot", 1)]
    );
    assert_eq!(order.status(), OrderStatus::Active);

    let mut renewing = Order::new("");
    renewing.catalog = Catalog::parse(&PRICES.replace(
        "plan = \"business\"",
        "plan = \"business\"\n    auto_renew = true",
    ))
    .unwrap();
    assert_eq!(
        renewing.step([completed(session(Payment, Some(BUSINESS)))]),
        [create(), change_plan("business", true), add("bot", 1)]
    );
}

#[test]
fn a_plan_in_quantity_needs_attention_unless_the_catalog_maps_it() {
    let mut order = Order::new("");
    assert_eq!(order.step(sale(&[("price_business", 3)])), []);
    assert_eq!(order.status(), OrderStatus::NeedsAttention);
    assert!(order
        .attention()
        .unwrap()
        .starts_with("price \"price_business\" sells plan \"business\" in quantity 3"));

    let mut mapped = Order::new("");
    mapped.catalog = Catalog::parse(&PRICES.replace(
        "plan = \"business\"",
        "plan = \"business\"\n    quantity_addon = \"member\"",
    ))
    .unwrap();
    assert_eq!(
        mapped.step(sale(&[("price_business", 3)])),
        [create(), change_plan("business", true), add("member", 2)]
    );
}

#[test]
fn refunds_of_a_points_purchase_deduct_their_share() {
    let mut order = Order::new("").with_customer_workspace(7);
    order.step([completed(session(Payment, Some(&[("price_points", 2)])))]);
    // 2000 points for 5000: refunding 1000 takes back 400 points.
    assert_eq!(order.step([refund(&[("re_1", 1000)], None)]), [deduct(400)]);
    assert_eq!(order.step([refund(&[], Some((5000, 1000)))]), []);
    assert_eq!(
        order.step([refund(&[("re_2", 1499)], Some((5000, 2499)))]),
        [deduct(599)]
    );
    assert_eq!(order.status(), OrderStatus::Active);
    // A refund that failed gives its points back.
    assert_eq!(
        order.step([refund(&[("re_2", -1499)], None)]),
        [topup(599, "refund of Stripe checkout cs_1 reversed")]
    );
    assert_eq!(
        order.step([refund(&[("re_3", 4000)], Some((5000, 5000)))]),
        [deduct(1600)]
    );
    assert_eq!(order.status(), OrderStatus::Refunded);
    assert_eq!(order.provisioned.points_deducted, 2000);
}

#[test]
fn a_full_refund_of_a_subscription_payment_follows_on_refund() {
    let full = || refund(&[("re_1", 5000)], Some((5000, 5000)));
    let partial = refund(&[("re_0", 100)], Some((5000, 100)));

    let mut ignored = Order::new("");
    ignored.step(sale(BUSINESS));
    assert_eq!(ignored.step([partial.clone(), full()]), []);
    assert_eq!(ignored.status(), OrderStatus::Active);

    let mut paused = Order::new(r#"on_refund = "pause""#);
    paused.step(sale(BUSINESS));
    assert_eq!(paused.step([partial]), []);
    assert_eq!(paused.step([full()]), [Call::Pause]);
    assert_eq!(paused.status(), OrderStatus::Refunded);
    // The refund failed: the pause is lifted.
    assert_eq!(
        paused.step([refund(&[("re_1", -5000)], None)]),
        [Call::Active]
    );
    assert_eq!(paused.status(), OrderStatus::Active);

    let mut canceled = Order::new(r#"on_refund = "cancel""#);
    canceled.step(sale(BUSINESS));
    assert_eq!(
        canceled.step([full()]),
        [Call::Pause, Call::DisableAutoRenew]
    );
    assert_eq!(canceled.status(), OrderStatus::Refunded);
}

#[test]
fn partial_refunds_of_several_charges_never_add_up_to_a_cancellation() {
    let mut order = Order::new(r#"on_refund = "cancel""#);
    order.step(sale(BUSINESS));
    assert_eq!(
        order.step([
            refund_of("ch_a", &[("re_a", 2500)], Some((5000, 2500))),
            refund_of("ch_b", &[("re_b", 2500)], Some((5000, 2500))),
        ]),
        []
    );
    assert_eq!(order.status(), OrderStatus::Active);
}

#[test]
fn a_refunded_subscription_payment_takes_back_its_invoices_points() {
    let list = [("price_business", 1), ("price_points", 1)];
    let mut order = Order::new("");
    order.step(sale(&list));
    assert_eq!(order.provisioned.points_granted, 1000);
    // `ch_1` paid the first invoice (the sale's): half refunded, half the points back.
    assert_eq!(
        order.step([refund(&[("re_1", 2500)], Some((5000, 2500)))]),
        [Call::DeductPoints {
            points: 500,
            note: "refund of Stripe subscription sub_1".into()
        }]
    );
}

#[test]
fn a_full_refund_of_a_one_off_plan_purchase_gets_the_on_cancel_steps() {
    let mut order = Order::new("");
    order.step([completed(session(Payment, Some(BUSINESS)))]);
    assert_eq!(
        order.step([refund(&[("re_1", 2000)], Some((5000, 2000)))]),
        []
    );
    assert_eq!(order.step([refund(&[("re_2", 3000)], None)]), [Call::Pause]);
    assert_eq!(order.status(), OrderStatus::Refunded);
}

#[test]
fn a_dispute_pauses_while_open_and_a_lost_one_is_a_full_refund() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    assert_eq!(order.step([opened("dp_1")]), [Call::Pause]);
    assert_eq!(order.status(), OrderStatus::Paused);
    assert_eq!(
        order.step([closed("dp_1", DisputeStatus::Won)]),
        [Call::Active]
    );
    assert_eq!(order.step([opened("dp_2")]), [Call::Pause]);
    // Lost: the payment went back, which `on_refund = "none"` leaves alone.
    assert_eq!(
        order.step([closed("dp_2", DisputeStatus::Lost)]),
        [Call::Active]
    );

    let mut refund_pauses = Order::new(r#"on_refund = "pause""#);
    refund_pauses.step(sale(BUSINESS));
    assert_eq!(refund_pauses.step([opened("dp_1")]), [Call::Pause]);
    assert_eq!(
        refund_pauses.step([closed("dp_1", DisputeStatus::Lost)]),
        []
    );
    assert_eq!(refund_pauses.status(), OrderStatus::Refunded);

    // A lost dispute of a points purchase takes its points back.
    let mut points = Order::new("").with_customer_workspace(7);
    points.step([completed(session(Payment, Some(&[("price_points", 2)])))]);
    assert_eq!(
        points.step([closed("dp_1", DisputeStatus::Lost)]),
        [deduct(2000)]
    );

    let mut lenient = Order::new(r#"on_dispute = "none""#);
    lenient.step(sale(BUSINESS));
    assert_eq!(lenient.step([opened("dp_1")]), []);
}

#[test]
fn problems_need_attention_and_make_no_calls() {
    let mut unknown = Order::new("");
    assert_eq!(unknown.step(sale(&[("price_gold", 1)])), []);
    assert_eq!(unknown.status(), OrderStatus::NeedsAttention);
    assert_eq!(
        unknown.attention(),
        Some("price \"price_gold\" is not in the catalog")
    );

    let mut no_email = Order::new("");
    assert_eq!(no_email.step([active(BUSINESS)]), []);
    assert_eq!(
        no_email.attention(),
        Some("no email to create a workspace with")
    );

    let mut two_plans = Order::new("");
    assert_eq!(
        two_plans.step(sale(&[("price_business", 1), ("price_plus", 1)])),
        []
    );
    assert_eq!(
        two_plans.attention(),
        Some("the order sells two plans: \"business\" and \"business_plus\"")
    );

    let mut no_items = Order::new("").with_customer_workspace(7);
    assert_eq!(no_items.step([completed(session(Payment, None))]), []);
    assert_eq!(
        no_items.attention(),
        Some("the line items of checkout cs_1 are unknown")
    );

    // Once the catalog is fixed the same facts go ahead.
    let fixed = Catalog::parse(&format!(
        "{PRICES}\n[[price]]\nstripe_price = \"price_gold\"\nplan = \"business_large\"\n"
    ))
    .unwrap();
    let planned = plan(&unknown.facts, &unknown.provisioned, &fixed);
    assert_eq!(
        planned.calls,
        [create(), change_plan("business_large", true)]
    );
}

#[test]
fn a_new_workspace_follows_the_template() {
    let mut catalog = catalog("");
    catalog.workspace.team_name = "{name} <{email}>".into();
    catalog.workspace.require_email_verification = true;
    catalog.workspace.trial_days = 7;
    catalog.workspace.template_ns = "ns_1".into();
    let mut facts = facts_of(&[(1, active(BUSINESS))]);
    facts.apply(&stamp(2), &invoice_paid("subscription_create", &[]));
    facts.name = None;
    let planned = plan(&facts, &Provisioned::default(), &catalog);
    assert_eq!(
        planned.calls[0],
        Call::Create(NewWorkspace {
            email: "ann@example.com".into(),
            name: "ann".into(),
            team_name: "ann <ann@example.com>".into(),
            require_email_verification: true,
            trial_days: Some(7),
            template_ns: Some("ns_1".into()),
            password: None,
        })
    );
}

/// A tiny deterministic shuffle, so the test needs no crate and always sees the same orders.
fn shuffled<T: Clone>(list: &[T], seed: u64) -> Vec<T> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = list.to_vec();
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.swap(i, (state % (i as u64 + 1)) as usize);
    }
    out
}

#[test]
fn a_subscription_story_gives_the_same_facts_in_any_order() {
    let plus = [("price_plus", 1), ("price_bot", 1)];
    let plus_more = [("price_plus", 1), ("price_bot", 3)];
    let story: Vec<(i64, Signal)> = [
        completed(session(Subscription, None)),
        status(Incomplete, BUSINESS),
        invoice_paid("subscription_create", BUSINESS),
        active(BUSINESS),
        active(&plus),
        active(&plus_more),
        invoice_failed("subscription_cycle"),
        status(PastDue, &plus_more),
        invoice_paid("subscription_cycle", &plus_more),
        active(&plus_more),
        deleted(&plus_more),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, signal)| (i as i64 + 1, signal))
    .collect();
    let in_order = facts_of(&story);
    let catalog = catalog("");
    let expected = plan(&in_order, &Provisioned::default(), &catalog);
    for seed in 0..500 {
        let mut signals = shuffled(&story, seed);
        signals.push(signals[seed as usize % signals.len()].clone());
        let facts = facts_of(&signals);
        assert_eq!(facts, in_order, "seed {seed}");
        assert_eq!(plan(&facts, &Provisioned::default(), &catalog), expected);
    }
    // Before the cancel, the story ends active on the last items, unpaused.
    let before_cancel = facts_of(&story[..10]);
    let planned = plan(&before_cancel, &Provisioned::default(), &catalog);
    assert_eq!(
        planned.calls,
        [create(), change_plan("business_plus", true), add("bot", 3)]
    );
}

#[test]
fn a_points_story_ends_the_same_in_any_order() {
    let story = [
        (1, completed(session(Payment, Some(&[("price_points", 2)])))),
        (2, refund(&[("re_1", 1000)], Some((5000, 1000)))),
        (3, refund(&[("re_2", 1500)], None)),
        (4, refund(&[], Some((5000, 2500)))),
    ];
    let orders = [
        [0, 1, 2, 3],
        [3, 2, 1, 0],
        [1, 0, 3, 2],
        [2, 3, 0, 1],
        [1, 2, 3, 0],
        [0, 2, 1, 3],
    ];
    let catalog = catalog("");
    let mut ends = Vec::new();
    for order in orders {
        let mut facts = Facts {
            customer_orders: CustomerOrders {
                live_orders: 1,
                live_workspaces: vec![7],
                ..CustomerOrders::default()
            },
            ..Facts::default()
        };
        let mut provisioned = Provisioned::default();
        for &i in order.iter().chain(&order) {
            let (n, signal) = &story[i];
            facts.apply(&stamp(*n), signal);
            let planned = plan(&facts, &provisioned, &catalog);
            assert_settled(&facts, &planned, &catalog);
            provisioned = planned.provisioned;
        }
        ends.push((facts, provisioned));
    }
    assert!(ends.iter().all(|end| *end == ends[0]));
    let (_, provisioned) = &ends[0];
    assert_eq!(
        (provisioned.points_granted, provisioned.points_deducted),
        (2000, 1000)
    );
}

#[test]
fn provisioned_round_trips_through_json_and_tolerates_missing_fields() {
    let provisioned = Provisioned {
        workspace: Workspace::Known(42),
        sells_plan: true,
        plan: Some("business".into()),
        addons: [("bot".to_owned(), 2)].into(),
        points_granted: 2000,
        points_deducted: 400,
        paused: true,
        auto_renew: true,
        deleted: false,
    };
    let json = serde_json::to_value(&provisioned).unwrap();
    assert_eq!(json["workspace"], json!({ "known": 42 }));
    assert_eq!(
        serde_json::from_value::<Provisioned>(json).unwrap(),
        provisioned
    );
    let creating: Provisioned = serde_json::from_str(r#"{"workspace": "creating"}"#).unwrap();
    assert_eq!(creating.workspace, Workspace::Creating);
    assert_eq!(
        serde_json::from_str::<Provisioned>("{}").unwrap(),
        Provisioned::default()
    );
}

#[test]
fn calls_have_the_partner_api_bodies() {
    assert_eq!(
        create().body(),
        json!({
            "name": "Ann",
            "email": "ann@example.com",
            "team_name": "Ann",
            "require_email_verification": "no"
        })
    );
    let templated = Call::Create(NewWorkspace {
        email: "a@b.c".into(),
        name: "A".into(),
        team_name: "T".into(),
        require_email_verification: true,
        trial_days: Some(14),
        template_ns: Some("ns_1".into()),
        password: None,
    });
    assert_eq!(
        templated.body(),
        json!({
            "name": "A",
            "email": "a@b.c",
            "team_name": "T",
            "require_email_verification": "yes",
            "template_ns": "ns_1",
            "trial_days": 14
        })
    );
    assert_eq!(
        change_plan("free", false).body(),
        json!({ "plan": "free", "auto_renew": "no" })
    );
    assert_eq!(remove("bot", 2).body(), json!({ "addon": "bot", "qty": 2 }));
    assert_eq!(
        deduct(5).body(),
        json!({ "points": 5, "note": "refund of Stripe checkout cs_1" })
    );
    assert_eq!(Call::Active.body(), Value::Null);
}

#[test]
fn a_call_is_stored_under_its_kind() {
    let every_kind = [
        create(),
        change_plan("business", true),
        add("bot", 1),
        remove("bot", 1),
        Call::TopupPoints {
            points: 1,
            note: "n".into(),
        },
        deduct(1),
        Call::Pause,
        Call::Active,
        Call::EnableAutoRenew,
        Call::DisableAutoRenew,
        Call::Delete,
    ];
    for call in every_kind {
        let json = serde_json::to_value(&call).unwrap();
        assert_eq!(json["kind"], call.kind().to_string());
        assert_eq!(serde_json::from_value::<Call>(json).unwrap(), call);
        assert_eq!(Call::from_stored(call.kind(), call.body()).unwrap(), call);
    }
}

#[test]
fn status_strings_are_snake_case() {
    assert_eq!(OrderStatus::NeedsAttention.to_string(), "needs_attention");
    assert_eq!(
        serde_json::to_value(OrderStatus::NeedsAttention).unwrap(),
        OrderStatus::NeedsAttention.to_string()
    );
    assert_eq!(OrderStatus::Refunded.to_string(), "refunded");
}

/// Real-shaped events of both API eras, decoded as the service decodes them: before
/// 2025-03-31 (2020-03-02 here) and since ("basil", 2026-09-30 here), where invoices name
/// their subscription under `parent` and their prices under `pricing`, charges no longer
/// name their invoice, and flexible billing schedules a cancellation with `cancel_at`.
mod eras {
    use serde_json::{json, Value};

    use crate::domain::Signal;
    use crate::stripe::decode::parse_event;

    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Era {
        Classic,
        Basil,
    }

    pub const ERAS: [Era; 2] = [Era::Classic, Era::Basil];

    fn decode(era: Era, event_type: &str, object: Value) -> Signal {
        let version = match era {
            Era::Classic => "2020-03-02",
            Era::Basil => "2026-09-30.endive",
        };
        let event = json!({
            "id": "evt_era", "object": "event", "api_version": version, "created": 1,
            "type": event_type, "data": { "object": object },
        });
        parse_event(&serde_json::to_vec(&event).unwrap())
            .unwrap()
            .signal("workspace_id")
            .unwrap()
            .unwrap()
    }

    fn items(era: Era, list: &[(&str, u32)]) -> Value {
        let data: Vec<Value> = list
            .iter()
            .map(|(price, quantity)| match era {
                Era::Classic => json!({"object": "subscription_item", "price": {"id": price},
                                       "plan": {"id": price}, "quantity": quantity}),
                Era::Basil => json!({"object": "subscription_item", "price": {"id": price},
                                     "quantity": quantity, "current_period_end": 1_800_000_000}),
            })
            .collect();
        json!({"object": "list", "data": data})
    }

    /// A subscription snapshot; `patch` sets more fields.
    pub fn subscription(era: Era, status: &str, list: &[(&str, u32)], patch: Value) -> Signal {
        let mut object = json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status,
            "items": items(era, list), "cancel_at_period_end": false, "cancel_at": null,
            "pause_collection": null, "trial_end": null, "metadata": {},
        });
        if era == Era::Basil {
            object["billing_mode"] = json!({"type": "flexible"});
        } else {
            object["current_period_end"] = json!(1_800_000_000);
        }
        object
            .as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        let event_type = if status == "canceled" {
            "customer.subscription.deleted"
        } else {
            "customer.subscription.updated"
        };
        decode(era, event_type, object)
    }

    /// "Cancel at period end" as the customer portal sets it in each era's default mode.
    pub fn cancel_scheduled(era: Era) -> Value {
        match era {
            Era::Classic => json!({"cancel_at_period_end": true, "cancel_at": 1_800_000_000}),
            Era::Basil => json!({"cancel_at_period_end": false, "cancel_at": 1_800_000_000}),
        }
    }

    pub fn invoice(
        era: Era,
        event_type: &str,
        id: &str,
        reason: &str,
        amount_paid: i64,
        list: &[(&str, u32)],
    ) -> Signal {
        let lines: Vec<Value> = list
            .iter()
            .map(|(price, quantity)| match era {
                Era::Classic => json!({"object": "line_item", "price": {"id": price},
                                       "quantity": quantity, "proration": false}),
                Era::Basil => json!({"object": "line_item", "quantity": quantity,
                    "pricing": {"type": "price_details", "price_details": {"price": price}},
                    "parent": {"type": "subscription_item_details",
                               "subscription_item_details": {"proration": false}}}),
            })
            .collect();
        let mut object = json!({
            "id": id, "object": "invoice", "customer": "cus_1",
            "customer_email": "ann@example.com", "customer_name": "Ann",
            "billing_reason": reason, "amount_paid": amount_paid,
            "lines": {"object": "list", "data": lines},
        });
        match era {
            Era::Classic => {
                object["subscription"] = json!("sub_1");
                object["charge"] = json!(format!("ch_{id}"));
                object["payment_intent"] = json!(format!("pi_{id}"));
            }
            Era::Basil => {
                object["parent"] = json!({"type": "subscription_details",
                    "subscription_details": {"subscription": "sub_1"}});
            }
        }
        decode(era, event_type, object)
    }

    /// `charge.refunded` of charge `id`, cumulative.
    pub fn charge_refunded(era: Era, id: &str, amount: i64, refunded: i64) -> Signal {
        let mut object = json!({
            "id": id, "object": "charge", "amount": amount, "amount_refunded": refunded,
            "customer": "cus_1", "payment_intent": "pi_1", "refunded": refunded >= amount,
        });
        if era == Era::Classic {
            object["invoice"] = json!("in_1");
            object["refunds"] = json!({"object": "list", "data": [
                {"id": id.replacen("ch_", "re_", 1), "object": "refund", "amount": refunded,
                 "charge": id, "status": "succeeded"}
            ]});
        }
        decode(era, "charge.refunded", object)
    }

    pub fn refund(
        era: Era,
        event_type: &str,
        id: &str,
        charge: &str,
        amount: i64,
        status: &str,
    ) -> Signal {
        let mut object = json!({"id": id, "object": "refund", "amount": amount, "charge": charge,
                                "payment_intent": "pi_1", "status": status});
        if era == Era::Basil {
            object["destination_details"] = json!({"type": "card", "card": {"type": "refund"}});
        }
        decode(era, event_type, object)
    }

    pub fn dispute(era: Era, event_type: &str, id: &str, status: &str) -> Signal {
        let mut object = json!({"id": id, "object": "dispute", "amount": 5000, "charge": "ch_1",
                                "payment_intent": "pi_1", "status": status, "reason": "general"});
        if era == Era::Basil {
            object["enhanced_eligibility_types"] = json!([]);
        }
        decode(era, event_type, object)
    }
}

use eras::{Era, ERAS};

/// A subscription sale of either era: Checkout, the subscription active, its first
/// invoice paid.
fn era_sale(era: Era, list: &[(&str, u32)]) -> Vec<Signal> {
    vec![
        completed(session(Subscription, None)),
        eras::subscription(era, "active", list, json!({})),
        eras::invoice(
            era,
            "invoice.paid",
            "in_1",
            "subscription_create",
            5000,
            list,
        ),
    ]
}

#[test]
fn both_eras_a_scheduled_cancellation_turns_auto_renew_off_and_clearing_it_on() {
    for era in ERAS {
        let mut order = Order::new("");
        order.step(era_sale(era, BUSINESS));
        let ending = eras::subscription(era, "active", BUSINESS, eras::cancel_scheduled(era));
        assert_eq!(order.step([ending]), [Call::DisableAutoRenew], "{era:?}");
        let kept = eras::subscription(era, "active", BUSINESS, json!({}));
        assert_eq!(order.step([kept]), [Call::EnableAutoRenew], "{era:?}");
    }
}

#[test]
fn both_eras_pause_collection_keeps_access_and_status_paused_pauses() {
    for era in ERAS {
        let mut order = Order::new("");
        order.step(era_sale(era, BUSINESS));
        let collection =
            json!({"pause_collection": {"behavior": "keep_as_draft", "resumes_at": null}});
        assert_eq!(
            order.step([eras::subscription(era, "active", BUSINESS, collection)]),
            [],
            "{era:?}"
        );
        assert_eq!(
            order.step([eras::subscription(era, "paused", BUSINESS, json!({}))]),
            [Call::Pause],
            "{era:?}"
        );
        assert_eq!(
            order.step([eras::subscription(era, "active", BUSINESS, json!({}))]),
            [Call::Active],
            "{era:?}"
        );
    }
}

#[test]
fn both_eras_a_trial_converts_on_a_real_payment_not_on_its_zero_invoice() {
    for era in ERAS {
        let mut order = Order::new("");
        let trial_end = json!({"trial_end": stamp(2).created + 14 * 86_400});
        let calls = order.step([
            completed(session(Subscription, None)),
            eras::subscription(era, "trialing", BUSINESS, trial_end),
            eras::invoice(
                era,
                "invoice.paid",
                "in_0",
                "subscription_create",
                0,
                BUSINESS,
            ),
        ]);
        let [Call::Create(new)] = &calls[..] else {
            panic!("{era:?}: only a create expected, got {calls:?}")
        };
        assert_eq!(new.trial_days, Some(14), "{era:?}");
        assert_eq!(
            order.step([eras::invoice(
                era,
                "invoice.paid",
                "in_1",
                "subscription_cycle",
                5000,
                BUSINESS
            )]),
            [change_plan("business", true), add("bot", 1)],
            "{era:?}"
        );
    }
}

#[test]
fn both_eras_points_are_topped_up_on_each_paid_invoice_once() {
    let list = [("price_business", 1), ("price_points", 1)];
    for era in ERAS {
        let mut order = Order::new("");
        order.step(era_sale(era, &list));
        assert_eq!(order.provisioned.points_granted, 1000, "{era:?}");
        let cycle = eras::invoice(
            era,
            "invoice.paid",
            "in_2",
            "subscription_cycle",
            5000,
            &list,
        );
        let twice = eras::invoice(
            era,
            "invoice.payment_succeeded",
            "in_2",
            "subscription_cycle",
            5000,
            &list,
        );
        assert_eq!(
            order.step([cycle, twice]),
            [topup(1000, "Stripe subscription sub_1")],
            "{era:?}"
        );
    }
}

#[test]
fn both_eras_overdue_follows_the_subscription_not_a_lone_failed_invoice() {
    for era in ERAS {
        let mut order = Order::new("");
        order.step(era_sale(era, BUSINESS));
        let failed = eras::invoice(
            era,
            "invoice.payment_failed",
            "in_up",
            "subscription_update",
            0,
            &[],
        );
        assert_eq!(order.step([failed]), [], "{era:?}");
        assert_eq!(
            order.step([eras::subscription(era, "past_due", BUSINESS, json!({}))]),
            [Call::Pause, Call::DisableAutoRenew],
            "{era:?}"
        );
        let paid = eras::invoice(
            era,
            "invoice.paid",
            "in_2",
            "subscription_cycle",
            5000,
            BUSINESS,
        );
        assert_eq!(
            order.step([paid, eras::subscription(era, "active", BUSINESS, json!({}))]),
            [Call::Active, Call::EnableAutoRenew],
            "{era:?}"
        );
    }
}

#[test]
fn both_eras_a_refund_is_full_per_charge_and_one_that_failed_is_given_back() {
    for era in ERAS {
        let mut order = Order::new(r#"on_refund = "pause""#);
        order.step(era_sale(era, BUSINESS));
        assert_eq!(
            order.step([eras::charge_refunded(era, "ch_a", 5000, 2500)]),
            [],
            "{era:?}"
        );
        assert_eq!(
            order.step([eras::charge_refunded(era, "ch_b", 5000, 2500)]),
            [],
            "{era:?}: halves of two charges are no full refund"
        );
        assert_eq!(
            order.step([eras::refund(
                era,
                "refund.created",
                "re_c",
                "ch_c",
                5000,
                "succeeded"
            )]),
            [],
            "{era:?}: the charge's amount is not known yet"
        );
        assert_eq!(
            order.step([eras::charge_refunded(era, "ch_c", 5000, 5000)]),
            [Call::Pause],
            "{era:?}"
        );
        assert_eq!(
            order.step([eras::refund(
                era,
                "refund.failed",
                "re_c",
                "ch_c",
                5000,
                "failed"
            )]),
            [Call::Active],
            "{era:?}"
        );
    }
}

#[test]
fn both_eras_disputes_pause_while_open_and_follow_their_outcome() {
    for era in ERAS {
        for (opened, closed, after) in [
            ("needs_response", "won", vec![Call::Active]),
            (
                "warning_needs_response",
                "warning_closed",
                vec![Call::Active],
            ),
            ("under_review", "prevented", vec![Call::Active]),
            ("under_review", "lost", vec![]),
        ] {
            let mut order = Order::new(r#"on_refund = "pause""#);
            order.step(era_sale(era, BUSINESS));
            assert_eq!(
                order.step([eras::dispute(era, "charge.dispute.created", "dp_1", opened)]),
                [Call::Pause],
                "{era:?} {opened}"
            );
            assert_eq!(
                order.step([eras::dispute(era, "charge.dispute.closed", "dp_1", closed)]),
                after,
                "{era:?} {closed}"
            );
        }
        let mut reinstated = Order::new("");
        reinstated.step(era_sale(era, BUSINESS));
        reinstated.step([eras::dispute(
            era,
            "charge.dispute.created",
            "dp_1",
            "needs_response",
        )]);
        assert_eq!(
            reinstated.step([eras::dispute(
                era,
                "charge.dispute.funds_reinstated",
                "dp_1",
                "under_review"
            )]),
            [Call::Active],
            "{era:?}"
        );
    }
}

#[test]
fn both_eras_a_plan_in_quantity_needs_attention() {
    for era in ERAS {
        let mut order = Order::new("");
        order.step(era_sale(era, &[("price_business", 2)]));
        assert_eq!(order.status(), OrderStatus::NeedsAttention, "{era:?}");
    }
}

#[test]
fn a_new_workspace_is_set_up_right_after_its_create() {
    let template = |ns: &str| Call::InstallTemplate {
        template_ns: ns.into(),
    };
    let billing = |ids: &str| Call::UpdateExtraBillingInformation {
        extra_billing_information: ids.into(),
    };
    let subscription_ids = "Stripe customer cus_1, subscription sub_1";
    let checkout_ids = "Stripe customer cus_1, checkout cs_1";
    let mut named = session(Payment, Some(BUSINESS));
    named.workspace_id = Some("42".into());
    let mut named_points = session(Payment, Some(&[("price_points", 1)]));
    named_points.workspace_id = Some("42".into());
    let with_template = "plan = \"business\"\n    template = \"tpl_shop\"";
    // (case, price line of business, [workspace] lines, signals, calls)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<Signal>, Vec<Call>);
    let cases: Vec<Case> = vec![
        (
            "neither by default",
            "plan = \"business\"",
            "",
            sale(BUSINESS),
            vec![create(), change_plan("business", true), add("bot", 1)],
        ),
        (
            "the price's template",
            with_template,
            "",
            sale(BUSINESS),
            vec![
                create(),
                template("tpl_shop"),
                change_plan("business", true),
                add("bot", 1),
            ],
        ),
        (
            "template and Stripe ids of a subscription",
            with_template,
            "billing_information = true",
            sale(BUSINESS),
            vec![
                create(),
                template("tpl_shop"),
                billing(subscription_ids),
                change_plan("business", true),
                add("bot", 1),
            ],
        ),
        (
            "the Stripe ids of a one-off purchase",
            "plan = \"business\"",
            "billing_information = true",
            vec![completed(session(Payment, Some(BUSINESS)))],
            vec![
                create(),
                billing(checkout_ids),
                change_plan("business", false),
                add("bot", 1),
            ],
        ),
        (
            "a named workspace gets the ids, not the template",
            with_template,
            "billing_information = true",
            vec![completed(named)],
            vec![
                claim(42),
                billing(checkout_ids),
                change_plan("business", false),
                add("bot", 1),
            ],
        ),
        (
            "points for a named workspace: neither",
            with_template,
            "billing_information = true",
            vec![completed(named_points)],
            vec![claim(42), topup(1000, "Stripe checkout cs_1")],
        ),
    ];
    for (case, business, workspace, signals, expected) in cases {
        let mut order = Order::new("");
        let prices = PRICES.replacen("plan = \"business\"", business, 1);
        order.catalog = Catalog::parse(&format!("[workspace]\n{workspace}\n{prices}")).unwrap();
        assert_eq!(order.step(signals), expected, "{case}");
    }
}

#[test]
fn a_template_is_installed_once_whatever_comes_after() {
    let mut order = Order::new("");
    order.catalog = Catalog::parse(&PRICES.replacen(
        "plan = \"business\"",
        "plan = \"business\"\n    template = \"tpl_shop\"",
        1,
    ))
    .unwrap();
    let installs = |calls: &[Call]| {
        calls
            .iter()
            .filter(|call| matches!(call, Call::InstallTemplate { .. }))
            .count()
    };
    assert_eq!(installs(&order.step(sale(BUSINESS))), 1);
    let upgrade = order.step([active(&[("price_plus", 1)])]);
    assert_eq!(installs(&upgrade), 0);
    assert_eq!(installs(&order.step([active(BUSINESS)])), 0);
}
