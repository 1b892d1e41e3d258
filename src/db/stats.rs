//! Counts across tables, for the operators' overview.

use std::collections::BTreeMap;

use sqlx::PgPool;

/// How many orders and how many partner calls are in each status.
pub struct StatusCounts {
    pub orders: BTreeMap<String, i64>,
    pub calls: BTreeMap<String, i64>,
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
