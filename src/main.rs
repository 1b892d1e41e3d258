use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uchat_billing::config::{self, Config};
use uchat_billing::startup::{self, Application};
use uchat_billing::{db, telemetry};

/// Turns Stripe payment events into UChat partner provisioning.
#[derive(Parser)]
#[command(version, after_help = config::ENVIRONMENT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service: Stripe webhooks in, stored durably (the default).
    Serve,
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
}

/// Exit code for a configuration problem.
const CONFIG_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let log_format = match config::log_format(&config::var) {
        Ok(format) => format,
        Err(problem) => {
            eprintln!("configuration error: {problem}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    telemetry::init(log_format);

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match Config::from_env() {
            Ok(config) => serve(config).await,
            Err(problems) => {
                eprint!("{problems}");
                return ExitCode::from(CONFIG_ERROR);
            }
        },
        Command::Migrate => migrate().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(&config).await?;
    app.run(startup::shutdown_signal()).await
}

async fn migrate() -> anyhow::Result<()> {
    let url = config::database_url(&config::var);
    let pool = db::pool(&url, 1)?;
    db::prepare(&url, &pool).await?;
    tracing::info!("database is up to date");
    Ok(())
}
