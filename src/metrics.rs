//! Prometheus metrics, by hand: a few labelled counters and histograms kept in memory, and
//! the delivery backlog read from the database at scrape time, rendered in Prometheus'
//! text format. Small enough that a metrics crate would be most of the code.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::db::calls::Backlog;

/// The content type of Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds, in seconds, of the latency histograms' buckets: from a quick insert to a
/// partner call near its timeout.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Everything the service counts while it runs. One per process, shared through `AppState`
/// and handed to the delivery worker.
pub struct Metrics {
    webhooks: Family<u64, 2>,
    webhook_latency: Family<Histogram, 0>,
    partner_calls: Family<u64, 2>,
    partner_latency: Family<Histogram, 1>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            webhooks: Family::new(
                "uchat_billing_webhooks_total",
                "Stripe webhook requests, by event type and outcome.",
                ["type", "outcome"],
            ),
            webhook_latency: Family::new(
                "uchat_billing_webhook_duration_seconds",
                "Time to verify and store a Stripe webhook.",
                [],
            ),
            partner_calls: Family::new(
                "uchat_billing_partner_calls_total",
                "UChat Partner API call attempts, by call kind and outcome.",
                ["kind", "outcome"],
            ),
            partner_latency: Family::new(
                "uchat_billing_partner_call_duration_seconds",
                "UChat Partner API call latency, by call kind.",
                ["kind"],
            ),
        }
    }
}

impl Metrics {
    /// One webhook request: its event type (`unverified` when it was refused before its
    /// signature was checked), what became of it (`stored`, `duplicate`, `rejected`,
    /// `error`) and how long intake took.
    pub fn record_webhook(&self, event_type: &str, outcome: &str, latency: Duration) {
        self.webhooks
            .update([event_type, outcome], |count| *count += 1);
        self.webhook_latency
            .update([], |histogram| histogram.observe(latency));
    }

    /// One attempt at a partner call: its kind (`create`, `change-plan`, ...), its outcome
    /// as the attempts table names it (`succeeded`, `retry`, `held`, `dead`, ...) and how
    /// long the partner took to answer.
    pub fn record_partner_call(&self, kind: &str, outcome: &str, latency: Duration) {
        self.partner_calls
            .update([kind, outcome], |count| *count += 1);
        self.partner_latency
            .update([kind], |histogram| histogram.observe(latency));
    }

