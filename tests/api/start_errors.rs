//! Start-up failures as an operator meets them: every command exits 2 with one line per
//! problem, naming the variable or flag, stating the cause once, never a password.

use std::net::TcpListener;
use std::process::Output;

use crate::cli::command;
use crate::common;

/// A password no output may show.
const PASSWORD: &str = "hunter2secret";

/// Runs `args` with `env` (and the settings each command needs besides), expecting exit
/// code 2 and stderr lines that name each of `named` and say `cause` exactly once.
fn fails_at_start(args: &[&str], env: &[(&str, &str)], named: &[&str], cause: &str) -> String {
    let output = command()
        .args(args)
        .env("STRIPE_WEBHOOK_SECRET", "whsec_start_errors")
        .env("CATALOG_PATH", common::fixture_path("catalog.toml"))
        .env("UCHAT_API_TOKEN", "partner-token")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?}: {}",
        describe(&output)
    );
    for name in named {
        assert!(
            stderr.contains(name),
            "{args:?}: {name} not named:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.to_lowercase().matches(&cause.to_lowercase()).count(),
        1,
        "{args:?}: `{cause}` said once:\n{stderr}"
    );
    assert!(
        !stderr.contains(PASSWORD),
        "{args:?}: password shown:\n{stderr}"
    );
    stderr
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The commands that use the database, with the flags that keep them off busy ports.
const DATABASE_COMMANDS: &[&[&str]] = &[
    &["serve"],
    &["worker"],
    &["migrate"],
    &[
        "demo",
        "--bind",
        "127.0.0.1:0",
        "--sandbox-bind",
        "127.0.0.1:0",
    ],
];

#[test]
fn a_database_url_that_is_not_a_url_is_named_by_every_command() {
    for args in DATABASE_COMMANDS {
        fails_at_start(
            args,
            &[("DATABASE_URL", "not-a-url"), ("BIND_ADDR", "127.0.0.1:0")],
            &["DATABASE_URL", "not-a-url"],
            "is not a URL",
        );
    }
}

#[test]
fn a_database_url_of_another_scheme_is_refused_before_connecting() {
    let url = format!("mysql://root:{PASSWORD}@127.0.0.1:3306/billing");
    for args in DATABASE_COMMANDS {
        let stderr = fails_at_start(
            args,
            &[("DATABASE_URL", &url), ("BIND_ADDR", "127.0.0.1:0")],
            &["DATABASE_URL", "postgres://", "mysql://"],
            "must be a Postgres URL",
        );
        assert!(!stderr.contains("CopyData"), "{stderr}");
    }
}

#[test]
fn a_refused_connection_names_the_database_url_with_its_password_masked() {
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/billing");
    for args in DATABASE_COMMANDS {
        let stderr = fails_at_start(
            args,
            &[("DATABASE_URL", &url), ("BIND_ADDR", "127.0.0.1:0")],
            &[
                "DATABASE_URL",
                "postgres://postgres:***@127.0.0.1:1/billing",
            ],
            "refused",
        );
        let problems = stderr.lines().filter(|l| l.starts_with("error: ")).count();
        assert_eq!(problems, 1, "one line for one problem:\n{stderr}");
    }
}

#[test]
fn the_demo_says_how_to_start_postgres_when_nothing_answers() {
    let stderr = fails_at_start(
        DATABASE_COMMANDS[3],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")],
        &[
            "DATABASE_URL",
            "docker compose up -d postgres",
            "pg_ctlcluster",
        ],
        "refused",
    );
    assert!(stderr.contains("brew services start"), "{stderr}");
}

#[test]
fn a_host_that_never_answers_is_reported_after_a_timeout() {
    // Accepts connections (the kernel does, from the backlog) and never says a word, as
    // a host behind a firewall that drops packets looks to the driver.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let url = format!("postgres://postgres:{PASSWORD}@{address}/billing");
    fails_at_start(
        &["migrate"],
        &[("DATABASE_URL", &url)],
        &["DATABASE_URL", &address.to_string()],
        "no answer",
    );
}

#[test]
fn a_login_postgres_refuses_names_the_user() {
    let url = format!(
        "postgres://uchat_no_such_role:{PASSWORD}@{}/billing",
        common::database_server_address()
    );
    for args in [&["migrate"][..], &["worker"][..]] {
        fails_at_start(
            args,
            &[("DATABASE_URL", &url)],
            &["DATABASE_URL", "uchat_no_such_role", "does not exist"],
            "refused the login",
        );
    }
}

#[tokio::test]
async fn a_busy_port_is_named_with_its_address_by_each_command_that_listens() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let database = common::fresh_database().await;

    let stderr = fails_at_start(
        &["serve"],
        &[("DATABASE_URL", &database.url), ("BIND_ADDR", &address)],
        &["BIND_ADDR", &address],
        "already in use",
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    fails_at_start(
        &["sandbox", "--bind", &address],
        &[],
        &["--bind", &address],
        "already in use",
    );
    // Both of the demo's ports, and a dead database besides: three problems, one line each.
    let stderr = fails_at_start(
        &["demo", "--bind", &address, "--sandbox-bind", &address],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")],
        &["--bind", "--sandbox-bind", "DATABASE_URL"],
        "refused",
    );
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(problems.len(), 3, "{stderr}");
    assert!(problems[0].starts_with(&format!("error: --bind: {address} is already in use")));
    assert!(problems[1].starts_with(&format!("error: --sandbox-bind: {address}")));
}

#[test]
fn every_configuration_problem_of_a_command_is_reported_together() {
    let stderr = fails_at_start(
        DATABASE_COMMANDS[3],
        &[
            ("LOG_FORMAT", "xml"),
            ("DATABASE_URL", "not-a-url"),
            ("SANDBOX_FAIL_RATE", "2"),
        ],
        &["LOG_FORMAT", "DATABASE_URL", "SANDBOX_FAIL_RATE"],
        "configuration error: LOG_FORMAT",
    );
    assert_eq!(stderr.lines().count(), 3, "{stderr}");

    let stderr = fails_at_start(
        &["migrate"],
        &[("LOG_FORMAT", "xml"), ("DATABASE_URL", "mysql://x@y/z")],
        &["LOG_FORMAT", "DATABASE_URL"],
        "configuration error: DATABASE_URL",
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}
