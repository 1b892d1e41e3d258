//! The binary as an operator meets it: configuration errors, migrate, serve and shutdown.

mod common;

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

#[tokio::test]
async fn migrate_creates_the_database_and_serve_stops_cleanly_on_sigterm() {
    let database = common::fresh_database().await;
    // A name that does not exist yet: the service must create it.
    let created = format!("{}_created", database.name);
    let url = database.url.replace(&database.name, &created);
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
    common::drop_database(&created);
}
