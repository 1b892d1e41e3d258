use serde_json::{json, Value};

use super::facts::tests::*;
use super::*;
use crate::domain::{CheckoutMode::*, Signal, SubscriptionStatus::*};

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

    fn with_customer_workspace(mut self, id: i64) -> Order {
        self.facts.customer_workspace = Some(id);
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

    let mut trialing = Order::new("");
    trialing.step([completed(session(Subscription, None))]);
    assert_eq!(trialing.step([status(Trialing, BUSINESS)]), expected);

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
fn points_on_a_subscription_are_topped_up_once() {
    let mut order = Order::new("");
    let list = [("price_business", 1), ("price_points", 2)];
    assert_eq!(
        order.step(sale(&list)),
        [
            create(),
            change_plan("business", true),
            Call::TopupPoints {
                points: 2000,
                note: "Stripe subscription sub_1".into()
            }
        ]
    );
    assert_eq!(
        order.step([invoice_paid("subscription_cycle", &list), active(&list)]),
        []
    );
}

#[test]
fn a_workspace_the_buyer_names_or_the_customer_has_gets_the_calls() {
    let mut named = session(Subscription, None);
    named.workspace_id = Some("42".into());
    let mut order = Order::new("");
    let calls = order.step([completed(named), active(BUSINESS)]);
    assert_eq!(calls, [change_plan("business", true), add("bot", 1)]);
    assert_eq!(order.provisioned.workspace, Workspace::Known(42));

    let mut order = Order::new("").with_customer_workspace(7);
    assert_eq!(
        order.step(sale(BUSINESS)),
        [change_plan("business", true), add("bot", 1)]
    );
    assert_eq!(order.provisioned.workspace, Workspace::Known(7));

    let mut typo = session(Subscription, None);
    typo.workspace_id = Some("my team".into());
    let mut order = Order::new("").with_customer_workspace(7);
    assert_eq!(order.step([completed(typo), active(BUSINESS)]), []);
    assert_eq!(order.status(), OrderStatus::NeedsAttention);
    assert_eq!(
        order.attention(),
        Some("the buyer named workspace \"my team\", which is not a workspace id")
    );
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
fn a_failed_payment_pauses_and_paying_again_resumes() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    assert_eq!(order.step([status(PastDue, BUSINESS)]), [Call::Pause]);
    assert_eq!(order.status(), OrderStatus::Paused);
    assert_eq!(
        order.step([invoice_paid("subscription_cycle", &[]), active(BUSINESS)]),
        [Call::Active]
    );
    assert_eq!(order.status(), OrderStatus::Active);
    assert_eq!(
        order.step([invoice_failed("subscription_cycle")]),
        [Call::Pause]
    );
    assert_eq!(order.step([status(Unpaid, BUSINESS)]), []);
    assert_eq!(order.step([active(BUSINESS)]), [Call::Active]);

    let mut lenient = Order::new(r#"on_payment_failed = "none""#);
    lenient.step(sale(BUSINESS));
    assert_eq!(
        lenient.step([
            invoice_failed("subscription_cycle"),
            status(PastDue, BUSINESS)
        ]),
        []
    );
    assert_eq!(lenient.status(), OrderStatus::Active);
}

#[test]
fn paying_again_does_not_resume_while_another_pause_reason_holds() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    assert_eq!(
        order.step([invoice_failed("subscription_cycle")]),
        [Call::Pause]
    );
    let opened = Signal::DisputeOpened {
        dispute: dispute("dp_1", "needs_response"),
    };
    assert_eq!(order.step([opened]), []);
    assert_eq!(order.step([invoice_paid("subscription_cycle", &[])]), []);
    assert_eq!(order.status(), OrderStatus::Paused);
}

#[test]
fn a_stripe_pause_pauses_and_resuming_resumes() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    let mut collection_paused = subscription(Active, BUSINESS);
    collection_paused.pause_collection = true;
    assert_eq!(order.step([updated(collection_paused)]), [Call::Pause]);
    assert_eq!(order.step([active(BUSINESS)]), [Call::Active]);
    assert_eq!(order.step([status(Paused, BUSINESS)]), [Call::Pause]);
    assert_eq!(order.step([active(BUSINESS)]), [Call::Active]);
}

