//! Counts across tables, for the operators' overview.

use std::collections::BTreeMap;

use sqlx::PgPool;

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

pub async fn status_counts(pool: &PgPool) -> Result<StatusCounts, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT 'orders', status, count(*) FROM orders GROUP BY status
         UNION ALL
         SELECT 'calls', status, count(*) FROM partner_calls GROUP BY status",
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
