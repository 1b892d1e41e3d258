//! The whole pipeline inside `serve`: signed webhooks in, the sandbox provisioned.

use crate::common;

use std::time::Duration;

use common::story::{self, Sub};
use common::*;
use uchat_billing::sandbox::Faults;

#[tokio::test]
async fn a_subscription_story_provisions_the_sandbox_end_to_end() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(move |config| {
        config.delivery = Some(delivery);
        config.background_work = true;
    })
    .await;

    let plus_bots = Sub::active(&[("price_business_plus", 1), ("price_bot", 2)]);
    for event in [
        story::subscription_checkout("evt_f1", 100),
        story::subscription(
            "evt_f2",
            "customer.subscription.created",
            101,
            &Sub::active(&[("price_business", 1)]),
        ),
        story::subscription("evt_f3", "customer.subscription.updated", 200, &plus_bots),
        story::subscription(
            "evt_f4",
            "customer.subscription.deleted",
            300,
            &plus_bots.clone().with_status("canceled"),
        ),
    ] {
        assert_eq!(app.post_stripe_event(&event).await.status(), 200);
    }

    wait_until_all_delivered(&app.db, Duration::from_secs(30)).await;

    let workspaces = sandbox.workspaces();
    assert_eq!(workspaces.len(), 1);
    let workspace = &workspaces[0];
    assert_eq!(workspace.owner_email, story::EMAIL);
    assert_eq!(workspace.plan, "business_plus");
    assert_eq!(workspace.addons.get("bot"), Some(&2));
    assert!(workspace.is_paused);
    assert!(!workspace.auto_renew);

    // The tries are counted in /metrics, by kind and outcome.
    let metrics = app.metrics().await;
    for line in [
        r#"uchat_billing_partner_calls_total{kind="create",outcome="succeeded"} 1"#,
        r#"uchat_billing_partner_calls_total{kind="pause",outcome="succeeded"} 1"#,
        r#"uchat_billing_webhooks_total{type="customer.subscription.created",outcome="stored"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}
