//! Counts across tables, for the operators' overview. Counts by status are kept by
//! triggers as rows change (`migrations/0007_admin_at_volume.sql`), so reading them costs
//! the same at any table size.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

/// How often the counters' rows are folded into one per status.
const FOLD_EVERY: Duration = Duration::from_secs(10);

/// How many orders and how many partner calls are in each status.
pub struct StatusCounts {
    pub orders: BTreeMap<String, i64>,
    pub calls: BTreeMap<String, i64>,
}

/// Events not yet applied and calls that can still move without an operator: running,
/// or pending at the head of their order. A dead or held call, and the calls waiting
/// behind it, count as settled: they wait for an operator.
pub async fn unsettled(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM events WHERE status = 'pending')
              + (SELECT count(*) FROM partner_calls
                 WHERE status = 'running' OR (status = 'pending' AND ready))",
    )
    .fetch_one(pool)
    .await
}

/// The counts as of now: the sum of the changes recorded since the last fold.
pub async fn status_counts(pool: &PgPool) -> Result<StatusCounts, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT table_name, status, sum(delta)::bigint FROM status_counts
         GROUP BY table_name, status HAVING sum(delta) <> 0",
    )
    .fetch_all(pool)
    .await?;
    let mut counts = StatusCounts {
        orders: BTreeMap::new(),
        calls: BTreeMap::new(),
    };
    for (table, status, count) in rows {
        let by_status = if table == "orders" {
            &mut counts.orders
        } else {
            &mut counts.calls
        };
        by_status.insert(status, count);
    }
    Ok(counts)
}

/// Folds the counters' rows into one per status, so reading them stays cheap. Safe while
/// others write or fold: each fold sums exactly the rows it deleted.
pub async fn fold(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH folded AS (DELETE FROM status_counts RETURNING table_name, status, delta)
         INSERT INTO status_counts (table_name, status, delta)
         SELECT table_name, status, sum(delta) FROM folded
         GROUP BY table_name, status HAVING sum(delta) <> 0",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Folds the counters every [`FOLD_EVERY`] until `stop`: run by every process that
/// writes orders or partner calls.
pub async fn keep_folded(pool: PgPool, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Err(error) = fold(&pool).await {
            tracing::warn!(%error, "folding the status counts failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLD_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Counts the orders due a workspace (paid, or trialing) for longer than `$1` seconds
/// that have none yet: its predicate is the index `orders_awaiting_workspace`'s, so it
/// reads only orders waiting for their workspace (a test checks the plan).
pub const PAID_NOT_PROVISIONED: &str = "SELECT count(*) FROM orders
     WHERE workspace_id IS NULL AND COALESCE(blocked_status, status) IN ('active', 'paused')
       AND paid_at < now() - make_interval(secs => $1)";

/// [`PAID_NOT_PROVISIONED`], for orders paid longer than `after` ago.
pub async fn paid_not_provisioned(pool: &PgPool, after: Duration) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(PAID_NOT_PROVISIONED)
        .bind(after.as_secs_f64())
        .fetch_one(pool)
        .await
}