    /// Everything in Prometheus' text format, with the backlog gauges read just now.
    pub fn render(&self, backlog: &Backlog) -> String {
        let mut out = String::new();
        self.webhooks.render(&mut out);
        self.webhook_latency.render(&mut out);
        self.partner_calls.render(&mut out);
        self.partner_latency.render(&mut out);
        let gauges = [
            (
                "uchat_billing_calls_due",
                "Partner calls due now (pending or held, next attempt in the past).",
                backlog.due as f64,
            ),
            (
                "uchat_billing_oldest_due_call_age_seconds",
                "How long the longest-waiting due call has been due; 0 when none is.",
                backlog.oldest_due_age_seconds.unwrap_or(0.0),
            ),
            (
                "uchat_billing_calls_held",
                "Partner calls held for an operator.",
                backlog.held as f64,
            ),
            (
                "uchat_billing_calls_dead",
                "Partner calls that gave up; an operator retries or cancels them.",
                backlog.dead as f64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// A value kept per combination of `N` label values.
struct Family<T, const N: usize> {
    name: &'static str,
    help: &'static str,
    label_names: [&'static str; N],
    series: Mutex<BTreeMap<[String; N], T>>,
}

impl<T: Sample + Default, const N: usize> Family<T, N> {
    fn new(name: &'static str, help: &'static str, label_names: [&'static str; N]) -> Self {
        Family {
            name,
            help,
            label_names,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn update(&self, labels: [&str; N], change: impl FnOnce(&mut T)) {
        // A panic elsewhere while holding the lock leaves the numbers usable: keep counting.
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        change(series.entry(labels.map(str::to_owned)).or_default());
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} {}",
            self.name,
            self.help,
            self.name,
            T::TYPE
        );
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (values, sample) in series.iter() {
            let labels: Vec<String> = self
                .label_names
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect();
            sample.render(self.name, &labels, out);
        }
    }
}

/// A kind of metric: how it is declared and how one series of it is written.
trait Sample {
    const TYPE: &'static str;
    fn render(&self, name: &str, labels: &[String], out: &mut String);
}

impl Sample for u64 {
    const TYPE: &'static str = "counter";

    fn render(&self, name: &str, labels: &[String], out: &mut String) {
        let _ = writeln!(out, "{name}{} {self}", braces(labels));
    }
}

#[derive(Default)]
struct Histogram {
    /// Observations per bucket of `LATENCY_BUCKETS`, each counted once (not cumulative).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[bucket] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

impl Sample for Histogram {
    const TYPE: &'static str = "histogram";

    fn render(&self, name: &str, labels: &[String], out: &mut String) {
        let mut cumulative = 0;
        let bounds = LATENCY_BUCKETS.iter().map(f64::to_string);
        let counts = self.buckets.iter().map(|count| {
            cumulative += count;
            cumulative
        });
        for (le, count) in bounds
            .zip(counts)
            .chain(std::iter::once(("+Inf".to_owned(), self.count)))
        {
            let mut with_le = labels.to_vec();
            with_le.push(format!("le=\"{le}\""));
            let _ = writeln!(out, "{name}_bucket{} {count}", braces(&with_le));
        }
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

fn braces(labels: &[String]) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", labels.join(","))
    }
}

/// A label value as the text format requires: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog() -> Backlog {
        Backlog {
            due: 3,
            oldest_due_age_seconds: Some(12.5),
            held: 1,
            dead: 2,
        }
    }

    /// The line for `series`, e.g. `name{labels}`, and its value.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.parse().unwrap())
    }

    #[test]
    fn partner_calls_are_counted_by_kind_and_outcome_with_their_latency() {
        let metrics = Metrics::default();
        metrics.record_partner_call("create", "succeeded", Duration::from_millis(30));
        metrics.record_partner_call("create", "succeeded", Duration::from_millis(700));
        metrics.record_partner_call("create", "retry", Duration::from_secs(40));
        metrics.record_partner_call("pause", "dead", Duration::from_millis(2));
        let text = metrics.render(&backlog());

        let calls = "uchat_billing_partner_calls_total";
        assert_eq!(
            value(
                &text,
                &format!(r#"{calls}{{kind="create",outcome="succeeded"}}"#)
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                &format!(r#"{calls}{{kind="create",outcome="retry"}}"#)
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&text, &format!(r#"{calls}{{kind="pause",outcome="dead"}}"#)),
            Some(1.0)
        );

        let latency = "uchat_billing_partner_call_duration_seconds";
        let bucket = |le: &str| {
            value(
                &text,
                &format!(r#"{latency}_bucket{{kind="create",le="{le}"}}"#),
            )
        };
        assert_eq!(bucket("0.025"), Some(0.0));
        assert_eq!(bucket("0.05"), Some(1.0));
        assert_eq!(bucket("1"), Some(2.0));
        assert_eq!(bucket("30"), Some(2.0), "40 s is beyond the last bound");
        assert_eq!(bucket("+Inf"), Some(3.0));
        assert_eq!(
            value(&text, &format!(r#"{latency}_count{{kind="create"}}"#)),
            Some(3.0)
        );
        let sum = value(&text, &format!(r#"{latency}_sum{{kind="create"}}"#)).unwrap();
        assert!((sum - 40.73).abs() < 1e-9, "{sum}");
        assert!(text.contains(&format!("# TYPE {latency} histogram")));
        assert!(text.contains(&format!("# TYPE {calls} counter")));
    }

    #[test]
    fn webhooks_are_counted_and_timed_and_the_backlog_is_shown() {
        let metrics = Metrics::default();
        metrics.record_webhook("invoice.paid", "stored", Duration::from_millis(4));
        metrics.record_webhook("invoice.paid", "duplicate", Duration::from_millis(3));
        let text = metrics.render(&backlog());

        assert_eq!(
            value(
                &text,
                r#"uchat_billing_webhooks_total{type="invoice.paid",outcome="stored"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "uchat_billing_webhook_duration_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                r#"uchat_billing_webhook_duration_seconds_bucket{le="0.005"}"#
            ),
            Some(2.0)
        );
        assert_eq!(value(&text, "uchat_billing_calls_due"), Some(3.0));
        assert_eq!(
            value(&text, "uchat_billing_oldest_due_call_age_seconds"),
            Some(12.5)
        );
        assert_eq!(value(&text, "uchat_billing_calls_held"), Some(1.0));
        assert_eq!(value(&text, "uchat_billing_calls_dead"), Some(2.0));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.record_webhook("a\"b\\c\nd", "rejected", Duration::ZERO);
        let text = metrics.render(&backlog());
        assert!(text.contains(r#"type="a\"b\\c\nd""#), "{text}");
    }
}
