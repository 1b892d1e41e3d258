//! An operator gave up a partner call: what the order provisions without it.
//!
//! The planner records, with each plan, the state its calls reach. A canceled call never
//! reaches UChat, so the order's state must lose that call's effect, or it would claim
//! add-ons, points or a plan UChat never received, and the planner would never plan them
//! again. Pure, like the planner.

use super::{Provisioned, Workspace};
use crate::partner::Call;

/// The order's state once `calls[at]` is given up. `calls` are the order's calls that
/// were not canceled before, in their sequence, the given-up one included.
///
/// A count (add-on units, points) loses what the call would have added or taken. A
/// setting (plan, pause, auto-renew, deletion) the call was the last to set goes back to
/// what the calls before it set, or to a new order's; a later call that sets it again
/// decides it still.
pub fn without_call(provisioned: &Provisioned, calls: &[Call], at: usize) -> Provisioned {
    let mut state = provisioned.clone();
    let Some(canceled) = calls.get(at) else {
        return state;
    };
    let (earlier, later) = (&calls[..at], &calls[at + 1..]);
    // What the calls other than the canceled one last set, looking back from its place.
    let setting = |read: fn(&Call) -> Option<Setting>| {
        let set_later = later.iter().any(|call| read(call).is_some());
        (!set_later).then(|| earlier.iter().rev().find_map(read))
    };
    let fresh = Provisioned::default();
    match canceled {
        // The workspace the call was to make or bind is not the order's.
        Call::Create(_)
        | Call::CreateForExistingUser(_)
        | Call::ClaimWorkspace { .. }
        | Call::ReuseWorkspace { .. } => {
            if matches!(
                state.workspace,
                Workspace::Creating | Workspace::Claiming(_) | Workspace::Reusing(_)
            ) {
                state.workspace = Workspace::None;
            }
        }
        Call::ChangePlan { .. } => {
            if let Some(previous) = setting(plan) {
                state.plan = previous.and_then(Setting::into_plan).or(fresh.plan);
            }
            if let Some(previous) = setting(auto_renew) {
                state.auto_renew = previous.map_or(fresh.auto_renew, |setting| setting.is_on());
            }
        }
        Call::EnableAutoRenew | Call::DisableAutoRenew => {
            if let Some(previous) = setting(auto_renew) {
                state.auto_renew = previous.map_or(fresh.auto_renew, |setting| setting.is_on());
            }
        }
        Call::Pause | Call::Active => {
            if let Some(previous) = setting(paused) {
                state.paused = previous.map_or(fresh.paused, |setting| setting.is_on());
            }
        }
        Call::Delete => state.deleted = false,
        // None of these is part of the provisioned state.
        Call::InstallTemplate { .. }
        | Call::UpdateExtraBillingInformation { .. }
        | Call::InviteMember { .. }
        | Call::RemoveMember { .. } => {}
        Call::AddAddon { addon, qty } => {
            let units = state.addons.entry(addon.clone()).or_default();
            *units = units.saturating_sub(*qty);
            if *units == 0 {
                state.addons.remove(addon);
            }
        }
        Call::RemoveAddon { addon, qty } => {
            let units = state.addons.entry(addon.clone()).or_default();
            *units = units.saturating_add(*qty);
        }
        Call::TopupPoints { points, .. } => {
            state.points_granted = (state.points_granted - points).max(0);
        }
        Call::DeductPoints { points, .. } => {
            state.points_deducted = (state.points_deducted - points).max(0);
        }
    }
    state
}

/// A value a call sets outright.
enum Setting {
    Plan(String),
    On(bool),
}

impl Setting {
    fn into_plan(self) -> Option<String> {
        match self {
            Setting::Plan(plan) => Some(plan),
            Setting::On(_) => None,
        }
    }

    fn is_on(&self) -> bool {
        matches!(self, Setting::On(true))
    }
}

fn plan(call: &Call) -> Option<Setting> {
    match call {
        Call::ChangePlan { plan, .. } => Some(Setting::Plan(plan.clone())),
        _ => None,
    }
}

fn auto_renew(call: &Call) -> Option<Setting> {
    match call {
        Call::ChangePlan { auto_renew, .. } => Some(Setting::On(*auto_renew)),
        Call::EnableAutoRenew => Some(Setting::On(true)),
        Call::DisableAutoRenew => Some(Setting::On(false)),
        _ => None,
    }
}

fn paused(call: &Call) -> Option<Setting> {
    match call {
        Call::Pause => Some(Setting::On(true)),
        Call::Active => Some(Setting::On(false)),
        _ => None,
    }
}

