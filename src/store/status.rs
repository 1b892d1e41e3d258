//! The buyer's view of their order: from what the service knows of a Checkout session to
//! a state a thank-you page can show, with no internals.

use serde::Serialize;

use crate::db::store::{SessionOrder, SessionProgress};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Stripe has not told us of the payment yet.
    Pending,
    Paid,
    Provisioning,
    Ready,
    /// Something needs a person; the buyer need not do anything.
    Delayed,
}

impl State {
    /// Nothing will change without a new purchase or an operator.
    pub fn is_settled(self) -> bool {
        matches!(self, State::Ready | State::Delayed)
    }

    fn message(self) -> &'static str {
        match self {
            State::Pending => "Waiting for the payment to be confirmed.",
            State::Paid => "Payment received.",
            State::Provisioning => "Setting up your workspace.",
            State::Ready => "Your workspace is ready.",
            State::Delayed => {
                "Your payment is received; setting up your workspace is taking longer than \
                 usual. We are on it and will email you."
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuyerStatus {
    pub state: State,
    pub message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
}

pub fn state(progress: &SessionProgress) -> State {
    match progress {
        SessionProgress::Unknown => State::Pending,
        SessionProgress::Received => State::Paid,
        SessionProgress::Ordered(order) => order_state(order),
        SessionProgress::EventFailed => State::Delayed,
    }
}

fn order_state(order: &SessionOrder) -> State {
    if order.needs_attention || order.blocked || order.status == "needs_attention" {
        State::Delayed
    } else if order.workspace_id.is_some() && !order.unfinished {
        State::Ready
    } else {
        State::Provisioning
    }
}

pub fn buyer_status(progress: &SessionProgress, login_url: &str) -> BuyerStatus {
    let state = state(progress);
    let workspace_id = match progress {
        SessionProgress::Ordered(order) if state == State::Ready => order.workspace_id,
        _ => None,
    };
    BuyerStatus {
        state,
        message: state.message(),
        workspace_id,
        login_url: workspace_id.map(|_| login_url.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(
        status: &str,
        workspace: Option<i64>,
        attention: bool,
        blocked: bool,
        unfinished: bool,
    ) -> SessionProgress {
        SessionProgress::Ordered(SessionOrder {
            status: status.into(),
            needs_attention: attention,
            workspace_id: workspace,
            blocked,
            unfinished,
        })
    }

    #[test]
    fn states_follow_the_order_and_its_calls() {
        let cases = [
            (SessionProgress::Unknown, State::Pending),
            (SessionProgress::Received, State::Paid),
            (
                order("pending", None, false, false, true),
                State::Provisioning,
            ),
            (
                order("active", Some(7), false, false, true),
                State::Provisioning,
            ),
            (order("active", Some(7), false, false, false), State::Ready),
            (
                order("needs_attention", None, true, false, false),
                State::Delayed,
            ),
            (order("active", Some(7), false, true, false), State::Delayed),
            (SessionProgress::EventFailed, State::Delayed),
        ];
        for (progress, expected) in cases {
            assert_eq!(state(&progress), expected, "{progress:?}");
        }
    }

    #[test]
    fn only_a_ready_order_shows_its_workspace_and_the_login() {
        let ready = buyer_status(
            &order("active", Some(7), false, false, false),
            "https://app/login",
        );
        assert_eq!(
            (ready.workspace_id, ready.login_url.as_deref()),
            (Some(7), Some("https://app/login"))
        );
        let delayed = buyer_status(
            &order("active", Some(7), false, true, false),
            "https://app/login",
        );
        assert_eq!((delayed.workspace_id, delayed.login_url), (None, None));
    }
}
