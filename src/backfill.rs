//! Recovering the Stripe events the webhook never delivered (an endpoint down longer than
//! Stripe retries, or disabled): Stripe's event list, of the types the service acts on,
//! is read back to a point in time, and every event not stored yet is stored through
//! intake's own path ([`crate::intake`]), marked recovered. The processor then applies
//! them in Stripe's order, as it would have had the webhook brought them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use crate::db::backfill::{self as runs, Outcome, StartedBy};
use crate::intake::{self, Via};
use crate::metrics::Metrics;
use crate::stripe::api::{StripeApi, MAX_EVENT_TYPES};
use crate::stripe::decode::{self, Event};

/// How far back Stripe's event list goes.
pub const STRIPE_KEEPS_EVENTS: Duration = Duration::from_secs(30 * 24 * 3600);

/// How far before the newest stored event a backfill starts: events Stripe created
/// before it may have been missed too (it sends in no fixed order, and retries late).
pub const SAFETY_MARGIN: Duration = Duration::from_secs(3600);

/// What a backfill found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub since: DateTime<Utc>,
    /// Events Stripe listed.
    pub listed: usize,
    /// Events never received, now stored.
    pub stored: usize,
    /// Events stored already.
    pub already_known: usize,
    /// Listed events that are no Stripe event we can store (logged, and left out).
    pub unreadable: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "events since {}: {} listed, {} recovered (stored now), {} already known",
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.listed,
            self.stored,
            self.already_known
        )?;
        if self.unreadable > 0 {
            write!(f, ", {} unreadable (see the log)", self.unreadable)?;
        }
        Ok(())
    }
}

/// Reads Stripe's event list into the events table.
#[derive(Clone)]
pub struct Backfill {
    db: PgPool,
    stripe: StripeApi,
}

impl Backfill {
    pub fn new(db: PgPool, stripe: StripeApi) -> Backfill {
        Backfill { db, stripe }
    }

    /// Where a backfill starts by default: the newest stored event less the safety
    /// margin, within what Stripe keeps. `None` when no event is stored yet: nothing says
    /// where the service's history begins.
    pub async fn default_since(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let newest = runs::newest_event_created(&self.db).await?;
        Ok(newest
            .and_then(|created| DateTime::from_timestamp(created, 0))
            .map(|newest| within_reach(newest - SAFETY_MARGIN, Utc::now())))
    }

    /// Lists the events created since `since` (brought within what Stripe keeps) and
    /// stores those never received, all in one transaction, oldest first. The run and
    /// its outcome are recorded in `backfill_runs`. On an error nothing is stored.
    pub async fn run(&self, since: DateTime<Utc>, started_by: StartedBy) -> anyhow::Result<Report> {
        let since = within_reach(since, Utc::now());
        let run = runs::start(&self.db, started_by, since)
            .await
            .context("recording the backfill's start")?;
        let recovered = self.recover(since).await;
        let outcome = match &recovered {
            Ok(report) => Outcome {
                listed: report.listed,
                stored: report.stored,
                already_known: report.already_known,
                error: None,
            },
            Err(error) => Outcome {
                listed: 0,
                stored: 0,
                already_known: 0,
                error: Some(&format!("{error:#}")),
            },
        };
        runs::finish(&self.db, run, outcome)
            .await
            .context("recording the backfill's outcome")?;
        recovered
    }

    async fn recover(&self, since: DateTime<Utc>) -> anyhow::Result<Report> {
        let mut report = Report {
            since,
            listed: 0,
            stored: 0,
            already_known: 0,
            unreadable: 0,
        };
        let mut missing = Vec::new();
        for types in decode::ACTED_ON.chunks(MAX_EVENT_TYPES) {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .stripe
                    .events(types, since.timestamp(), after.as_deref())
                    .await
                    .context("listing Stripe's events")?;
                report.listed += page.events.len();
                let events: Vec<(Event, String)> = page
                    .events
                    .iter()
                    .filter_map(|listed| readable(listed, &mut report.unreadable))
                    .collect();
                let ids: Vec<&str> = events.iter().map(|(event, _)| event.id.as_str()).collect();
                let known = runs::known_events(&self.db, &ids).await?;
                missing.extend(events.into_iter().filter(|(e, _)| !known.contains(&e.id)));
                after = page
                    .events
                    .last()
                    .and_then(|last| decode::text(&last["id"]));
                if !page.has_more || after.is_none() {
                    break;
                }
            }
        }
        // Oldest first: ids follow Stripe's order, as the processor's claims do.
        missing.sort_by(|(a, _), (b, _)| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let mut tx = self.db.begin().await?;
        for (event, raw_body) in &missing {
            if intake::store(&mut *tx, event, raw_body, Via::Backfill)
                .await?
                .new
            {
                report.stored += 1;
                tracing::info!(
                    event_id = %event.id,
                    event_type = %event.event_type,
                    created = event.created,
                    "event recovered"
                );
            }
        }
        tx.commit().await?;
        report.already_known = report.listed - report.unreadable - report.stored;
        Ok(report)
    }
}