/// A line for the order's notes: what was skipped, in the call's own terms.
pub fn note(call_id: i64, call: &Call) -> String {
    let body = call.body();
    let what = if body.is_null() {
        call.kind().to_string()
    } else {
        format!("{} {body}", call.kind())
    };
    format!(
        "call {call_id} ({what}) was canceled by an operator: UChat never received it, \
         and the order's provisioned state no longer counts it"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::partner::NewWorkspace;

    fn create() -> Call {
        Call::Create(NewWorkspace {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            team_name: "Ada".into(),
            require_email_verification: false,
            template_ns: None,
            trial_days: None,
            password: None,
        })
    }

    fn change_plan(plan: &str) -> Call {
        Call::ChangePlan {
            plan: plan.into(),
            auto_renew: true,
        }
    }

    /// What a sale of Business with two bots and 500 points provisions.
    fn sold() -> (Provisioned, Vec<Call>) {
        let calls = vec![
            create(),
            change_plan("business"),
            Call::AddAddon {
                addon: "bot".into(),
                qty: 2,
            },
            Call::TopupPoints {
                points: 500,
                note: "sale".into(),
            },
        ];
        let state = Provisioned {
            workspace: Workspace::Creating,
            plan: Some("business".into()),
            addons: BTreeMap::from([("bot".into(), 2)]),
            points_granted: 500,
            auto_renew: true,
            ..Provisioned::default()
        };
        (state, calls)
    }

    #[test]
    fn counts_lose_what_the_call_would_have_added() {
        let (state, calls) = sold();
        let without_bots = without_call(&state, &calls, 2);
        assert_eq!(without_bots.addons, BTreeMap::new());
        assert_eq!(without_bots.plan, state.plan);
        let without_points = without_call(&state, &calls, 3);
        assert_eq!(without_points.points_granted, 0);
        assert_eq!(without_points.addons, state.addons);
    }

    #[test]
    fn a_canceled_create_leaves_no_workspace() {
        let (state, calls) = sold();
        assert_eq!(without_call(&state, &calls, 0).workspace, Workspace::None);
        let known = Provisioned {
            workspace: Workspace::Known(7),
            ..state
        };
        assert_eq!(
            without_call(&known, &calls, 0).workspace,
            Workspace::Known(7)
        );
    }

    #[test]
    fn a_canceled_claim_or_reuse_leaves_no_workspace() {
        let (state, mut calls) = sold();
        for (bound, binding) in [
            (
                Workspace::Claiming(42),
                Call::ClaimWorkspace {
                    workspace_id: 42,
                    email: "ann@example.com".into(),
                },
            ),
            (
                Workspace::Reusing(42),
                Call::ReuseWorkspace {
                    workspace_id: 42,
                    create: NewWorkspace {
                        name: "Ann".into(),
                        email: "ann@example.com".into(),
                        team_name: "Ann".into(),
                        require_email_verification: false,
                        template_ns: None,
                        trial_days: None,
                        password: None,
                    },
                },
            ),
        ] {
            calls[0] = binding;
            let state = Provisioned {
                workspace: bound,
                ..state.clone()
            };
            assert_eq!(without_call(&state, &calls, 0).workspace, Workspace::None);
        }
    }

    #[test]
    fn a_setting_goes_back_to_what_the_calls_before_set() {
        let (mut state, mut calls) = sold();
        calls.push(change_plan("business_plus"));
        calls.push(Call::Pause);
        calls.push(Call::DisableAutoRenew);
        state.plan = Some("business_plus".into());
        state.paused = true;
        state.auto_renew = false;

        let upgrade_canceled = without_call(&state, &calls, 4);
        assert_eq!(upgrade_canceled.plan.as_deref(), Some("business"));
        assert!(!upgrade_canceled.auto_renew, "a later call set it");

        let first_plan_canceled = without_call(&state, &calls, 1);
        assert_eq!(
            first_plan_canceled.plan.as_deref(),
            Some("business_plus"),
            "a later change-plan decides the plan still"
        );

        assert!(!without_call(&state, &calls, 5).paused);
        assert!(without_call(&state, &calls, 6).auto_renew);
        let only_plan = without_call(&state, &calls[..2], 1);
        assert_eq!(only_plan.plan, None);
    }

    #[test]
    fn a_canceled_delete_leaves_the_workspace_standing() {
        let (mut state, mut calls) = sold();
        calls.push(Call::Delete);
        state.deleted = true;
        assert!(!without_call(&state, &calls, 4).deleted);
    }

    #[test]
    fn the_note_names_the_call_and_what_it_carried() {
        let call = Call::AddAddon {
            addon: "bot".into(),
            qty: 2,
        };
        let line = note(12, &call);
        assert!(
            line.starts_with(r#"call 12 (add-addon {"addon":"bot","qty":2}) was canceled"#),
            "{line}"
        );
        assert!(note(3, &Call::Pause).starts_with("call 3 (pause) was canceled"));
    }
}
