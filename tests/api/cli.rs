//! The binary as an operator meets it: configuration errors, migrate, serve and shutdown.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_uchat-billing");

fn command() -> Command {
    let mut command = Command::new(BIN);
    // A clean environment: nothing from the developer's shell or a .env leaks in.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    command
}

#[test]
fn help_lists_the_commands_and_the_environment() {
    let output = command().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "serve",
        "migrate",
        "DATABASE_URL",
        "BIND_ADDR",
        "STRIPE_WEBHOOK_SECRET",
        "LOG_FORMAT",
        "RUST_LOG",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
}

#[test]
fn bad_configuration_exits_2_naming_every_problem() {
    let output = command()
        .arg("serve")
        .env("STRIPE_WEBHOOK_SECRET", "sk_live_not_a_webhook_secret")
        .env("BIND_ADDR", "nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("BIND_ADDR"), "{stderr}");
    assert!(stderr.contains("STRIPE_WEBHOOK_SECRET"), "{stderr}");
    assert!(
        !stderr.contains("sk_live_not_a_webhook_secret"),
        "secret echoed: {stderr}"
    );
}

#[test]
fn a_short_admin_token_is_refused_at_start_with_every_other_problem() {
    let output = command()
        .arg("serve")
        .env("STRIPE_WEBHOOK_SECRET", "whsec_cli_test")
        .env("CATALOG_PATH", common::fixture_path("catalog.toml"))
        .env("ADMIN_TOKEN", "a-short-token")
        .env("LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let problems: Vec<&str> = stderr.lines().collect();
    assert_eq!(problems.len(), 2, "{stderr}");
    assert!(
        problems.contains(&"configuration error: ADMIN_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)"),
        "{stderr}"
    );
    assert!(!stderr.contains("a-short-token"), "token echoed: {stderr}");
}

#[test]
fn every_command_reports_every_problem_of_its_environment_at_once() {
    reports_each_once(
        "serve",
        &[("LOG_FORMAT", "xml"), ("BIND_ADDR", "nowhere")],
        &[
            "LOG_FORMAT",
            "BIND_ADDR",
            "STRIPE_WEBHOOK_SECRET",
            "CATALOG_PATH",
        ],
    );
    reports_each_once(
        "worker",
        &[("UCHAT_TIMEOUT_SECS", "0"), ("RETRY_CAP_SECS", "soon")],
        &["UCHAT_API_TOKEN", "UCHAT_TIMEOUT_SECS", "RETRY_CAP_SECS"],
    );
    reports_each_once(
        "sandbox",
        &[("SANDBOX_FAIL_RATE", "2"), ("SANDBOX_CREDIT", "-1")],
        &["SANDBOX_CREDIT", "SANDBOX_FAIL_RATE"],
    );
}

/// `subcommand` run with `env` exits 2, with one problem line naming each of `named`.
fn reports_each_once(subcommand: &str, env: &[(&str, &str)], named: &[&str]) {
    let output = command()
        .arg(subcommand)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{subcommand}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("configuration error: "))
        .collect();
    for name in named {
        assert_eq!(
            problems.iter().filter(|line| line.contains(name)).count(),
            1,
            "{subcommand}: one line names {name}:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn migrate_creates_the_database_and_serve_stops_cleanly_on_sigterm() {
    let database = common::fresh_database().await;
    // A name that does not exist yet, so the service must create it; the guard drops it
    // even if the test fails.
    let created = common::TestDatabase {
        url: database
            .url
            .replace(&database.name, &format!("{}_created", database.name)),
        name: format!("{}_created", database.name),
    };
    let url = created.url.clone();
    let status = command()
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .status()
        .unwrap();
    assert!(status.success());

    let mut child = command()
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("STRIPE_WEBHOOK_SECRET", "whsec_cli_test")
        .env("CATALOG_PATH", common::fixture_path("catalog.toml"))
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .take_while(|_| Instant::now() < deadline)
        .find(|line| line.contains("listening"));
    assert!(
        listening.is_some(),
        "the service never said it was listening"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn healthcheck_exits_0_while_the_service_is_ready_and_1_otherwise() {
    let app = common::spawn_app().await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    // Off the test's runtime, which serves the apps meanwhile.
    let healthcheck = |bind: String| {
        tokio::task::spawn_blocking(move || {
            let output = command()
                .arg("healthcheck")
                .env("BIND_ADDR", bind)
                .output()
                .unwrap();
            (
                output.status.code(),
                String::from_utf8(output.stderr).unwrap(),
            )
        })
    };
    // As in the image: listening on every address, asked on loopback.
    let ready = healthcheck(format!("0.0.0.0:{port}")).await.unwrap();
    assert_eq!(ready, (Some(0), String::new()));

    let nobody = common::service::free_port();
    let (code, stderr) = healthcheck(format!("127.0.0.1:{nobody}")).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("unhealthy: "), "{stderr}");

    let down = common::spawn_app_without_database().await;
    let (code, stderr) = healthcheck(down.address.replace("http://", ""))
        .await
        .unwrap();
    // Not ready: 503 once the pool gives up on the database, or no answer within 3 s.
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("unhealthy: "), "{stderr}");
}

#[test]
fn check_catalog_accepts_the_example_and_names_the_line_of_each_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/catalog.example.toml");
    let output = command().args(["check-catalog", example]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let bad = std::env::temp_dir().join(format!("catalog-{}.toml", std::process::id()));
    std::fs::write(
        &bad,
        "[policy]\non_dispute = \"shrug\"\n\n[[price]]\nstripe_price = \"price_a\"\nplan = \"business\"\npoints = 5\n",
    )
    .unwrap();
    let output = command().arg("check-catalog").arg(&bad).output().unwrap();
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(
        stderr.contains("line 4") || stderr.contains("line 5"),
        "{stderr}"
    );
}

#[test]
fn plan_prints_the_calls_of_events_from_an_empty_start() {
    let dir = std::env::temp_dir().join(format!("plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = [
        ("1.json", common::story::subscription_checkout("evt_1", 100)),
        (
            "2.json",
            common::story::subscription(
                "evt_2",
                "customer.subscription.created",
                101,
                &common::story::Sub::active(&[("price_business", 1)]),
            ),
        ),
    ];
    let mut command = command();
    command
        .arg("plan")
        .arg("--catalog")
        .arg(common::fixture_path("catalog.toml"));
    // Given newest first: the command applies them in Stripe's order all the same.
    for (name, body) in events.iter().rev() {
        std::fs::write(dir.join(name), body).unwrap();
        command.arg(dir.join(name));
    }
    let output = command.output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let kinds: Vec<Vec<&str>> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            step["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["kind"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(kinds, vec![vec![], vec!["create", "change-plan"]]);
    assert_eq!(
        steps[1]["calls"][1]["body"],
        serde_json::json!({"plan": "business", "auto_renew": "yes"})
    );
}

#[tokio::test]
async fn the_demo_runs_the_story_to_the_expected_sandbox_state() {
    let database = common::fresh_database().await;
    let output = command()
        .args([
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--sandbox-bind",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", &database.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
    let state: serde_json::Value = serde_json::from_str(state.trim()).unwrap();
    let workspaces = state["workspaces"].as_array().unwrap();
    assert_eq!(workspaces.len(), 1);
    let workspace = &workspaces[0];
    assert_eq!(workspace["plan"], "business_plus");
    assert_eq!(workspace["points"], 1000.0);
    assert_eq!(workspace["is_paused"], true);
    assert_eq!(workspace["auto_renew"], false);
}

#[test]
fn the_demo_names_the_command_that_starts_postgres_when_it_is_down() {
    let output = command()
        .args([
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--sandbox-bind",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("Postgres is not reachable"), "{stderr}");
    assert!(stderr.contains("docker compose up -d postgres"), "{stderr}");
    assert!(stderr.contains("pg_ctlcluster"), "{stderr}");
}