#[test]
fn cancel_at_period_end_turns_auto_renew_off_and_on() {
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    let mut ending = subscription(Active, BUSINESS);
    ending.cancel_at_period_end = true;
    assert_eq!(order.step([updated(ending)]), [Call::DisableAutoRenew]);
    assert_eq!(order.step([active(BUSINESS)]), [Call::EnableAutoRenew]);
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
    let opened = Signal::DisputeOpened {
        dispute: dispute("dp_1", "needs_response"),
    };
    let later = [
        opened,
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
fn a_subscription_of_addons_alone_takes_them_back_when_it_ends() {
    let mut order = Order::new("").with_customer_workspace(7);
    assert_eq!(order.step(sale(&[("price_bot", 2)])), [add("bot", 2)]);
    assert_eq!(
        order.step([deleted(&[("price_bot", 2)])]),
        [remove("bot", 2)]
    );
    assert_eq!(order.status(), OrderStatus::Canceled);
}

#[test]
fn a_one_off_points_purchase_tops_up_the_customers_workspace() {
    let points = [("price_points", 2)];
    let topup = Call::TopupPoints {
        points: 2000,
        note: "Stripe checkout cs_1".into(),
    };
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
    assert_eq!(order.step([completed(named)]), [topup]);
    assert_eq!(order.provisioned.workspace, Workspace::Known(42));

    let mut order = Order::new("");
    assert_eq!(order.step([completed(session(Payment, Some(&points)))]), []);
    assert_eq!(order.status(), OrderStatus::NeedsAttention);
    assert_eq!(order.attention(), Some("no workspace for a points top-up"));
}

#[test]
fn a_one_off_plan_purchase_is_provisioned_as_a_new_subscription() {
    let mut order = Order::new("");
    assert_eq!(
        order.step([completed(session(Payment, Some(BUSINESS)))]),
        [create(), change_plan("business", true), add("bot", 1)]
    );
    assert_eq!(order.status(), OrderStatus::Active);
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
    assert_eq!(
        order.step([refund(&[("re_3", 2501)], Some((5000, 5000)))]),
        [deduct(1001)]
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

    let mut canceled = Order::new(r#"on_refund = "cancel""#);
    canceled.step(sale(BUSINESS));
    assert_eq!(
        canceled.step([full()]),
        [Call::Pause, Call::DisableAutoRenew]
    );
    assert_eq!(canceled.status(), OrderStatus::Refunded);
}

#[test]
fn a_full_refund_of_a_one_off_plan_purchase_gets_the_on_cancel_steps() {
    let mut order = Order::new("");
    order.step([completed(session(Payment, Some(BUSINESS)))]);
    assert_eq!(
        order.step([refund(&[("re_1", 2000)], Some((5000, 2000)))]),
        []
    );
    assert_eq!(
        order.step([refund(&[("re_2", 3000)], None)]),
        [Call::Pause, Call::DisableAutoRenew]
    );
    assert_eq!(order.status(), OrderStatus::Refunded);
}

#[test]
fn a_dispute_pauses_until_it_is_won() {
    let opened = |id: &str| Signal::DisputeOpened {
        dispute: dispute(id, "needs_response"),
    };
    let closed = |id: &str, status: &str| Signal::DisputeClosed {
        dispute: dispute(id, status),
    };
    let mut order = Order::new("");
    order.step(sale(BUSINESS));
    assert_eq!(order.step([opened("dp_1")]), [Call::Pause]);
    assert_eq!(order.status(), OrderStatus::Paused);
    assert_eq!(order.step([closed("dp_1", "won")]), [Call::Active]);
    assert_eq!(order.step([opened("dp_2")]), [Call::Pause]);
    // A lost dispute took the money back: the workspace stays paused.
    assert_eq!(order.step([closed("dp_2", "lost")]), []);

    let mut lenient = Order::new(r#"on_dispute = "none""#);
    lenient.step(sale(BUSINESS));
    assert_eq!(lenient.step([opened("dp_1"), closed("dp_1", "lost")]), []);
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
            customer_workspace: Some(7),
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
