use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::domain::Stamp;
use crate::domain::SubscriptionStatus;
use crate::partner::Call;
use crate::plan::facts::Snapshot;
use crate::plan::{restore, Workspace};

fn sold(plan: &str, addons: &[(&str, u32)]) -> Provisioned {
    Provisioned {
        workspace: Workspace::Known(7),
        sells_plan: true,
        plan: Some(plan.into()),
        addons: addons.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
        auto_renew: true,
        ..Provisioned::default()
    }
}

fn workspace(plan: &str, paused: bool, auto_renew: bool, bots: i64) -> WorkspaceInfo {
    WorkspaceInfo {
        id: 7,
        plan: plan.into(),
        is_paused: paused,
        auto_renew,
        addon_bot: bots,
        ..WorkspaceInfo::default()
    }
}

fn fields(drifts: &[Drift]) -> Vec<(i64, &str, Value, Value)> {
    drifts
        .iter()
        .map(|d| {
            (
                d.order,
                d.field.as_str(),
                d.expected.clone(),
                d.actual.clone(),
            )
        })
        .collect()
}

#[test]
fn uchat_fields_are_compared_with_what_the_orders_provisioned() {
    let plan = sold("business", &[("bot", 1)]);
    let addon_only = Provisioned {
        addons: BTreeMap::from([("bot".to_owned(), 2)]),
        ..Provisioned::default()
    };
    let orders = [(1, &plan), (2, &addon_only)];
    type Case = (
        &'static str,
        WorkspaceInfo,
        Vec<(i64, &'static str, Value, Value)>,
    );
    let cases: Vec<Case> = vec![
        ("in step", workspace("business", false, true, 3), vec![]),
        (
            "plan changed by hand",
            workspace("free", false, true, 3),
            vec![(1, "plan", json!("business"), json!("free"))],
        ),
        (
            "paused and auto-renew off by hand",
            workspace("business", true, false, 3),
            vec![
                (1, "auto_renew", json!(true), json!(false)),
                (1, "paused", json!(false), json!(true)),
            ],
        ),
        (
            "an add-on removed, laid at the first order that added it",
            workspace("business", false, true, 1),
            vec![(1, "addon:bot", json!(3), json!(1))],
        ),
    ];
    for (name, seen, expected) in cases {
        assert_eq!(
            fields(&uchat_drift(7, &orders, Some(&seen))),
            expected,
            "{name}"
        );
    }
}

#[test]
fn a_workspace_uchat_no_longer_has_is_drift_of_every_order_on_it() {
    let plan = sold("business", &[]);
    let drifts = uchat_drift(7, &[(1, &plan), (2, &plan)], None);
    assert_eq!(
        fields(&drifts),
        vec![
            (1, "workspace", json!(7), Value::Null),
            (2, "workspace", json!(7), Value::Null)
        ]
    );
    assert!(restore(&plan, &seen_state(&plan, &drifts), "x").is_empty());
}

#[test]
fn a_workspace_on_its_trial_is_compared_on_pause_only() {
    let trial = Provisioned {
        plan: None,
        ..sold("business", &[])
    };
    assert!(uchat_drift(7, &[(1, &trial)], Some(&workspace("trial", false, true, 0))).is_empty());
}

#[test]
fn repair_plans_the_calls_that_bring_the_workspace_back() {
    let want = sold("business", &[("bot", 2)]);
    let seen = workspace("free", true, false, 0);
    let drifts = uchat_drift(7, &[(1, &want)], Some(&seen));
    let calls = restore(&want, &seen_state(&want, &drifts), "reconcile");
    assert_eq!(
        calls,
        vec![
            Call::ChangePlan {
                plan: "business".into(),
                auto_renew: true
            },
            Call::AddAddon {
                addon: "bot".into(),
                qty: 2
            },
            Call::Active,
        ]
    );
}

fn subscription(status: SubscriptionStatus, items: &[(&str, u32)], cancel: bool) -> Subscription {
    Subscription {
        id: "sub_1".into(),
        customer: None,
        status,
        items: items
            .iter()
            .map(|(price, quantity)| LineItem {
                price: price.to_string(),
                quantity: *quantity,
            })
            .collect(),
        pause_collection: false,
        cancel_at_period_end: cancel,
        cancel_at: None,
        trial_end: None,
        workspace_id: None,
    }
}

#[test]
fn stripe_fields_are_compared_with_the_orders_facts() {
    let known = subscription(
        SubscriptionStatus::Active,
        &[("price_a", 1), ("price_b", 2)],
        false,
    );
    let facts = Facts {
        subscription: Some(Snapshot {
            stamp: Stamp {
                created: 1,
                event_id: "evt_1".into(),
            },
            status: known.status.clone(),
            items: known.items.clone(),
            pause_collection: false,
            cancel_at_period_end: false,
            cancel_at: None,
            trial_end: None,
        }),
        ..Facts::default()
    };
    type Case = (&'static str, Option<Subscription>, Vec<&'static str>);
    let reordered = subscription(
        SubscriptionStatus::Active,
        &[("price_b", 2), ("price_a", 1)],
        false,
    );
    let cases: Vec<Case> = vec![
        ("in step, items in another order", Some(reordered), vec![]),
        (
            "canceled in Stripe, with another quantity",
            Some(subscription(
                SubscriptionStatus::Canceled,
                &[("price_a", 3)],
                true,
            )),
            vec!["status", "items", "cancel_at_period_end"],
        ),
        ("unknown to Stripe", None, vec!["subscription"]),
    ];
    for (name, now, expected) in cases {
        let drifts = stripe_drift(1, &facts, now.as_ref());
        let got: Vec<&str> = drifts.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(got, expected, "{name}");
        assert!(drifts.iter().all(|d| d.source == Source::Stripe));
    }
    assert!(
        stripe_drift(1, &Facts::default(), None).is_empty(),
        "no subscription, nothing to compare"
    );
}
