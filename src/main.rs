use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use uchat_billing::backfill::{self, Backfill};
use uchat_billing::catalog_online::PartnerLists;
use uchat_billing::config::{self, Config, Delivery};
use uchat_billing::db::backfill::StartedBy;
use uchat_billing::delivery::Worker;
use uchat_billing::demo::{self, DemoOptions};
use uchat_billing::env::Env;
use uchat_billing::partner::PartnerClient;
use uchat_billing::plan::Catalog;
use uchat_billing::reconcile::{Reconciler, Scope};
use uchat_billing::sandbox::{self, SandboxConfig};
use uchat_billing::start_error::{listen, StartError};
use uchat_billing::startup::{self, Application};
use uchat_billing::stripe::api::StripeApi;
use uchat_billing::telemetry::LogTo;
use uchat_billing::{db, dry_run, telemetry};

/// Turns Stripe payment events into UChat partner provisioning.
#[derive(Parser)]
#[command(version, after_help = config::help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service: Stripe webhooks in, stored durably (the default).
    Serve,
    /// Deliver partner calls only, without the HTTP service: run as many as you like
    /// against one database, so delivery scales apart from intake.
    Worker,
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Run a stateful fake of the UChat Partner API (SANDBOX_* variables set faults).
    #[command(after_help = sandbox::help())]
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: SocketAddr,
    },
    /// Start the service and the sandbox on a throwaway database of the Postgres server
    /// DATABASE_URL names (created now, dropped at exit), post a short signed Stripe
    /// story, and print each partner call and the final sandbox state. SANDBOX_*
    /// variables set the sandbox's faults; a test-mode STRIPE_API_KEY serves the
    /// storefront's pages; BIND_ADDR is not read.
    Demo {
        /// Leave the service, the sandbox and the database up afterwards (until Ctrl-C),
        /// with lines to try more.
        #[arg(long)]
        keep_running: bool,
        /// Where the service listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Where the UChat sandbox listens.
        #[arg(long, default_value = "127.0.0.1:8090")]
        sandbox_bind: SocketAddr,
    },
    /// Exit 0 if the service on BIND_ADDR is ready (GET /readyz answers 200 within 3 s),
    /// else 1: a container's health check, as the image has no curl.
    Healthcheck {
        /// Ask this URL instead (the sandbox's container: http://127.0.0.1:8090/sandbox/state).
        #[arg(long)]
        url: Option<String>,
    },
    /// Check a catalog file: every problem is printed with its line; exit 2 if any.
    CheckCatalog {
        /// The catalog to check [default: CATALOG_PATH, else catalog.toml].
        path: Option<PathBuf>,
        /// Also look up every plan, add-on and template id at UChat (UCHAT_API_BASE,
        /// UCHAT_API_TOKEN); exit 1 if UChat cannot be read.
        #[arg(long)]
        online: bool,
    },
    /// Print, as JSON, the partner calls these Stripe events would produce from an empty
    /// start: applied in Stripe's order, each to its order (events sharing a Stripe id
    /// are one order, as in the service), every call taken to succeed. Touches no
    /// database and no API.
    Plan {
        #[arg(long)]
        catalog: PathBuf,
        /// Stripe event JSON files.
        #[arg(required = true)]
        events: Vec<PathBuf>,
    },
    /// Recover the Stripe events the webhook never delivered: list Stripe's events (of the
    /// types the service acts on) and store those not stored yet, marked recovered; a
    /// running `serve` applies them. Needs STRIPE_API_KEY. Running it twice changes nothing.
    Backfill {
        /// From when: a time (2026-11-01T00:00:00Z) or a span back from now (72h, 90m, 7d)
        /// [default: the newest stored event less an hour; with none, all Stripe keeps
        /// (30 days)].
        #[arg(long, value_parser = backfill::parse_since)]
        since: Option<DateTime<Utc>>,
    },
    /// Set, show or remove the URL UChat posts its partner events to (needs
    /// UCHAT_API_TOKEN; `register` also PUBLIC_BASE_URL and UCHAT_WEBHOOK_TOKEN).
    UchatWebhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// Compare every live order with Stripe's subscription and UChat's workspace, print
    /// each drift, and store the report (GET /admin/reconcile). Reads `serve`'s settings;
    /// needs UCHAT_API_TOKEN. Exit 1 if an order is in drift.
    Reconcile {
        /// Only this order.
        #[arg(long)]
        order: Option<i64>,
        /// Queue the calls that bring UChat back to what the orders provisioned (a
        /// worker or `serve` delivers them).
        #[arg(long)]
        repair: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum WebhookAction {
    /// Point UChat's webhook at this service's `/webhooks/uchat/<token>`.
    Register,
    /// Print the URL UChat posts to (its token hidden).
    Show,
    /// Stop UChat's webhook.
    Remove,
}

/// A command with everything it reads from the environment.
enum Job {
    Serve(Box<Config>),
    Worker {
        database_url: String,
        delivery: Delivery,
        statement_timeout: Duration,
    },
    Migrate {
        database_url: String,
    },
    Sandbox {
        bind: SocketAddr,
        config: SandboxConfig,
    },
    Demo(DemoOptions),
    Healthcheck(String),
    CheckCatalog {
        path: PathBuf,
        /// Set for `--online`.
        partner: Option<PartnerClient>,
    },
    Plan {
        catalog: PathBuf,
        events: Vec<PathBuf>,
    },
    UchatWebhook {
        partner: PartnerClient,
        action: WebhookAction,
        /// The URL to register.
        url: Option<String>,
    },
    Reconcile {
        config: Box<Config>,
        scope: Scope,
        repair: bool,
        json: bool,
    },
    Backfill {
        database_url: String,
        stripe: StripeApi,
        since: Option<DateTime<Utc>>,
    },
}

impl Job {
    /// `None` only along with a problem reported to `env`.
    fn read(command: Command, env: &mut Env) -> Option<Job> {
        Some(match command {
            Command::Serve => Job::Serve(Box::new(Config::read(env)?)),
            Command::Worker => Job::Worker {
                database_url: config::database_url(env),
                statement_timeout: config::statement_timeout(env),
                delivery: Delivery::read(env)?,
            },
            Command::Migrate => Job::Migrate {
                database_url: config::database_url(env),
            },
            Command::Sandbox { bind } => Job::Sandbox {
                bind,
                config: SandboxConfig::read(env),
            },
            Command::Demo {
                keep_running,
                bind,
                sandbox_bind,
            } => Job::Demo(DemoOptions {
                database_url: config::database_url(env),
                bind,
                sandbox_bind,
                keep_running,
                sandbox: SandboxConfig::read(env),
                stripe_api: demo::test_mode_stripe(env),
            }),
            Command::Healthcheck { url } => {
                Job::Healthcheck(url.unwrap_or_else(|| readiness_url(config::bind_addr(env))))
            }
            Command::CheckCatalog { path, online } => Job::CheckCatalog {
                path: path.unwrap_or_else(|| env.text(&config::CATALOG_PATH).into()),
                partner: match online {
                    true => Some(Delivery::read(env)?.partner),
                    false => None,
                },
            },
            Command::Plan { catalog, events } => Job::Plan { catalog, events },
            Command::UchatWebhook { action } => {
                let url = match action {
                    WebhookAction::Register => {
                        let base = env.get(&config::PUBLIC_BASE_URL);
                        let token = env.get(&config::UCHAT_WEBHOOK_TOKEN);
                        if base.is_none() || token.is_none() {
                            env.report(format!(
                                "{} and {} are required to register the webhook",
                                config::PUBLIC_BASE_URL.name,
                                config::UCHAT_WEBHOOK_TOKEN.name
                            ));
                        }
                        base.zip(token).map(|(base, token)| {
                            format!("{}/webhooks/uchat/{token}", base.trim_end_matches('/'))
                        })
                    }
                    WebhookAction::Show | WebhookAction::Remove => None,
                };
                Job::UchatWebhook {
                    partner: Delivery::read(env)?.partner,
                    action,
                    url,
                }
            }
            Command::Reconcile {
                order,
                repair,
                json,
            } => {
                let config = Config::read(env)?;
                if config.delivery.is_none() {
                    env.report(format!(
                        "{} is required to read UChat's workspaces",
                        config::UCHAT_API_TOKEN.name
                    ));
                }
                Job::Reconcile {
                    config: Box::new(config),
                    scope: order.map_or(Scope::All, Scope::Order),
                    repair,
                    json,
                }
            }
            Command::Backfill { since } => Job::Backfill {
                database_url: config::database_url(env),
                stripe: config::stripe_api(env).or_else(|| {
                    env.report(format!(
                        "{} is required to list Stripe's events",
                        config::STRIPE_API_KEY.name
                    ));
                    None
                })?,
                since,
            },
        })
    }
}

/// Exit code for a configuration problem.
const CONFIG_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    // The demo prints its own story on stdout; only warnings and errors log, to stderr,
    // unless RUST_LOG says otherwise.
    let demo = matches!(command, Command::Demo { .. });
    // Their stdout is what they print (a report, a URL); their logs go to stderr.
    let prints = matches!(
        command,
        Command::Reconcile { .. } | Command::UchatWebhook { .. }
    );

    // Everything the command needs from the environment is read before anything starts,
    // so every problem is printed at once, one line each.
    let mut env = Env::process();
    let log_format = config::log_format(&mut env);
    let job = Job::read(command, &mut env);
    let job = match env.finish(job) {
        Ok(job) => job,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    if demo {
        telemetry::init(log_format, "warn", LogTo::Stderr);
    } else if prints {
        telemetry::init(log_format, "info", LogTo::Stderr);
    } else {
        telemetry::init(log_format, "info", LogTo::Stdout);
    }

    let result = match job {
        Job::Serve(config) => serve(config).await,
        Job::Worker {
            database_url,
            delivery,
            statement_timeout,
        } => work(&database_url, delivery, statement_timeout).await,
        Job::Migrate { database_url } => migrate(&database_url).await,
        Job::Sandbox { bind, config } => run_sandbox(bind, config).await,
        Job::Demo(options) => demo::run(options).await,
        Job::Healthcheck(url) => return healthcheck(&url).await,
        Job::CheckCatalog { path, partner } => return check_catalog(&path, partner).await,
        Job::Plan { catalog, events } => return print_plan(&catalog, &events),
        Job::UchatWebhook {
            partner,
            action,
            url,
        } => uchat_webhook(&partner, action, url.as_deref()).await,
        Job::Reconcile {
            config,
            scope,
            repair,
            json,
        } => match reconcile(&config, scope, repair, json).await {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Job::Backfill {
            database_url,
            stripe,
            since,
        } => recover_events(&database_url, stripe, since).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A database or port the settings name that will not do: like a bad setting.
        Err(error) => match error.downcast_ref::<StartError>() {
            Some(problems) => {
                eprint!("{problems}");
                ExitCode::from(CONFIG_ERROR)
            }
            None => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(config: Box<Config>) -> anyhow::Result<()> {
    let app = Application::build(&config).await?;
    app.run(startup::shutdown_signal()).await;
    Ok(())
}

async fn uchat_webhook(
    partner: &PartnerClient,
    action: WebhookAction,
    url: Option<&str>,
) -> anyhow::Result<()> {
    match (action, url) {
        (WebhookAction::Register, Some(url)) => {
            partner.set_webhook(url).await?;
            println!("UChat's webhook now posts to {}", hide_token(url));
        }
        (WebhookAction::Remove, _) => {
            partner.remove_webhook().await?;
            println!("UChat's webhook removed");
        }
        _ => match partner.webhook().await? {
            Some(url) => println!("{}", hide_token(&url)),
            None => println!("no webhook set"),
        },
    }
    Ok(())
}

/// The URL without its secret path token.
fn hide_token(url: &str) -> String {
    match url.split_once("/webhooks/uchat/") {
        Some((base, _)) => format!("{base}/webhooks/uchat/***"),
        None => url.to_owned(),
    }
}

async fn reconcile(
    config: &Config,
    scope: Scope,
    repair: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    prepare(&config.database_url).await?;
    let reconciler = Reconciler::of(config)?.expect("UCHAT_API_TOKEN checked when read");
    let Some(report) = reconciler.run(scope, repair).await? else {
        anyhow::bail!("no such order");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for drift in &report.drifts {
            println!(
                "order {} {:?} {}: expected {}, actual {}",
                drift.order, drift.source, drift.field, drift.expected, drift.actual
            );
        }
        for (order, calls) in &report.repaired {
            println!("order {order}: repair queued: {calls:?}");
        }
        for error in &report.errors {
            eprintln!("error: {error}");
        }
        println!(
            "{} orders checked, {} in drift, {} in flight (skipped)",
            report.orders_checked, report.orders_in_drift, report.orders_in_flight
        );
    }
    Ok(match report.orders_in_drift {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Creates the database if needed and applies the migrations, or says why it cannot.
async fn prepare(database_url: &str) -> Result<(), StartError> {
    db::prepare(database_url)
        .await
        .map_err(|error| StartError::database(config::DATABASE_URL.name, database_url, &error))
}

async fn work(
    database_url: &str,
    delivery: Delivery,
    statement_timeout: Duration,
) -> anyhow::Result<()> {
    prepare(database_url).await?;
    let pool = db::pool_with_statement_timeout(
        database_url,
        delivery.settings.concurrency as u32 + 2,
        statement_timeout,
    )?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // A worker alone serves no /metrics: its tries are in the attempts table.
    let metrics = Default::default();
    let folding = tokio::spawn(db::stats::keep_folded(pool.clone(), stopped.clone()));
    let worker = Worker::new(pool, delivery.partner, delivery.settings, metrics);
    let worker = tokio::spawn(worker.run(stopped));
    startup::shutdown_signal().await;
    let _ = stop.send(true);
    worker.await?;
    folding.await?;
    Ok(())
}

async fn run_sandbox(bind: SocketAddr, config: SandboxConfig) -> anyhow::Result<()> {
    let listener = listen("--bind", bind).await?;
    sandbox::serve(listener, config, startup::shutdown_signal()).await?;
    Ok(())
}

async fn migrate(database_url: &str) -> anyhow::Result<()> {
    prepare(database_url).await?;
    tracing::info!("database is up to date");
    Ok(())
}

async fn recover_events(
    database_url: &str,
    stripe: StripeApi,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    prepare(database_url).await?;
    let pool = db::pool(database_url, 2)?;
    let backfill = Backfill::new(pool, stripe);
    let since = match since {
        Some(since) => since,
        None => backfill
            .default_since()
            .await?
            .unwrap_or_else(|| Utc::now() - backfill::STRIPE_KEEPS_EVENTS),
    };
    let report = backfill.run(since, StartedBy::Command).await?;
    println!("{report}");
    Ok(())
}

/// `/readyz` of a service listening on `bind`; one listening on every address is asked
/// on loopback.
fn readiness_url(mut bind: SocketAddr) -> String {
    if bind.ip().is_unspecified() {
        bind.set_ip(match bind {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{bind}/readyz")
}

async fn healthcheck(url: &str) -> ExitCode {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("a client with a timeout builds");
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn check_catalog(path: &Path, partner: Option<PartnerClient>) -> ExitCode {
    let checked = match Catalog::check_file(path) {
        Ok(checked) => checked,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    for warning in &checked.warnings {
        eprintln!("warning: {warning}");
    }
    let prices = checked.catalog.price_count();
    let Some(partner) = partner else {
        println!("{}: ok, {prices} prices", path.display());
        return ExitCode::SUCCESS;
    };
    let lists = match PartnerLists::read(&partner).await {
        Ok(lists) => lists,
        Err(error) => {
            eprintln!("cannot read the plans, add-ons and templates from UChat: {error}");
            return ExitCode::FAILURE;
        }
    };
    let unknown = lists.unknown_ids(&checked);
    for problem in &unknown {
        eprintln!("{problem}");
    }
    if !unknown.is_empty() {
        return ExitCode::from(CONFIG_ERROR);
    }
    println!(
        "{}: ok, {prices} prices; every id is in your UChat account ({})",
        path.display(),
        lists.summary()
    );
    ExitCode::SUCCESS
}

fn print_plan(catalog: &Path, events: &[PathBuf]) -> ExitCode {
    let catalog = match Catalog::load(catalog) {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    let mut bodies = Vec::new();
    for path in events {
        match std::fs::read(path) {
            Ok(body) => bodies.push((path.display().to_string(), body)),
            Err(error) => {
                eprintln!("{}: {error}", path.display());
                return ExitCode::from(CONFIG_ERROR);
            }
        }
    }
    match dry_run::plan_events(&catalog, &bodies) {
        Ok(steps) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&steps).expect("steps serialize")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(CONFIG_ERROR)
        }
    }
}
