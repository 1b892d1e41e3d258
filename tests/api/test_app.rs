//! The test app itself: dropping it fails a test that left work behind it did not say it
//! expects.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::json;

use crate::common::*;

/// An app whose one call went dead and whose event failed.
async fn app_with_leftovers() -> TestApp {
    let app = spawn_app().await;
    app.queue_calls(Some(7), "ada@example.com", &[("pause", json!({}))])
        .await;
    sqlx::query("UPDATE partner_calls SET status = 'dead'")
        .execute(&app.db)
        .await
        .unwrap();
    app.post_stripe_events(&[envelope(
        "evt_broken",
        "customer.subscription.updated",
        100,
        json!({"object": "subscription"}),
    )])
    .await;
    app.process_events().await;
    app
}

#[tokio::test]
async fn dropping_the_app_fails_on_what_the_test_did_not_expect_and_only_that() {
    let app = app_with_leftovers().await;
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(app)));
    let message = *dropped
        .expect_err("the app fails the test")
        .downcast::<String>()
        .unwrap();
    assert!(message.contains("dead call 1 (pause)"), "{message}");
    assert!(message.contains("failed event evt_broken"), "{message}");

    let app = app_with_leftovers().await;
    app.expect_dead_calls();
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(app)));
    let message = *dropped.unwrap_err().downcast::<String>().unwrap();
    assert!(!message.contains("dead call"), "{message}");
    assert!(message.contains("failed event evt_broken"), "{message}");

    let app = app_with_leftovers().await;
    app.expect_dead_calls();
    app.expect_failed_events();
    drop(app);
}

#[tokio::test]
async fn a_failing_test_keeps_its_own_failure_when_the_app_drops() {
    let app = app_with_leftovers().await;
    // A second panic while unwinding would abort the whole run instead.
    let failed = catch_unwind(AssertUnwindSafe(move || {
        let _app = app;
        panic!("the test's own failure");
    }));
    let message = *failed.unwrap_err().downcast::<&str>().unwrap();
    assert_eq!(message, "the test's own failure");
}
