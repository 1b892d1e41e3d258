//! `deploy/prometheus/alerts.yml` alerts on metrics the service exports: a renamed metric
//! would otherwise leave an alert that can never fire.

use crate::common::*;

/// Gauges that the alerts name and that other work in progress adds (the partner credit,
/// the orders in drift). Empty this once they are exported: the test then checks them too.
const EXPORTED_ELSEWHERE: &[&str] = &[
    "uchat_billing_partner_credit",
    "uchat_billing_orders_in_drift",
];

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
    let app = spawn_app().await;
    let metrics = app
        .admin_request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
        if EXPORTED_ELSEWHERE.contains(&name) {
            continue;
        }
        assert!(
            exported.contains(&name),
            "alerts.yml names {name}, which /metrics does not export:\n{metrics}"
        );
    }
}
