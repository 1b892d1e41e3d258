//! Every SQL query, grouped by table. Schema lives in `migrations/`.

pub mod calls;
pub mod events;
pub mod orders;
pub mod stats;

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Postgres;

/// A pool that connects on first use, so the service starts (and answers 503) while
/// Postgres is down, and recovers by itself when it comes back.
pub fn pool(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Short enough that Stripe gets a 503 well before its own timeout.
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(database_url)
}

/// How long Postgres may take to answer at start before it counts as unreachable: a
/// firewall that drops packets, or a server that accepts and never speaks, would
/// otherwise hold the start for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the database if it is missing, then applies the migrations.
pub async fn prepare(database_url: &str, pool: &PgPool) -> anyhow::Result<()> {
    let exists = tokio::time::timeout(CONNECT_TIMEOUT, Postgres::database_exists(database_url))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
    if !exists? {
        tracing::info!("creating the database");
        Postgres::create_database(database_url).await?;
    }
    // The migrator creates its table `IF NOT EXISTS`, which makes Postgres send a notice
    // ("already exists, skipping") at every start: this connection hears warnings only.
    let mut conn = pool.acquire().await?;
    sqlx::query("SET client_min_messages TO warning")
        .execute(&mut *conn)
        .await?;
    sqlx::migrate!("./migrations").run(&mut *conn).await?;
    sqlx::query("RESET client_min_messages")
        .execute(&mut *conn)
        .await?;
    Ok(())
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
