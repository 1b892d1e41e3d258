//! Orders: the search, an order with its timeline, and reprocessing one of its events.

use axum::extract::State;
use axum::response::{Html, Redirect};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::view::{self, PageError, Section};
use super::{act, Action, Operator};
use crate::db::calls::CallStatus;
use crate::db::events::{self, EventRecord, EventStatus};
use crate::db::orders::{self, OrderFilter, OrderSummary};
use crate::http::admin::{self, CallHistory, OrderDetail, Page, PageParams, TimelineEntry};
use crate::http::extract::{optional, optional_variant, Id, Query};
use crate::http::{ApiError, AppState};
use crate::plan::OrderStatus;

#[derive(Deserialize)]
pub struct Search {
    /// An email, a Stripe customer, a workspace id or any other Stripe id.
    #[serde(default, deserialize_with = "optional")]
    q: Option<String>,
    #[serde(default, deserialize_with = "optional_variant")]
    status: Option<OrderStatus>,
}

/// The admin API's filter that the search text names: the text's shape tells which.
fn filter(q: Option<&str>, status: Option<OrderStatus>) -> OrderFilter<'_> {
    let mut filter = OrderFilter {
        status,
        ..OrderFilter::default()
    };
    match q {
        None => {}
        Some(q) if q.contains('@') => filter.email = Some(q),
        Some(q) if q.starts_with("cus_") => filter.customer = Some(q),
        Some(q) => match q.parse() {
            Ok(workspace_id) => filter.workspace_id = Some(workspace_id),
            Err(_) => filter.stripe_id = Some(q),
        },
    }
    filter
}

pub async fn list(
    State(state): State<AppState>,
    operator: Operator,
    search: Result<Query<Search>, ApiError>,
    page: Result<Query<PageParams>, ApiError>,
) -> Result<Html<String>, PageError> {
    let (Query(search), Query(page)) = (search?, page?);
    let filter = filter(search.q.as_deref(), search.status);
    let rows = orders::list(&state.admin_db, &filter, page.before(), page.fetch()).await?;
    let orders = Page::new(rows, &page, |order| order.id);
    let next = orders.next_cursor.as_deref().map(|cursor| {
        view::link_with(
            "/console/orders",
            &[
                ("q", search.q.as_deref()),
                ("status", search.status.map(|s| s.to_string()).as_deref()),
                ("cursor", Some(cursor)),
            ],
        )
    });
    Ok(view::page(
        "Orders",
        Section::Orders,
        Some(&operator),
        html! {
            (search_form(&search))
            (orders_table(&orders.items))
            @if let Some(next) = next {
                nav.pages aria-label="Pages" { a href=(next) rel="next" { "Older orders →" } }
            }
        },
    ))
}

fn search_form(search: &Search) -> Markup {
    html! {
        form.search method="get" action="/console/orders" role="search" {
            div.field {
                label for="q" { "Email, customer, workspace or Stripe id" }
                input #q type="search" name="q" value=[search.q.as_deref()]
                    placeholder="ada@example.com, cus_…, 4242, sub_…";
            }
            div.field {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for status in OrderStatus::ALL {
                        option value=(status) selected[search.status == Some(status)] {
                            (status.to_string().replace('_', " "))
                        }
                    }
                }
            }
            button type="submit" { "Search" }
        }
    }
}

