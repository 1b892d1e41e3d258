//! The binary as an operator meets it: configuration errors, migrate, serve and shutdown.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_uchat-billing");

/// The binary in a clean environment, run from the temporary directory.
pub fn command() -> Command {
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

    // Pretty logs, as a person gets them, but into a pipe: no colour codes then.
    let mut child = command()
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("STRIPE_WEBHOOK_SECRET", "whsec_cli_test")
        .env("CATALOG_PATH", common::fixture_path("catalog.toml"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log: Vec<String> = lines
        .by_ref()
        .map_while(Result::ok)
        .take_while(|_| Instant::now() < deadline)
        .take_while(|line| !line.contains("listening"))
        .collect();
    assert!(
        Instant::now() < deadline,
        "the service never said it was listening"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    log.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    let log = log.join("\n");
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe:\n{log}");
    assert!(!log.contains("already exists"), "{log}");
    assert_eq!(
        log.matches("event processor started").count(),
        1,
        "one line per process:\n{log}"
    );
    assert!(log.contains("stopped"), "{log}");
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
fn check_catalog_refuses_an_empty_catalog_and_warns_on_a_product_id() {
    let dir = std::env::temp_dir().join(format!("check-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = command().arg("check-catalog").arg(&path).output().unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, stderr) = check("empty.toml", "# to do\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("sells nothing"), "{stderr}");

    let (code, stderr) = check(
        "product.toml",
        "[[price]]\nstripe_price = \"prod_Q1\"\nplan = \"business\"\n",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, Some(0), "a warning is not a problem: {stderr}");
    assert!(
        stderr.starts_with("warning: ")
            && stderr.contains("line 2")
            && stderr.contains("product id"),
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

/// The example story's files, in their order.
fn example_events() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn plan_turns_the_example_story_into_its_calls() {
    let output = command()
        .arg("plan")
        .arg("--catalog")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/catalog.example.toml"))
        .args(example_events())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let steps: Vec<(u64, &str, Vec<serde_json::Value>, &str)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            let calls = step["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|call| serde_json::json!([call["kind"], call["body"]]))
                .collect();
            (
                step["order"].as_u64().unwrap(),
                step["event_type"].as_str().unwrap(),
                calls,
                step["status"].as_str().unwrap(),
            )
        })
        .collect();
    use serde_json::json;
    let grace = json!({"email": "grace@example.com", "name": "Grace Hopper",
                       "require_email_verification": "no", "team_name": "Grace Hopper"});
    let points_note = "Stripe checkout cs_test_b1TGracePoints1000";
    assert_eq!(
        steps,
        vec![
            (1, "checkout.session.completed", vec![], "pending"),
            (
                1,
                "customer.subscription.created",
                vec![
                    json!(["create", grace]),
                    json!(["change-plan", {"plan": "business", "auto_renew": "yes"}]),
                ],
                "active"
            ),
            (1, "invoice.paid", vec![], "active"),
            (
                1,
                "customer.subscription.updated",
                vec![
                    json!(["change-plan", {"plan": "business_plus", "auto_renew": "yes"}]),
                    json!(["add-addon", {"addon": "bot", "qty": 2}]),
                ],
                "active"
            ),
            (
                2,
                "checkout.session.completed",
                vec![json!(["topup-points", {"points": 1000, "note": points_note}])],
                "active"
            ),
            (
                2,
                "charge.refunded",
                vec![
                    json!(["deduct-points", {"points": 500, "note": format!("refund of {points_note}")}])
                ],
                "active"
            ),
            (
                1,
                "customer.subscription.deleted",
                vec![json!(["pause", null]), json!(["disable-auto-renew", null])],
                "canceled"
            ),
        ]
    );
}

#[test]
fn plan_names_the_file_it_cannot_read_as_an_event() {
    let not_an_event = common::samples_dir().join("invoice.payment_failed.object.json");
    let output = command()
        .arg("plan")
        .arg("--catalog")
        .arg(common::fixture_path("catalog.toml"))
        .arg(&example_events()[0])
        .arg(&not_an_event)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("{}: ", not_an_event.display())),
        "{stderr}"
    );
}

// Multi-threaded: the script runs blocking, while the app answers on other threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_script_signs_and_posts_every_event_once() {
    let app = common::spawn_app().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/post-events.sh");
    for round in 0..2 {
        let output = Command::new("bash")
            .arg(script)
            .args(example_events())
            .env("BASE", &app.address)
            .env("STRIPE_WEBHOOK_SECRET", common::WEBHOOK_SECRET)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "round {round}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            stdout.matches(r#"{"received":true}"#).count(),
            7,
            "{stdout}"
        );
        assert_eq!(app.event_count().await, 7, "stored once each");
    }
}
