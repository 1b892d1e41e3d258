//! The console's page shell and the small pieces every page uses.

use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::{Operator, CSRF_FIELD};
use crate::http::ApiError;

/// The console's sections, as the navigation names them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Orders,
    Calls,
    /// Not in the navigation: sign-in and error pages.
    None,
}

const NAVIGATION: [(Section, &str, &str); 3] = [
    (Section::Overview, "/console", "Overview"),
    (Section::Orders, "/console/orders", "Orders"),
    (Section::Calls, "/console/calls", "Calls"),
];

/// A whole page: `operator` is `None` on pages shown before sign-in.
pub fn page(
    title: &str,
    section: Section,
    operator: Option<&Operator>,
    main: Markup,
) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · uchat-billing console" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "uchat-billing" }
                    @if let Some(operator) = operator {
                        nav aria-label="Console" {
                            ul {
                                @for (target, href, name) in NAVIGATION {
                                    li {
                                        a href=(href) aria-current=[(target == section).then_some("page")] { (name) }
                                    }
                                }
                            }
                        }
                        form.sign-out method="post" action="/console/sign-out" {
                            (csrf_field(operator))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { h1 { (title) } (main) }
            }
        }
    };
    Html(page.into_string())
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(operator: &Operator) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(operator.csrf); }
}

/// A one-button form posting to `action`.
pub fn action_button(operator: &Operator, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(operator))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A status as a badge: its text, coloured by what it asks of the operator.
pub fn status(status: impl ToString) -> Markup {
    let status = status.to_string();
    let tone = match status.as_str() {
        "dead" | "failed" | "needs_attention" => "bad",
        "held" | "pending" | "running" | "refunded" => "wait",
        "succeeded" | "processed" | "active" => "good",
        _ => "plain",
    };
    html! { span class={ "badge " (tone) } { (status.replace('_', " ")) } }
}

pub fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// `n` of a thing: `1 call`, `2 calls`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A length of time as people read it: `850 ms`, `12 s`, `4 min`, `3 h`, `2 d`.
pub fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 1.0 => format!("{} ms", (s * 1000.0).round()),
        s if s < 120.0 => format!("{} s", s.round()),
        s if s < 3600.0 => format!("{} min", (s / 60.0).round()),
        s if s < 172_800.0 => format!("{} h", (s / 3600.0).round()),
        s => format!("{} d", (s / 86_400.0).round()),
    }
}

/// `path` with the given query parameters; those without a value are left out.
pub fn link_with(path: &str, parameters: &[(&str, Option<&str>)]) -> String {
    let given: Vec<(&str, &str)> = parameters
        .iter()
        .filter_map(|(name, value)| value.map(|value| (*name, value)))
        .collect();
    let query = serde_urlencoded::to_string(given).expect("pairs of text encode");
    format!("{path}?{query}")
}

/// An error as a page, with the status the API would answer.
pub fn error_page(error: ApiError) -> Response {
    let status = error.status();
    let title = status.canonical_reason().unwrap_or("Error");
    let page = page(
        title,
        Section::None,
        None,
        html! {
            p.notice.bad role="alert" { (error.to_string()) }
            p { a href="/console" { "Back to the console" } }
        },
    );
    (status, page).into_response()
}

/// An error from a console handler, answered as a page.
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(source) = &self.0 {
            tracing::error!(error = ?source, "console request failed");
        }
        error_page(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        let cases = [
            (0.25, "250 ms"),
            (12.4, "12 s"),
            (600.0, "10 min"),
            (10_800.0, "3 h"),
            (259_200.0, "3 d"),
        ];
        for (seconds, text) in cases {
            assert_eq!(duration(seconds), text);
        }
    }
}
