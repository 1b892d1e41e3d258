//! The overview: what waits and what is stuck, the partner's credit, and the last days'
//! traffic as charts.

use axum::extract::State;
use axum::response::Html;
use chrono::{Duration, DurationRound, Utc};
use maud::html;

use super::chart::{self, Bar};
use super::view::{self, PageError, Section};
use super::Operator;
use crate::db::activity::{self, Hourly, LATENCY_BOUNDS_SECS};
use crate::db::{calls, stats};
use crate::http::AppState;

/// The charts' window, in hours: the last three days.
const HOURS: i64 = 72;

pub async fn show(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Html<String>, PageError> {
    let db = &state.admin_db;
    let counts = stats::status_counts(db).await?;
    let backlog = calls::backlog(db).await?;
    let since = Utc::now()
        .duration_trunc(Duration::hours(1))
        .expect("an hour divides any time")
        - Duration::hours(HOURS - 1);
    let events = activity::per_hour(db, Hourly::EventsReceived, since).await?;
    let delivered = activity::per_hour(db, Hourly::CallsSucceeded, since).await?;
    let latency = latency_bars(&activity::delivery_latency(db, since).await?);
    let credit = state.metrics.partner_credit();

    Ok(view::page(
        "Overview",
        Section::Overview,
        Some(&operator),
        html! {
            section aria-labelledby="now" {
                h2 #now { "Now" }
                dl.cards {
                    div { dt { "Calls due" } dd { (backlog.due) } }
                    div { dt { "Oldest due call waiting" } dd {
                        @match backlog.oldest_due_age_seconds {
                            Some(age) => (view::duration(age)),
                            None => "none due",
                        }
                    } }
                    div.(if backlog.held > 0 { "wait" } else { "" }) {
                        dt { "Held calls" } dd { a href="/console/calls?status=held" { (backlog.held) } }
                    }
                    div.(if backlog.dead > 0 { "bad" } else { "" }) {
                        dt { "Dead calls" } dd { a href="/console/calls?status=dead" { (backlog.dead) } }
                    }
                    div { dt { "Partner credit" } dd {
                        @match credit {
                            Some(credit) => (format!("{credit:.2}")),
                            None => "unknown",
                        }
                    } }
                }
            }
            section aria-labelledby="orders" {
                h2 #orders { "Orders by status" }
                @if counts.orders.is_empty() {
                    p.empty { "No orders yet." }
                }
                ul.counts {
                    @for (status, count) in &counts.orders {
                        li { a href={ "/console/orders?status=" (status) } { (view::status(status)) " " (count) } }
                    }
                }
            }
            section aria-labelledby="traffic" {
                h2 #traffic { "The last " (HOURS / 24) " days (UTC)" }
                div.charts {
                    (chart::bars("Stripe events received per hour", &chart::hourly(&events, since, HOURS), 12))
                    (chart::bars("Partner calls succeeded per hour", &chart::hourly(&delivered, since, HOURS), 12))
                    (chart::bars("Time from planned to succeeded (calls)", &latency, 1))
                }
            }
        },
    ))
}

/// The latency buckets as bars: `< 1 s`, `1 s–5 s`, ..., `≥ 1 h`.
fn latency_bars(counts: &[i64]) -> Vec<Bar> {
    let bound = |i: usize| view::duration(LATENCY_BOUNDS_SECS[i]);
    counts
        .iter()
        .enumerate()
        .map(|(i, count)| Bar {
            label: match i {
                0 => format!("< {}", bound(0)),
                i if i == LATENCY_BOUNDS_SECS.len() => format!("≥ {}", bound(i - 1)),
                i => format!("{}–{}", bound(i - 1), bound(i)),
            },
            value: *count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_labelled_by_their_bounds() {
        let labels: Vec<String> = latency_bars(&[0; LATENCY_BOUNDS_SECS.len() + 1])
            .into_iter()
            .map(|bar| bar.label)
            .collect();
        assert_eq!(
            labels,
            [
                "< 1 s",
                "1 s–5 s",
                "5 s–30 s",
                "30 s–2 min",
                "2 min–10 min",
                "10 min–1 h",
                "≥ 1 h"
            ]
        );
    }
}
