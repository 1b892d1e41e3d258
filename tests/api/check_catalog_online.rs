//! `check-catalog --online` against the UChat sandbox: every plan, add-on and template id
//! of the catalog looked up in the partner's lists.

use std::process::Output;

use crate::cli::command;
use crate::common::{spawn_sandbox, PARTNER_TOKEN};
use uchat_billing::sandbox::Faults;

const KNOWN: &str = r#"
[workspace]
template_ns = "tpl_support"

[[price]]
stripe_price = "price_business"
plan = "business"
quantity_addon = "member"
template = "tpl_restaurant"

[[price]]
stripe_price = "price_bot"
addon = "bot"
"#;

/// Runs `check-catalog --online` on `catalog` against the partner at `base`.
async fn check_online(catalog: &str, base: &str, token: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("catalog-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("catalog.toml");
    std::fs::write(&path, catalog).unwrap();
    let (base, token) = (base.to_owned(), token.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        command()
            .args(["check-catalog", "--online"])
            .arg(&path)
            .env("UCHAT_API_BASE", base)
            .env("UCHAT_API_TOKEN", token)
            .env("UCHAT_TIMEOUT_SECS", "5")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn every_id_at_uchat_passes() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;

    let output = check_online(KNOWN, &base, PARTNER_TOKEN).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(
            "ok, 2 prices; every id is in your UChat account (6 plans, 8 add-ons, 3 templates)"
        ),
        "{stdout}"
    );
    let read: Vec<String> = sandbox.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        read,
        ["/partner/plans", "/partner/addons", "/partner/templates"]
    );
}

#[tokio::test]
async fn each_unknown_id_is_named_with_its_line() {
    let (base, _sandbox) = spawn_sandbox(Faults::default()).await;
    let catalog = KNOWN
        .replace("\"business\"", "\"busines\"")
        .replace("\"member\"", "\"seat\"")
        .replace("tpl_restaurant", "tpl_cafe");

    let output = check_online(&catalog, &base, PARTNER_TOKEN).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].ends_with(
        "catalog.toml line 7: plan \"busines\" is not in your UChat account (GET /partner/plans \
         has: free, business, business_lite, business_plus, business_large, business_yearly)"
    ), "{stderr}");
    assert!(lines[1].contains("line 8: add-on \"seat\" is not in your UChat account"));
    assert!(lines[2].contains("line 9: template \"tpl_cafe\" is not in your UChat account"));
}

#[tokio::test]
async fn a_partner_that_cannot_be_read_exits_1_and_a_missing_token_2() {
    let (base, _sandbox) = spawn_sandbox(Faults::default()).await;

    let refused = check_online(KNOWN, &base, "wrong-token").await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr)
        .starts_with("cannot read the plans, add-ons and templates from UChat"));

    let no_token = tokio::task::spawn_blocking(|| {
        command()
            .args(["check-catalog", "--online", "nowhere.toml"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
    assert!(text(&no_token.stderr).contains("UCHAT_API_TOKEN"));
}
