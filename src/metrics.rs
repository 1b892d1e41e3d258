//! Prometheus metrics, through `prometheus-client`: counters and histograms kept in memory
//! since start, and the delivery backlog read from the database at each scrape, in
//! Prometheus' text format (0.0.4).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::db::calls::{AttemptOutcome, Backlog};
use crate::partner::CallKind;
use crate::stripe::decode;

pub use prometheus_text::CONTENT_TYPE;

/// Upper bounds, in seconds, of the latency histograms' buckets: from a quick insert to a
/// partner call near its timeout.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    r#type: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

type LatencyFamily<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A family that is described (`# HELP`, `# TYPE`) before its first series too, as it
/// always was: the registry leaves an empty family out.
#[derive(Debug)]
struct Described<F>(F);

impl<F: EncodeMetric> EncodeMetric for Described<F> {
    fn encode(&self, encoder: MetricEncoder) -> std::fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// Everything the service counts while it runs. One per process, shared through `AppState`
/// and handed to the delivery worker.
pub struct Metrics {
    /// The metrics below (handles on the same values), in the order they render.
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    webhook_latency: Histogram,
    partner_calls: Family<CallLabels, Counter>,
    partner_latency: LatencyFamily<KindLabel>,
    /// The partner's credit balance as last read; `None` until a read succeeds, so that
    /// no made-up zero sets off a low-credit alert.
    partner_credit: Mutex<Option<f64>>,
    events_recovered: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let webhooks = Family::default();
        let webhook_latency = latency();
        let partner_calls = Family::default();
        let partner_latency: LatencyFamily<KindLabel> = Family::new_with_constructor(latency);
        let events_recovered = Counter::default();
        let mut registry = Registry::default();
        // Counters are named without `_total`: the encoder adds it. Help texts without
        // the final period: the registry adds it.
        registry.register(
            "uchat_billing_webhooks",
            "Stripe webhook requests, by event type and outcome",
            Described(webhooks.clone()),
        );
        registry.register(
            "uchat_billing_webhook_duration_seconds",
            "Time to verify and store a Stripe webhook",
            webhook_latency.clone(),
        );
        registry.register(
            "uchat_billing_partner_calls",
            "UChat Partner API call attempts, by call kind and outcome",
            Described(partner_calls.clone()),
        );
        registry.register(
            "uchat_billing_partner_call_duration_seconds",
            "UChat Partner API call latency, by call kind",
            Described(partner_latency.clone()),
        );
        registry.register(
            "uchat_billing_events_recovered",
            "Stripe events the webhook never delivered, stored by this process's backfills",
            events_recovered.clone(),
        );
        Metrics {
            registry,
            webhooks,
            webhook_latency,
            partner_calls,
            partner_latency,
            partner_credit: Mutex::new(None),
            events_recovered,
        }
    }
}

