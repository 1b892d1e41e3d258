//! A real browser for the tests: Debian's Chromium, headless, driven over WebDriver by
//! Debian's chromedriver, with fantoccini. `.ci/run` installs both packages; nothing is
//! downloaded at run time.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use super::service::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium session. Ends the session and stops chromedriver when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session at a laptop's window size.
    pub async fn start() -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: install Debian's chromium and chromium-driver \
                 (`apt-get install chromium chromium-driver`, as .ci/run does)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile =
            std::env::temp_dir().join(format!("uchat-billing-chromium-{}", uuid::Uuid::new_v4()));
        let url = format!("http://127.0.0.1:{port}");
        wait_until_ready(&url).await;

        // The flags keep a headless run on a closed network quiet and self-contained.
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session opens");
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// Saves what the browser shows as `target/<folder>/<name>.png`.
    pub async fn screenshot(&self, folder: &str, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        let folder = target.join(folder);
        std::fs::create_dir_all(&folder).expect("the screenshot folder");
        let path = folder.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// Ends the session, so Chromium exits before chromedriver is stopped.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SIGTERM lets chromedriver take its Chromium down with it.
        let _ = Command::new("kill")
            .arg(self.driver.id().to_string())
            .status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Waits until chromedriver answers `/status` as ready.
async fn wait_until_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::Client::new();
    loop {
        let ready = client
            .get(format!("{url}/status"))
            .send()
            .await
            .ok()
            .map(|response| response.json::<serde_json::Value>());
        if let Some(status) = ready {
            if status.await.is_ok_and(|s| s["value"]["ready"] == true) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
