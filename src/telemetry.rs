//! Logging: `pretty` for people, `json` for log pipelines; `RUST_LOG` filters.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTo {
    /// A service's output is its log.
    Stdout,
    /// A command whose output is something else (the demo's story) logs beside it.
    Stderr,
}

/// `default_filter` applies when `RUST_LOG` is unset.
pub fn init(format: LogFormat, default_filter: &str, to: LogTo) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour only for a person at a terminal: a file, a pipe or a container's log
    // collector gets plain text (and `NO_COLOR` turns it off everywhere).
    let terminal = match to {
        LogTo::Stdout => std::io::stdout().is_terminal(),
        LogTo::Stderr => std::io::stderr().is_terminal(),
    };
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    // A second init (tests) keeps the first subscriber.
    let _ = match (format, to) {
        (LogFormat::Pretty, LogTo::Stdout) => builder.try_init(),
        (LogFormat::Pretty, LogTo::Stderr) => builder.with_writer(std::io::stderr).try_init(),
        (LogFormat::Json, LogTo::Stdout) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Json, LogTo::Stderr) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}
