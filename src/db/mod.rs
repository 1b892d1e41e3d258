//! Every SQL query, grouped by table. Schema lives in `migrations/`.

pub mod activity;
pub mod backfill;
pub mod calls;
pub mod events;
pub mod orders;
pub mod reconcile;
pub mod stats;
pub mod store;
pub mod uchat_events;

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

/// A pool that connects on first use, so the service starts (and answers 503) while
/// Postgres is down, and recovers by itself when it comes back.
pub fn pool(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    Ok(lazy(database_url.parse()?, max_connections))
}

/// [`pool`], each of whose statements Postgres cancels after `timeout`, so a stuck query
/// gives its connection back.
pub fn pool_with_statement_timeout(
    database_url: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    let timeout = format!("{}ms", timeout.as_millis());
    Ok(lazy(
        options.options([("statement_timeout", timeout.as_str())]),
        max_connections,
    ))
}

/// A connection idle at least this long is checked (a round trip) before it is handed
/// out; one in steady use is not, as its last statement just showed it alive.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

fn lazy(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Short enough that Stripe gets a 503 well before its own timeout.
        .acquire_timeout(Duration::from_secs(3))
        // sqlx pings every connection it hands out: under load, one round trip more per
        // transaction. A broken connection fails its check and is replaced.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options)
}

/// How many connections each kind of the service's work gets, and how long one of its
/// statements may run (README, "Limits").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    pub intake_connections: u32,
    pub admin_connections: u32,
    /// Intake's, the processor's and delivery's statements.
    pub statement_timeout: Duration,
    /// The operator API's and `/metrics`' statements.
    pub admin_statement_timeout: Duration,
}

/// The service's pools. Each kind of work has connections no other kind can take, so
/// an operator's flood or a slow dependency of the processor never keeps Stripe's
/// webhooks waiting for a connection.
#[derive(Clone, Debug)]
pub struct Pools {
    pub intake: PgPool,
    pub admin: PgPool,
    /// The event processor's and delivery's.
    pub work: PgPool,
}

impl Pools {
    pub fn new(
        database_url: &str,
        limits: &PoolLimits,
        work_connections: u32,
    ) -> Result<Pools, sqlx::Error> {
        let pool =
            |connections, timeout| pool_with_statement_timeout(database_url, connections, timeout);
        Ok(Pools {
            intake: pool(limits.intake_connections, limits.statement_timeout)?,
            admin: pool(limits.admin_connections, limits.admin_statement_timeout)?,
            work: pool(work_connections, limits.statement_timeout)?,
        })
    }
}

/// How long Postgres may take to answer at start before it counts as unreachable: a
/// firewall that drops packets, or a server that accepts and never speaks, would
/// otherwise hold the start for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the database if it is missing, then applies the migrations, on a connection
/// of its own: no statement timeout applies, since building an index on a large table
/// takes a while.
pub async fn prepare(database_url: &str) -> anyhow::Result<()> {
    let exists = tokio::time::timeout(CONNECT_TIMEOUT, Postgres::database_exists(database_url))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
    if !exists? {
        tracing::info!("creating the database");
        Postgres::create_database(database_url).await?;
    }
    let mut connection = PgConnection::connect(database_url).await?;
    // The migrator creates its table `IF NOT EXISTS`, which makes Postgres send a notice
    // ("already exists, skipping") at every start: this connection hears warnings only.
    sqlx::query("SET client_min_messages TO warning")
        .execute(&mut connection)
        .await?;
    sqlx::migrate!("./migrations").run(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

/// Ends a list's statement: rows `before` an id (the previous page's last), newest first,
/// at most `limit`. The statement names only the filters given, so each combination is
/// planned for itself: a plan cached for `($1 IS NULL OR status = $1)` could use no index
/// and would read the whole table for a rare status.
fn newest_first(query: &mut QueryBuilder<'_, Postgres>, id: &str, before: Option<i64>, limit: i64) {
    if let Some(before) = before {
        query.push(format!(" AND {id} < ")).push_bind(before);
    }
    query
        .push(format!(" ORDER BY {id} DESC LIMIT "))
        .push_bind(limit);
}

/// An operator's change to a row: made, or refused with the reason its state gives.
#[derive(Debug)]
pub enum Change<T> {
    Made(T),
    NotFound,
    Refused(String),
}

/// Makes the transaction refuse every write, so a read-only operation (a dry run) cannot
/// change anything, whatever the code inside it does.
pub async fn read_only(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the error means the database could not be reached, as opposed to a query
/// that failed: the caller should answer "try again later".
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}