fn orders_table(orders: &[OrderSummary]) -> Markup {
    html! {
        @if orders.is_empty() {
            p.empty { "No orders match." }
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Order" } th scope="col" { "Status" }
                        th scope="col" { "Needs attention because" } th scope="col" { "Buyer" }
                        th scope="col" { "Workspace" } th scope="col" { "Last activity" }
                    } }
                    tbody {
                        @for order in orders {
                            tr {
                                td { a href={ "/console/orders/" (order.id) } { "Order " (order.id) } }
                                td { (view::status(order.status)) }
                                td { (order.attention.as_deref().unwrap_or("–")) }
                                td {
                                    (order.email.as_deref().unwrap_or("–"))
                                    @if let Some(customer) = &order.customer { br; small { (customer) } }
                                }
                                td { (workspace(order.workspace_id)) }
                                td { (view::time(order.updated_at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn workspace(id: Option<i64>) -> Markup {
    html! { @if let Some(id) = id { (id) } @else { "not yet" } }
}

pub async fn show(
    State(state): State<AppState>,
    operator: Operator,
    id: Result<Id, ApiError>,
) -> Result<Html<String>, PageError> {
    let Id(id) = id?;
    let detail = admin::detail(&state.admin_db, id).await?;
    Ok(view::page(
        &format!("Order {id}"),
        Section::Orders,
        Some(&operator),
        order_page(&operator, &detail, state.reconciler.is_some()),
    ))
}

/// `reconcilable`: a partner to read is configured, so the order can be reconciled.
fn order_page(operator: &Operator, detail: &OrderDetail, reconcilable: bool) -> Markup {
    let order = &detail.order;
    let summary = &order.summary;
    // Only then can a processed event be reprocessed (see `db::events::reprocess`).
    let planning_needs_attention =
        summary.status == OrderStatus::NeedsAttention && summary.blocked_status.is_none();
    html! {
        section aria-labelledby="facts" {
            h2 #facts { "Facts" }
            dl.facts {
                dt { "Status" } dd { (view::status(summary.status)) }
                @if let Some(attention) = &summary.attention {
                    dt { "Needs attention because" } dd.attention { (attention) }
                }
                @if let Some(blocked) = summary.blocked_status {
                    dt { "Status once unblocked" } dd { (view::status(blocked)) }
                }
                dt { "Buyer" } dd { (summary.name.as_deref().unwrap_or("–")) " " (summary.email.as_deref().unwrap_or("")) }
                dt { "Stripe customer" } dd { (summary.customer.as_deref().unwrap_or("–")) }
                dt { "Workspace" } dd { (workspace(summary.workspace_id)) }
                dt { "Stripe ids" } dd { (summary.stripe_ids.join(", ")) }
                dt { "Created" } dd { (view::time(summary.created_at)) }
                dt { "Last activity" } dd { (view::time(summary.updated_at)) }
            }
            @if reconcilable { (super::reconcile::button(operator, summary.id)) }
            @if !order.notes.is_empty() {
                h3 { "Notes" }
                ul { @for note in &order.notes { li { (note) } } }
            }
        }
        section aria-labelledby="provisioned" {
            h2 #provisioned { "Provisioned in UChat" }
            (fields(&order.provisioned))
            details {
                summary { "What Stripe told us" }
                (fields(&order.facts))
            }
        }
        section aria-labelledby="timeline" {
            h2 #timeline { "Timeline" }
            @if detail.timeline.is_empty() {
                p.empty { "Nothing happened to this order yet." }
            }
            ol.timeline {
                @for entry in &detail.timeline {
                    @match entry {
                        TimelineEntry::Event(event) => (event_entry(operator, event, planning_needs_attention)),
                        TimelineEntry::Call(history) => (call_entry(operator, history)),
                    }
                }
            }
        }
    }
}

/// An object's fields as a list, each value as plain text where it is one; anything
/// else as JSON.
fn fields(value: &Value) -> Markup {
    let Value::Object(fields) = value else {
        return json(value);
    };
    html! {
        @if fields.is_empty() { p.empty { "Nothing yet." } }
        dl.facts {
            @for (name, value) in fields {
                dt { (name.replace('_', " ")) }
                dd {
                    @match value {
                        Value::String(text) => (text),
                        Value::Null => "–",
                        Value::Object(inner) if inner.is_empty() => "none",
                        Value::Array(items) if items.is_empty() => "none",
                        Value::Object(_) | Value::Array(_) => code.compact { (value) },
                        scalar => (scalar),
                    }
                }
            }
        }
    }
}

fn json(value: &Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { code { (text) } } }
}

fn event_entry(operator: &Operator, event: &EventRecord, planning_needs_attention: bool) -> Markup {
    let reprocessable = event.status == EventStatus::Failed
        || (event.status == EventStatus::Processed && planning_needs_attention);
    html! {
        li.entry.event id={ "event-" (event.id) } {
            div.entry-head {
                span.kind { "Stripe event" }
                strong { (event.event_type) }
                (view::status(event.status))
                (view::time(event.received_at))
            }
            p.meta { code { (event.stripe_event_id) } " · tries: " (event.attempts) }
            @if let Some(error) = &event.error { p.error { (error) } }
            @if reprocessable {
                (view::action_button(operator, &format!("/console/events/{}/reprocess", event.id), "Reprocess event", "primary"))
            }
        }
    }
}

fn call_entry(operator: &Operator, history: &CallHistory) -> Markup {
    let call = &history.call;
    let retryable = matches!(call.status, CallStatus::Dead | CallStatus::Held);
    let cancelable = matches!(
        call.status,
        CallStatus::Pending | CallStatus::Held | CallStatus::Dead
    );
    html! {
        li.entry.call id={ "call-" (call.id) } {
            div.entry-head {
                span.kind { "Partner call " (call.position) }
                strong { (call.kind) }
                (view::status(call.status))
                (view::time(call.created_at))
            }
            p.meta {
                "Call " (call.id) " · tries: " (call.attempts)
                @if matches!(call.status, CallStatus::Pending | CallStatus::Held) {
                    " · next try: " (view::time(call.next_attempt_at))
                }
                @if let Some(finished) = call.finished_at { " · finished: " (view::time(finished)) }
            }
            @if let Some(error) = &call.last_error { p.error { (error) } }
            details {
                summary { "Request body" }
                (json(&call.body))
            }
            @if !history.attempt_log.is_empty() {
                div.scroll {
                    table.attempts {
                        caption { "Tries of call " (call.id) }
                        thead { tr {
                            th scope="col" { "#" } th scope="col" { "Started" } th scope="col" { "Took" }
                            th scope="col" { "HTTP" } th scope="col" { "Outcome" } th scope="col" { "Answer" }
                        } }
                        tbody {
                            @for attempt in &history.attempt_log {
                                tr {
                                    td { (attempt.attempt) }
                                    td { (view::time(attempt.started_at)) }
                                    td { (view::duration(f64::from(attempt.duration_ms) / 1000.0)) }
                                    td { @if let Some(status) = attempt.http_status { (status) } @else { "–" } }
                                    td { (view::status(attempt.outcome)) }
                                    td.excerpt {
                                        @if let Some(error) = &attempt.error { (error) br; }
                                        @if let Some(excerpt) = &attempt.response_excerpt { code { (excerpt) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if retryable || cancelable {
                div.actions {
                    @if retryable {
                        (view::action_button(operator, &format!("/console/calls/{}/retry", call.id), "Retry call", "primary"))
                    }
                    @if cancelable {
                        (view::action_button(operator, &format!("/console/calls/{}/cancel", call.id), "Cancel call", "danger"))
                    }
                }
            }
        }
    }
}

pub async fn reprocess(
    State(state): State<AppState>,
    id: Result<Id, ApiError>,
    _: Action,
) -> Result<Redirect, PageError> {
    act(
        &state,
        ("event", "reprocessed"),
        id,
        events::reprocess,
        |event| match event.order_id {
            Some(order_id) => format!("/console/orders/{order_id}#event-{}", event.id),
            None => "/console/orders".to_owned(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_text_picks_the_filter() {
        let email = filter(Some("Ada@Example.com"), None);
        assert_eq!(email.email, Some("Ada@Example.com"));
        assert_eq!(filter(Some("cus_123"), None).customer, Some("cus_123"));
        assert_eq!(filter(Some("4242"), None).workspace_id, Some(4242));
        for stripe_id in ["sub_123", "cs_test_a1", "pi_3", "in_9", "ch_1"] {
            assert_eq!(filter(Some(stripe_id), None).stripe_id, Some(stripe_id));
        }
        let status = filter(None, Some(OrderStatus::Active));
        assert_eq!(status.status, Some(OrderStatus::Active));
        assert_eq!((status.email, status.stripe_id), (None, None));
    }
}
