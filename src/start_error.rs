//! Why a command could not start once its settings read well: a database that does not
//! answer or refuses the login, a port already taken. Each problem names the setting at
//! fault (variable or flag) and states its cause once, on one line, with any password in
//! a URL masked; `main` prints them and exits with code 2, as for a configuration error.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// One or more start-up problems, printed one line each.
#[derive(Debug)]
pub struct StartError {
    problems: Vec<String>,
    /// What to do about them, printed after them.
    hint: Option<String>,
}

impl StartError {
    fn new(setting: &str, problem: impl fmt::Display) -> StartError {
        StartError {
            problems: vec![format!("{setting}: {problem}")],
            hint: None,
        }
    }

    /// The database at `url` (named by `setting`) could not be prepared because of `error`.
    pub fn database(setting: &str, url: &str, error: &anyhow::Error) -> StartError {
        let target = Target::of(url);
        StartError::new(
            setting,
            format!("{}: {}", masked(url), database_cause(error, &target)),
        )
    }

    /// Listening on `addr` (named by `setting`) failed with `error`.
    pub fn bind(setting: &str, addr: SocketAddr, error: &io::Error) -> StartError {
        let cause = match error.kind() {
            io::ErrorKind::AddrInUse => format!("{addr} is already in use"),
            io::ErrorKind::AddrNotAvailable => format!("{addr} is not an address of this machine"),
            io::ErrorKind::PermissionDenied => format!("no permission to listen on {addr}"),
            _ => format!("cannot listen on {addr}: {error}"),
        };
        StartError::new(setting, cause)
    }

    /// The problems of every failed result, if any failed.
    pub fn all(results: impl IntoIterator<Item = Option<StartError>>) -> Option<StartError> {
        results.into_iter().flatten().reduce(|mut all, more| {
            all.problems.extend(more.problems);
            all.hint = all.hint.or(more.hint);
            all
        })
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> StartError {
        self.hint = Some(hint.into());
        self
    }

    /// Whether Postgres could not be reached at all (as opposed to refusing something).
    pub fn is_unreachable(error: &anyhow::Error) -> bool {
        matches!(
            sqlx_error(error),
            Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        ) || io_error(error).is_some()
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "error: {problem}")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "{hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StartError {}

/// Connections the kernel holds for us while `MAX_CONNECTIONS` are served (at most
/// `net.core.somaxconn`); past them a client's connect is not answered, and it retries.
const LISTEN_BACKLOG: u32 = 1024;

/// Listens on `addr`, or says why not, naming the setting that chose it. The backlog has
/// room for a burst past the connection cap (the standard library's, and so tokio's
/// `bind`, has 128).
pub async fn listen(setting: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let listener = || {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listener().map_err(|error| StartError::bind(setting, addr, &error))
}

/// The URL with its password, if any, shown as `***`; anything that is not a URL is
/// not shown at all, since it may hold a password in a shape we cannot find.
pub fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        // `user:secret@host` parses, as a URL of scheme `user` with no host.
        Ok(mut parsed) if !parsed.cannot_be_a_base() => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        _ => "(a value that is not a URL)".to_owned(),
    }
}

/// Where a database URL points, for messages.
struct Target {
    address: String,
    user: String,
}

impl Target {
    fn of(url: &str) -> Target {
        let parsed = reqwest::Url::parse(url).ok();
        let host = parsed
            .as_ref()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned());
        let port = parsed.as_ref().and_then(reqwest::Url::port).unwrap_or(5432);
        let user = parsed
            .as_ref()
            .map(|url| url.username().to_owned())
            .filter(|user| !user.is_empty())
            .unwrap_or_else(|| "postgres".to_owned());
        Target {
            address: format!("{host}:{port}"),
            user,
        }
    }
}

fn sqlx_error(error: &anyhow::Error) -> Option<&sqlx::Error> {
    error.chain().find_map(|cause| {
        cause.downcast_ref::<sqlx::Error>().or_else(|| {
            match cause.downcast_ref::<sqlx::migrate::MigrateError>() {
                Some(sqlx::migrate::MigrateError::Execute(inner)) => Some(inner),
                Some(sqlx::migrate::MigrateError::ExecuteMigration(inner, _)) => Some(inner),
                _ => None,
            }
        })
    })
}

fn io_error(error: &anyhow::Error) -> Option<&io::Error> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<io::Error>())
}

/// The cause of a failure to prepare the database, in the operator's terms, once.
fn database_cause(error: &anyhow::Error, target: &Target) -> String {
    let address = &target.address;
    let io_cause = |io: &io::Error| match io.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("connection refused: nothing listens at {address} (is Postgres running?)")
        }
        io::ErrorKind::TimedOut => format!("no answer from {address}"),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            format!("{address} is unreachable from this machine")
        }
        // A name that does not resolve lands here, in the resolver's words.
        _ => format!("cannot reach {address}: {io}"),
    };
    match sqlx_error(error) {
        Some(sqlx::Error::Io(io)) => io_cause(io),
        Some(sqlx::Error::PoolTimedOut) => format!("no answer from {address}"),
        Some(sqlx::Error::Database(db)) => match db.code().as_deref() {
            // Class 28: invalid authorization (a wrong password, an unknown role).
            Some(code) if code.starts_with("28") => format!(
                "Postgres at {address} refused the login of user `{}`: {}",
                target.user,
                db.message()
            ),
            _ => format!("Postgres at {address} refused: {}", db.message()),
        },
        Some(sqlx::Error::Protocol(_)) => {
            format!("the server at {address} does not speak Postgres' protocol")
        }
        Some(sqlx::Error::Tls(tls)) => format!("TLS with {address} failed: {tls}"),
        Some(sqlx::Error::Configuration(problem)) => problem.to_string(),
        Some(other) => other.to_string(),
        None => match io_error(error) {
            Some(io) => io_cause(io),
            // Neither I/O nor the driver: a migration problem, say. The outermost
            // message already holds the inner ones.
            None => error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_non_urls_hidden() {
        assert_eq!(
            masked("postgres://app:hunter2@db.internal:5433/billing"),
            "postgres://app:***@db.internal:5433/billing"
        );
        assert_eq!(
            masked("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(masked("user:hunter2@host"), "(a value that is not a URL)");
    }

    #[test]
    fn each_cause_is_stated_once() {
        let refused = anyhow::Error::new(sqlx::Error::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )))
        .context("preparing the database");
        let error = StartError::database(
            "DATABASE_URL",
            "postgres://app:hunter2@127.0.0.1:1/x",
            &refused,
        );
        assert_eq!(
            error.to_string(),
            "error: DATABASE_URL: postgres://app:***@127.0.0.1:1/x: connection refused: \
             nothing listens at 127.0.0.1:1 (is Postgres running?)\n"
        );
        assert!(StartError::is_unreachable(&refused));
    }

    #[test]
    fn problems_are_gathered_one_line_each() {
        let busy = io::Error::from(io::ErrorKind::AddrInUse);
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let all = StartError::all([
            Some(StartError::bind("BIND_ADDR", addr, &busy)),
            None,
            Some(StartError::bind("--sandbox-bind", addr, &busy).with_hint("free it")),
        ])
        .unwrap();
        assert_eq!(
            all.to_string(),
            "error: BIND_ADDR: 127.0.0.1:8080 is already in use\n\
             error: --sandbox-bind: 127.0.0.1:8080 is already in use\nfree it\n"
        );
        assert!(StartError::all([None, None]).is_none());
    }
}