impl Metrics {
    /// One webhook request: its event type (`None` when it was refused before its
    /// signature held), what became of it (`stored`, `duplicate`, `rejected`, `shed`,
    /// `error`) and how long intake took. Types the service does not act on are counted
    /// as `other`, so the label takes a bounded set of values whatever Stripe, or a
    /// forger, sends.
    pub fn record_webhook(&self, event_type: Option<&str>, outcome: &str, latency: Duration) {
        let event_type = match event_type {
            None => "unverified",
            Some(event_type) if decode::acts_on(event_type) => event_type,
            Some(_) => "other",
        };
        let labels = WebhookLabels {
            r#type: event_type.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.webhooks.get_or_create(&labels).inc();
        self.webhook_latency.observe(latency.as_secs_f64());
    }

    /// One attempt at a partner call: its kind, its outcome as the attempts table names
    /// it and how long the partner took to answer.
    pub fn record_partner_call(&self, kind: CallKind, outcome: AttemptOutcome, latency: Duration) {
        let kind = kind.to_string();
        let labels = CallLabels {
            kind: kind.clone(),
            outcome: outcome.to_string(),
        };
        self.partner_calls.get_or_create(&labels).inc();
        self.partner_latency
            .get_or_create(&KindLabel { kind })
            .observe(latency.as_secs_f64());
    }

    /// The partner's credit balance, as just read from UChat.
    pub fn set_partner_credit(&self, credit: f64) {
        *self
            .partner_credit
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(credit);
    }

    /// The partner's credit balance as last read; `None` before the first read.
    pub fn partner_credit(&self) -> Option<f64> {
        *self
            .partner_credit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Events a backfill recovered.
    pub fn record_recovered(&self, events: usize) {
        self.events_recovered.inc_by(events as u64);
    }

    /// Everything in Prometheus' text format, with the gauges read just now: the backlog,
    /// and the orders paid but not provisioned in time.
    pub fn render(&self, backlog: &Backlog, paid_not_provisioned: i64) -> String {
        let mut gauges = Registry::default();
        gauges.register(
            "uchat_billing_calls_due",
            "Partner calls due now (pending or held, next attempt in the past)",
            ConstGauge::new(backlog.due),
        );
        gauges.register(
            "uchat_billing_oldest_due_call_age_seconds",
            "How long the longest-waiting due call has been due; 0 when none is",
            ConstGauge::new(backlog.oldest_due_age_seconds.unwrap_or(0.0)),
        );
        gauges.register(
            "uchat_billing_calls_held",
            "Partner calls held for an operator",
            ConstGauge::new(backlog.held),
        );
        gauges.register(
            "uchat_billing_calls_dead",
            "Partner calls that gave up; an operator retries or cancels them",
            ConstGauge::new(backlog.dead),
        );
        if let Some(credit) = self.partner_credit() {
            gauges.register(
                "uchat_billing_partner_credit",
                "The UChat partner's prepaid credit balance, as last read",
                ConstGauge::new(credit),
            );
        }
        gauges.register(
            "uchat_billing_paid_not_provisioned",
            "Orders paid (or trialing) longer ago than PAID_NOT_PROVISIONED_MINUTES that have no workspace yet",
            ConstGauge::new(paid_not_provisioned),
        );
        let mut text = String::new();
        for registry in [&self.registry, &gauges] {
            prometheus_text::encode(&mut text, registry).expect("writing to a String cannot fail");
        }
        text
    }
}

/// What reconciliation and UChat's webhooks found, read from the database at each scrape.
pub struct Watch {
    /// In the newest reconciliation of every live order.
    pub orders_in_drift: i64,
    pub credit_alert: bool,
}

/// The gauges of [`Watch`], in Prometheus' text format, to follow [`Metrics::render`].
pub fn render_watch(watch: &Watch) -> String {
    let mut gauges = Registry::default();
    gauges.register(
        "uchat_billing_orders_in_drift",
        "Orders whose Stripe subscription or UChat workspace disagreed with them in the last reconciliation of every live order",
        ConstGauge::new(watch.orders_in_drift),
    );
    gauges.register(
        "uchat_billing_partner_credit_alert",
        "1 while UChat says the partner's credit is not enough (no_enough_credit, or a call held for it) and no credit-spending call has succeeded since",
        ConstGauge::new(i64::from(watch.credit_alert)),
    );
    let mut text = String::new();
    prometheus_text::encode(&mut text, &gauges).expect("writing to a String cannot fail");
    text
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
        let (create, pause) = (CallKind::Create, CallKind::Pause);
        let (succeeded, retry) = (AttemptOutcome::Succeeded, AttemptOutcome::Retry);
        metrics.record_partner_call(create, succeeded, Duration::from_millis(30));
        metrics.record_partner_call(create, succeeded, Duration::from_millis(700));
        metrics.record_partner_call(create, retry, Duration::from_secs(40));
        metrics.record_partner_call(pause, AttemptOutcome::Dead, Duration::from_millis(2));
        let text = metrics.render(&backlog(), 0);

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
        metrics.record_webhook(Some("invoice.paid"), "stored", Duration::from_millis(4));
        metrics.record_webhook(Some("invoice.paid"), "duplicate", Duration::from_millis(3));
        let text = metrics.render(&backlog(), 0);

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
    fn recovered_events_are_counted_and_paid_orders_without_a_workspace_shown() {
        let metrics = Metrics::default();
        metrics.record_recovered(3);
        metrics.record_recovered(0);
        let text = metrics.render(&backlog(), 2);
        assert_eq!(
            value(&text, "uchat_billing_events_recovered_total"),
            Some(3.0)
        );
        assert_eq!(
            value(&text, "uchat_billing_paid_not_provisioned"),
            Some(2.0)
        );
        assert!(text.contains("# TYPE uchat_billing_paid_not_provisioned gauge\n"));
    }

    #[test]
    fn every_family_is_described_before_its_first_series() {
        let text = Metrics::default().render(&backlog(), 0);
        for family in [
            "uchat_billing_webhooks_total counter",
            "uchat_billing_webhook_duration_seconds histogram",
            "uchat_billing_partner_calls_total counter",
            "uchat_billing_partner_call_duration_seconds histogram",
            "uchat_billing_calls_due gauge",
        ] {
            assert!(text.contains(&format!("# TYPE {family}\n")), "{text}");
        }
    }

    #[test]
    fn the_partner_credit_is_shown_once_read() {
        let metrics = Metrics::default();
        let gauge = "uchat_billing_partner_credit";
        assert_eq!(value(&metrics.render(&backlog(), 0), gauge), None);
        metrics.set_partner_credit(250.75);
        let text = metrics.render(&backlog(), 0);
        assert_eq!(value(&text, gauge), Some(250.75));
        assert!(text.contains(&format!("# TYPE {gauge} gauge\n")), "{text}");
    }

    #[test]
    fn types_not_acted_on_are_counted_as_other() {
        let metrics = Metrics::default();
        for event_type in ["customer.created", "a\"b\\c\nd", "x".repeat(500).as_str()] {
            metrics.record_webhook(Some(event_type), "stored", Duration::ZERO);
        }
        metrics.record_webhook(None, "rejected", Duration::ZERO);
        let text = metrics.render(&backlog(), 0);
        let mut series: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("uchat_billing_webhooks_total{"))
            .collect();
        series.sort_unstable();
        assert_eq!(
            series,
            [
                r#"uchat_billing_webhooks_total{type="other",outcome="stored"} 3"#,
                r#"uchat_billing_webhooks_total{type="unverified",outcome="rejected"} 1"#,
            ]
        );
    }
}
