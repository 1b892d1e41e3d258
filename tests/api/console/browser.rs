//! An operator's round in headless Chromium: sign in, find an order by email, read its
//! timeline, retry its dead call and watch it succeed against the sandbox, retry the other
//! dead calls in bulk, and find the console closed again after signing out. Each page is
//! kept as a screenshot in `target/console-screenshots/`.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use super::*;
use crate::common::browser::Browser;

const SCREENSHOTS: &str = "console-screenshots";

async fn path_of(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_owned()
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Clicks what `css` finds and waits until the page it leads to has replaced this one.
async fn follow(client: &Client, css: &str) {
    let page = client.find(Locator::Css("html")).await.unwrap();
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while page.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "clicking {css} led nowhere");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_operator_finds_an_order_and_retries_its_dead_call_in_the_browser() {
    let (app, sandbox) = app_with_refusing_partner().await;
    app.expect_dead_calls();
    let ada = sale_of(&app, &Buyer::story(), "evt_ada").await;
    let bob = sale_of(&app, &Buyer::numbered(1), "evt_bob").await;
    let [call] = calls_of(&app, ada, "dead").await[..] else {
        panic!("one dead call expected")
    };
    let browser = Browser::start().await;
    let c = &browser.client;
    let url = |path: &str| format!("{}{path}", app.address);

    // No session: the console leads to the sign-in form.
    c.goto(&url("/console/orders")).await.unwrap();
    assert_eq!(path_of(c).await, "/console/sign-in");
    browser.screenshot(SCREENSHOTS, "sign-in").await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    follow(c, "form.sign-in button").await;
    assert_eq!(path_of(c).await, "/console");
    assert!(text_of(c, "main").await.contains("Dead calls\n2"));
    browser.screenshot(SCREENSHOTS, "overview").await;

    // Find Ada's order by her email.
    follow(c, "nav a[href='/console/orders']").await;
    c.find(Locator::Css("#q"))
        .await
        .unwrap()
        .send_keys("ada@example.com")
        .await
        .unwrap();
    follow(c, "form.search button").await;
    let rows = c.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].text().await.unwrap().contains("needs attention"));
    browser.screenshot(SCREENSHOTS, "orders").await;

    // Its timeline: the events, and the call that died on a 422.
    follow(c, &format!("a[href='/console/orders/{ada}']")).await;
    assert_eq!(path_of(c).await, format!("/console/orders/{ada}"));
    let timeline = text_of(c, ".timeline").await;
    assert!(
        timeline.contains("checkout.session.completed"),
        "{timeline}"
    );
    assert!(timeline.contains("422"), "{timeline}");
    let call_entry = format!("#call-{call}");
    assert_eq!(text_of(c, &format!("{call_entry} .badge")).await, "dead");
    browser.screenshot(SCREENSHOTS, "order").await;

    // A form whose CSRF token was tampered with is refused, and changes nothing.
    c.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(f => f.value = 'forged')",
        vec![],
    )
    .await
    .unwrap();
    follow(c, &format!("{call_entry} form[action$='/retry'] button")).await;
    assert!(text_of(c, "main")
        .await
        .contains("did not come from the console"));
    assert_eq!(
        c.title().await.unwrap(),
        "Forbidden · uchat-billing console"
    );
    browser.screenshot(SCREENSHOTS, "refused").await;
    assert_eq!(calls_of(&app, ada, "dead").await, [call]);

    // The partner recovers; the operator retries, and the call succeeds.
    sandbox.set_faults(Faults::default());
    c.goto(&url(&format!("/console/orders/{ada}")))
        .await
        .unwrap();
    follow(c, &format!("{call_entry} form[action$='/retry'] button")).await;
    assert_eq!(path_of(c).await, format!("/console/orders/{ada}"));
    assert_eq!(text_of(c, &format!("{call_entry} .badge")).await, "pending");
    app.deliver_all().await;
    c.refresh().await.unwrap();
    assert_eq!(
        text_of(c, &format!("{call_entry} .badge")).await,
        "succeeded"
    );
    assert!(text_of(c, ".facts").await.contains("active"));
    browser.screenshot(SCREENSHOTS, "order-retried").await;
    // From the top, tall enough for the timeline: the README shows this one.
    c.set_window_size(1280, 1400).await.unwrap();
    c.goto(&url(&format!("/console/orders/{ada}")))
        .await
        .unwrap();
    browser.screenshot(SCREENSHOTS, "order-whole").await;
    c.set_window_size(1280, 900).await.unwrap();

    // Bob's dead call, retried from the list of dead calls after the confirmation.
    follow(c, "nav a[href='/console/calls']").await;
    assert_eq!(c.find_all(Locator::Css("tbody tr")).await.unwrap().len(), 1);
    browser.screenshot(SCREENSHOTS, "calls").await;
    follow(c, "form button.primary").await;
    assert_eq!(path_of(c).await, "/console/calls/retry");
    browser
        .screenshot(SCREENSHOTS, "calls-retry-confirmation")
        .await;
    assert_eq!(calls_of(&app, bob, "dead").await.len(), 1);
    follow(c, "form button.primary").await;
    assert!(text_of(c, "main").await.contains("Pending again: 1 call."));
    browser.screenshot(SCREENSHOTS, "calls-retried").await;
    app.deliver_all().await;
    assert_eq!(app.order_status(Some(bob)).await.0, "active");

    // On a phone's screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&url(&format!("/console/orders/{ada}")))
        .await
        .unwrap();
    browser.screenshot(SCREENSHOTS, "order-phone").await;

    // Signed out, the console is closed again.
    follow(c, "form.sign-out button").await;
    assert_eq!(path_of(c).await, "/console/sign-in");
    c.goto(&url("/console")).await.unwrap();
    assert_eq!(path_of(c).await, "/console/sign-in");
    browser.close().await;
}
