//! The partner's credit balance, read from UChat into a gauge of `/metrics` while the
//! service runs.

use std::time::{Duration, Instant};

use crate::common;

use common::*;
use uchat_billing::sandbox::Faults;

async fn credit_shown(app: &TestApp) -> Option<f64> {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("uchat_billing_partner_credit "))
        .map(|value| value.parse().unwrap())
}

async fn wait_for_credit(app: &TestApp, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while credit_shown(app).await != Some(expected) {
        assert!(
            Instant::now() < deadline,
            "the gauge never showed {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_partner_credit_is_polled_into_its_gauge() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(move |config| {
        config.delivery = Some(delivery);
        config.credit_poll = Duration::from_millis(100);
    })
    .await;

    wait_for_credit(&app, 1_000_000.0).await;
    sandbox.set_credit(42.5);
    wait_for_credit(&app, 42.5).await;
    let polls = sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/partner/credit-balance")
        .count();
    assert!(polls >= 2, "{polls}");
}

#[tokio::test]
async fn no_gauge_when_polling_is_off() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(move |config| config.delivery = Some(delivery)).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(credit_shown(&app).await, None);
    assert!(sandbox.requests().is_empty());
}
