//! `deploy/prometheus/alerts.yml` alerts on metrics the service exports: a renamed metric
//! would otherwise leave an alert that can never fire.

use std::time::{Duration, Instant};

use crate::common::*;
use uchat_billing::sandbox::Faults;

/// Every `uchat_billing_...` name in `text`.
fn metric_names(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = text
        .match_indices("uchat_billing_")
        .map(|(start, _)| {
            let rest = &text[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[tokio::test]
async fn every_metric_the_alerts_name_is_exported() {
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml"),
    )
    .unwrap();
    // A partner to read the credit from: its gauge is absent until the first read.
    let (base, _sandbox) = spawn_sandbox(Faults::default()).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(move |config| {
        config.delivery = Some(delivery);
        config.credit_poll = Duration::from_millis(50);
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = app.metrics().await;
        if metrics.contains("\nuchat_billing_partner_credit ") {
            break metrics;
        }
        assert!(Instant::now() < deadline, "the credit was never read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The families, as `# TYPE` names them, and each series' name.
    let exported: Vec<&str> = metrics
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(family) => family.split(' ').next(),
            None => line.split(['{', ' ']).next(),
        })
        .collect();
    let alerted = metric_names(&rules);
    assert!(alerted.len() >= 6, "{alerted:?}");
    for name in alerted {
        assert!(
            exported.contains(&name),
            "alerts.yml names {name}, which /metrics does not export:\n{metrics}"
        );
    }
}
