//! `uchat-billing demo`: a run of its own, whatever else runs or was left behind.

use std::process::{Child, Output, Stdio};

use sqlx::{Connection, PgConnection};

use crate::cli::command;
use crate::common;

/// The header's line about the storefront's pages.
fn storefront_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|line| line.trim_start().starts_with("storefront"))
        .unwrap_or_else(|| panic!("no storefront line in:\n{stdout}"))
}

/// A demo on free ports against the Postgres server of `database_url`.
fn start_demo(database_url: &str, env: &[(&str, &str)]) -> Child {
    command()
        .args([
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--sandbox-bind",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", database_url)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The story's four steps and the sandbox state they lead to; the run's database name.
fn assert_the_story_ran(output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for step in [
        "1. ",
        "2. ",
        "3. ",
        "4. ",
        "-> create",
        "-> topup-points",
        "-> disable-auto-renew",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    let state = stdout
        .split("Final sandbox state:")
        .nth(1)
        .expect("the final state is printed");
    let state: serde_json::Value = serde_json::Deserializer::from_str(state)
        .into_iter()
        .next()
        .expect("a JSON state follows")
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let workspaces = state["workspaces"].as_array().unwrap();
    assert_eq!(workspaces.len(), 1, "{state}");
    let workspace = &workspaces[0];
    assert_eq!(workspace["owner_email"], "ada@example.com");
    assert_eq!(workspace["plan"], "business_plus");
    assert_eq!(workspace["points"], 1000.0);
    assert_eq!(workspace["is_paused"], true);
    assert_eq!(workspace["auto_renew"], false);
    // Numbered from a random thousand, not from the sandbox's fixed first id.
    let id = workspace["id"].as_u64().unwrap();
    assert!(id >= 10_000 && id.is_multiple_of(1000), "workspace id {id}");

    let export = stdout
        .lines()
        .find(|line| {
            line.trim_start()
                .starts_with("export BASE=http://127.0.0.1:")
        })
        .expect("an export line for the README's examples");
    let token = export
        .split("ADMIN_TOKEN=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the export sets ADMIN_TOKEN");
    assert!(token.len() >= 32, "admin token {token:?}");
    assert!(export.contains("STRIPE_WEBHOOK_SECRET=whsec_"), "{export}");

    stdout
        .split_whitespace()
        .find(|word| word.starts_with("uchat_billing_demo_"))
        .expect("the run names its database")
        .to_owned()
}

async fn database_exists(server: &common::TestDatabase, name: &str) -> bool {
    let mut conn = PgConnection::connect(&server.url).await.unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn without_a_stripe_key_the_demo_says_where_the_storefront_will_be() {
    let server = common::fresh_database().await;
    let output = start_demo(&server.url, &[]).wait_with_output().unwrap();
    assert_the_story_ran(&output);
    let (stdout, _) = text(&output);
    let line = storefront_line(&stdout);
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    assert!(
        line.contains("/store/ once STRIPE_API_KEY (a Stripe test-mode key) is set"),
        "{line}"
    );
    assert!(
        stdout.contains("/console  (sign in with the admin token)"),
        "the demo names its console: {stdout}"
    );
}

#[tokio::test]
async fn with_a_test_mode_key_the_demo_serves_the_storefront() {
    let server = common::fresh_database().await;
    // Stripe knows none of the story's objects: the story applies its events' snapshots.
    let stripe = wiremock::MockServer::start().await;
    let env = [
        ("STRIPE_API_KEY", "rk_test_demo"),
        ("STRIPE_API_BASE", &stripe.uri()),
    ];
    let output = start_demo(&server.url, &env).wait_with_output().unwrap();
    assert_the_story_ran(&output);
    let (stdout, _) = text(&output);
    let line = storefront_line(&stdout);
    assert!(
        line.contains("/store/  (prices and Checkout in STRIPE_API_KEY's test mode)"),
        "{line}"
    );

    let live = start_demo(&server.url, &[("STRIPE_API_KEY", "sk_live_oops")])
        .wait_with_output()
        .unwrap();
    let (stdout, stderr) = text(&live);
    assert_eq!(live.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("test-mode STRIPE_API_KEY"), "{stderr}");
    assert!(!stderr.contains("sk_live_oops"), "{stderr}");
}

#[tokio::test]
async fn two_demos_at_once_each_run_their_story_and_drop_their_database() {
    let server = common::fresh_database().await;
    let first = start_demo(&server.url, &[]);
    let second = start_demo(&server.url, &[]);
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    let names = [assert_the_story_ran(&first), assert_the_story_ran(&second)];
    assert_ne!(names[0], names[1]);
    for name in &names {
        assert!(!database_exists(&server, name).await, "{name} left behind");
    }
}

#[tokio::test]
async fn a_dead_call_left_in_the_database_does_not_disturb_a_demo() {
    let database = common::fresh_database().await;
    let status = command()
        .arg("migrate")
        .env("DATABASE_URL", &database.url)
        .status()
        .unwrap();
    assert!(status.success());
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    sqlx::query(
        "WITH o AS (INSERT INTO orders (status) VALUES ('needs_attention') RETURNING id)
         INSERT INTO partner_calls (order_id, position, kind, body, status, attempts, last_error)
         SELECT id, 1, 'create', '{}', 'dead', 12, 'left over' FROM o",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let output = start_demo(&database.url, &[]).wait_with_output().unwrap();
    assert_the_story_ran(&output);
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM partner_calls WHERE status = 'dead'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 1, "the demo touches nothing outside its own database");
}

#[tokio::test]
async fn a_stuck_call_is_printed_with_the_commands_that_unstick_it() {
    let server = common::fresh_database().await;
    // Credit for Business (10) but not for Business Plus (20): the upgrade is held.
    let output = start_demo(&server.url, &[("SANDBOX_CREDIT", "15")])
        .wait_with_output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("--keep-running"), "{stderr}");
    let stuck = stdout
        .split("these partner calls did not finish.")
        .nth(1)
        .unwrap_or_else(|| panic!("no stuck calls printed:\n{stdout}"));
    assert!(
        stuck.contains("change-plan") && stuck.contains("[held: no_enough_credit"),
        "{stuck}"
    );
    let retry = stuck
        .lines()
        .find(|line| line.contains("/admin/calls/") && line.ends_with("/retry"))
        .unwrap_or_else(|| panic!("no retry command:\n{stuck}"));
    assert!(
        retry.contains("curl -s -X POST -H 'Authorization: Bearer "),
        "{retry}"
    );
    assert!(stuck.contains("/cancel"), "{stuck}");
    assert!(!stdout.contains("4. "), "the story stops at the stuck step");
    let name = stdout
        .split_whitespace()
        .find(|word| word.starts_with("uchat_billing_demo_"))
        .unwrap();
    assert!(!database_exists(&server, name).await, "{name} left behind");
}
