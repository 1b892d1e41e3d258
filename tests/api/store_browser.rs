//! The example storefront pages (`examples/storefront/`, served at `/store/`) in
//! Debian's headless Chromium: the pricing page lists the prices and Buy goes to
//! Checkout; the thank-you page follows the order until the workspace is ready.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::common::browser::Browser;
use crate::common::story::{self, Buyer};
use crate::store::{spawn_store, CHECKOUT_URL, LOGIN_URL};

/// Waits up to 10 s for `check` to hold of the page.
async fn eventually<F, Fut>(client: &Client, what: &str, check: F)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check(client.clone()).await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn the_pricing_page_lists_the_prices_and_buy_goes_to_checkout() {
    let store = spawn_store(|_| {}).await;
    let browser = Browser::start().await;
    let client = &browser.client;
    client
        .goto(&format!("{}/store/", store.app.address))
        .await
        .unwrap();
    eventually(client, "the prices listed", |c| async move {
        c.find_all(Locator::Css(".price")).await.unwrap().len() == 3
    })
    .await;
    let first = text_of(client, "[data-price=price_business]").await;
    assert!(
        first.contains("Business") && first.contains("$49.00 / month"),
        "{first}"
    );
    browser.screenshot("store-screenshots", "pricing").await;

    client
        .find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("ada@example.com")
        .await
        .unwrap();
    client
        .find(Locator::Css("[data-price=price_points_1000] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(client, "the move to Checkout", |c| async move {
        c.current_url()
            .await
            .is_ok_and(|url| url.as_str() == CHECKOUT_URL)
    })
    .await;
    let posted = store.stripe.lock().unwrap().posted.clone();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].1.contains("customer_email=ada@example.com"),
        "{posted:?}"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_thank_you_page_shows_ready_with_the_login_link_once_provisioned() {
    let store = spawn_store(|_| {}).await;
    let ada = Buyer::story();
    let browser = Browser::start().await;
    let client = &browser.client;
    client
        .goto(&format!(
            "{}/store/thanks.html?session_id={}",
            store.app.address, ada.checkout_session
        ))
        .await
        .unwrap();
    eventually(client, "the pending state", |c| async move {
        text_of(&c, "#state").await == "pending"
    })
    .await;

    let sale = story::subscription_sale(&ada, "evt_a", 100, &[("price_business", 1)]);
    store.app.post_stripe_events(&sale).await;
    store.app.process_events().await;
    store.app.deliver_all().await;

    eventually(client, "the ready state", |c| async move {
        text_of(&c, "#state").await == "ready"
    })
    .await;
    let login = client.find(Locator::Css("#login")).await.unwrap();
    assert_eq!(
        login.attr("href").await.unwrap().as_deref(),
        Some(LOGIN_URL)
    );
    assert!(login.is_displayed().await.unwrap());
    browser
        .screenshot("store-screenshots", "thanks-ready")
        .await;
    browser.close().await;
}
