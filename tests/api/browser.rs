//! The browser the storefront and console tests drive: Debian's headless Chromium.

use fantoccini::Locator;

use crate::common::browser::Browser;

#[tokio::test]
async fn the_browser_renders_a_page_and_keeps_a_screenshot_of_it() {
    let browser = Browser::start().await;
    browser
        .client
        .goto("data:text/html,<title>t</title><h1>Hello</h1>")
        .await
        .unwrap();
    let heading = browser.client.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Hello");
    let shot = browser.screenshot("browser-screenshots", "hello").await;
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    browser.close().await;
}