/// The listed event and its text, or `None` (counted) when it is no event we can store.
fn readable(listed: &Value, unreadable: &mut usize) -> Option<(Event, String)> {
    let raw_body = listed.to_string();
    match decode::parse_event(raw_body.as_bytes()) {
        Ok(event) => Some((event, raw_body)),
        Err(error) => {
            *unreadable += 1;
            tracing::warn!(%error, "Stripe listed an event that cannot be stored; left out");
            None
        }
    }
}

/// `since`, or the oldest time Stripe still lists events of.
fn within_reach(since: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    since.max(now - STRIPE_KEEPS_EVENTS)
}

/// `--since`: a time (RFC 3339, `2026-11-01T00:00:00Z`) or a span back from now
/// (`90m`, `72h`, `7d`, `3600s`).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let invalid = || {
        format!(
            "`{text}` is neither a time like 2026-11-01T00:00:00Z nor a span like 72h, 90m, 7d \
             or 3600s"
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| invalid())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    let span = number
        .checked_mul(unit)
        .and_then(chrono::TimeDelta::try_seconds)
        .filter(|span| *span >= chrono::TimeDelta::zero())
        .ok_or_else(invalid)?;
    Ok(Utc::now() - span)
}

/// `serve`'s own backfill: at start and then every `every`, from [`Backfill::default_since`],
/// until `stop`. Recovered events wake the processor and are counted in the metrics.
pub async fn keep_backfilling(
    backfill: Backfill,
    every: Duration,
    metrics: Arc<Metrics>,
    arrivals: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(every_s = every.as_secs(), "Stripe backfill started");
    while !*stop.borrow() {
        match backfill_once(&backfill).await {
            Ok(Some(report)) => {
                metrics.record_recovered(report.stored);
                if report.stored > 0 {
                    arrivals.notify_one();
                    tracing::warn!(%report, "backfill recovered events the webhook never delivered");
                } else {
                    tracing::info!(%report, "backfill found nothing missing");
                }
            }
            Ok(None) => {
                tracing::info!("backfill skipped: no event is stored yet to reach back from")
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "backfill failed; trying again at the next run")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn backfill_once(backfill: &Backfill) -> anyhow::Result<Option<Report>> {
    let Some(since) = backfill.default_since().await? else {
        return Ok(None);
    };
    backfill.run(since, StartedBy::Serve).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_span_back_from_now() {
        assert_eq!(
            parse_since("2026-11-01T00:00:00Z").unwrap(),
            DateTime::parse_from_rfc3339("2026-11-01T00:00:00+00:00").unwrap()
        );
        for (text, seconds) in [
            ("72h", 72 * 3600),
            ("90m", 5400),
            ("7d", 604_800),
            ("5s", 5),
        ] {
            let ago = Utc::now() - parse_since(text).unwrap();
            assert!((ago.num_seconds() - seconds).abs() <= 1, "{text}: {ago}");
        }
        for bad in [
            "",
            "h",
            "72",
            "-3h",
            "3w",
            "1.5h",
            "yesterday",
            "99999999999999999d",
        ] {
            assert!(parse_since(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_backfill_reaches_back_no_further_than_stripe_keeps_events() {
        let now = Utc::now();
        let old = now - chrono::TimeDelta::days(45);
        assert_eq!(within_reach(old, now), now - STRIPE_KEEPS_EVENTS);
        let recent = now - chrono::TimeDelta::hours(3);
        assert_eq!(within_reach(recent, now), recent);
    }
}
