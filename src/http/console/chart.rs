//! Bar charts as inline SVG, drawn on the server: no script, and a text summary for
//! screen readers.

use chrono::{DateTime, Duration, Timelike, Utc};
use maud::{html, Markup};

use crate::db::activity::HourCount;

/// One bar: what it counts and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: i64,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
/// Room for the axis labels.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;

/// A bar chart captioned `caption`; every `label_every`th bar is labelled on the axis.
pub fn bars(caption: &str, bars: &[Bar], label_every: usize) -> Markup {
    let max = bars.iter().map(|bar| bar.value).max().unwrap_or(0).max(1);
    let total: i64 = bars.iter().map(|bar| bar.value).sum();
    let step = (WIDTH - LEFT) / bars.len().max(1) as f64;
    let plot = HEIGHT - BOTTOM;
    let summary = format!("{caption}: {total} in all, at most {max} in one bar");
    html! {
        figure.chart {
            figcaption { (caption) }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary) {
                line.axis x1=(LEFT) y1=(plot) x2=(WIDTH) y2=(plot) {}
                text.tick x=(LEFT - 4.0) y="10" text-anchor="end" { (max) }
                text.tick x=(LEFT - 4.0) y=(plot) text-anchor="end" { "0" }
                @for (i, bar) in bars.iter().enumerate() {
                    @let height = plot * bar.value as f64 / max as f64;
                    @let x = LEFT + i as f64 * step;
                    rect.bar x=(x + step * 0.1) y=(plot - height) width=(step * 0.8) height=(height) {
                        title { (bar.label) ": " (bar.value) }
                    }
                    @if label_every > 0 && i % label_every == 0 {
                        text.tick x=(x) y=(HEIGHT - 6.0) { (bar.label) }
                    }
                }
            }
        }
    }
}

/// One bar per hour from `since` for `hours` hours, labelled by the hour (UTC); hours
/// missing from `counts` are zero.
pub fn hourly(counts: &[HourCount], since: DateTime<Utc>, hours: i64) -> Vec<Bar> {
    (0..hours)
        .map(|i| {
            let hour = since + Duration::hours(i);
            let value = counts
                .iter()
                .find(|count| count.hour == hour)
                .map_or(0, |count| count.count);
            let label = if hour.hour() == 0 {
                hour.format("%b %d").to_string()
            } else {
                hour.format("%H:00").to_string()
            };
            Bar { label, value }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn hours_without_counts_are_zero_and_midnight_names_the_day() {
        let since = Utc.with_ymd_and_hms(2026, 12, 3, 23, 0, 0).unwrap();
        let counts = [HourCount {
            hour: since + Duration::hours(1),
            count: 7,
        }];
        let bars = hourly(&counts, since, 3);
        let seen: Vec<(&str, i64)> = bars.iter().map(|b| (b.label.as_str(), b.value)).collect();
        assert_eq!(seen, [("23:00", 0), ("Dec 04", 7), ("01:00", 0)]);
    }

    #[test]
    fn the_tallest_bar_fills_the_plot_and_the_summary_gives_the_figures() {
        let bars_ = [
            Bar {
                label: "a".into(),
                value: 2,
            },
            Bar {
                label: "b".into(),
                value: 4,
            },
        ];
        let svg = bars("Calls", &bars_, 1).into_string();
        assert!(
            svg.contains(r#"aria-label="Calls: 6 in all, at most 4 in one bar""#),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(r#"height="{}""#, HEIGHT - BOTTOM)),
            "{svg}"
        );
        assert!(svg.contains("<title>b: 4</title>"));
    }

    #[test]
    fn an_empty_chart_draws_no_bar() {
        let svg = bars("Nothing", &[], 1).into_string();
        assert!(!svg.contains("<rect"));
        assert!(svg.contains("0 in all"));
    }
}
