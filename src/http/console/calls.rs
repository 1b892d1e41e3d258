//! Partner calls by status, and the operator's retry and cancel: of one call, or a retry
//! of many dead calls at once after a confirmation.

use axum::extract::State;
use axum::response::{Html, Redirect};
use maud::{html, Markup};
use serde::Deserialize;

use super::view::{self, PageError, Section};
use super::{act, Action, Operator};
use crate::db::calls::{self, CallRecord, CallStatus};
use crate::db::Change;
use crate::http::admin::{Page, PageParams, MAX_LIMIT};
use crate::http::extract::{optional_variant, Id, Query};
use crate::http::{ApiError, AppState};

/// The statuses an operator looks at, as tabs.
const TABS: [CallStatus; 3] = [CallStatus::Dead, CallStatus::Held, CallStatus::Pending];

#[derive(Deserialize)]
pub struct Tab {
    #[serde(default, deserialize_with = "optional_variant")]
    status: Option<CallStatus>,
}

pub async fn list(
    State(state): State<AppState>,
    operator: Operator,
    tab: Result<Query<Tab>, ApiError>,
    page: Result<Query<PageParams>, ApiError>,
) -> Result<Html<String>, PageError> {
    let (Query(tab), Query(page)) = (tab?, page?);
    let status = tab.status.unwrap_or(CallStatus::Dead);
    let rows = calls::list(&state.admin_db, Some(status), page.before(), page.fetch()).await?;
    let calls = Page::new(rows, &page, |call| call.id);
    let next = calls.next_cursor.as_deref().map(|cursor| {
        let status = status.to_string();
        view::link_with(
            "/console/calls",
            &[("status", Some(&status)), ("cursor", Some(cursor))],
        )
    });
    Ok(view::page(
        "Partner calls",
        Section::Calls,
        Some(&operator),
        html! {
            nav.tabs aria-label="Call status" {
                ul {
                    @for tab in TABS {
                        li { a href={ "/console/calls?status=" (tab) } aria-current=[(tab == status).then_some("page")] { (tab) } }
                    }
                }
            }
            @if calls.items.is_empty() {
                p.empty { "No " (status) " calls." }
            } @else if status == CallStatus::Dead {
                // Selected calls go to the confirmation first: nothing changes on this GET.
                form method="get" action="/console/calls/retry" {
                    (calls_table(&calls.items, status))
                    button.primary type="submit" { "Retry selected calls…" }
                }
            } @else {
                (calls_table(&calls.items, status))
            }
            @if let Some(next) = next {
                nav.pages aria-label="Pages" { a href=(next) rel="next" { "Older calls →" } }
            }
        },
    ))
}

/// The calls of one status; dead ones can be selected for a retry.
fn calls_table(calls: &[CallRecord], status: CallStatus) -> Markup {
    let selectable = status == CallStatus::Dead;
    let when = if selectable { "Dead since" } else { "Next try" };
    html! {
        div.scroll {
            table {
                thead { tr {
                    @if selectable { th scope="col" { "Retry" } }
                    th scope="col" { "Call" } th scope="col" { "Order" } th scope="col" { "Kind" }
                    th scope="col" { "Tries" } th scope="col" { (when) } th scope="col" { "Last error" }
                } }
                tbody {
                    @for call in calls {
                        tr {
                            @if selectable {
                                td {
                                    input #{ "select-" (call.id) } type="checkbox" name="call" value=(call.id) checked;
                                    label.visually-hidden for={ "select-" (call.id) } { "Retry call " (call.id) }
                                }
                            }
                            td { (call.id) }
                            td { a href={ "/console/orders/" (call.order_id) "#call-" (call.id) } { "Order " (call.order_id) } }
                            td { (call.kind) }
                            td { (call.attempts) }
                            td {
                                @if selectable { (view::time(call.finished_at.unwrap_or(call.next_attempt_at))) }
                                @else { (view::time(call.next_attempt_at)) }
                            }
                            td.excerpt { (call.last_error.as_deref().unwrap_or("–")) }
                        }
                    }
                }
            }
        }
    }
}

/// The call ids a form or query names as `call`, at most a page's worth.
fn call_ids<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<i64>, ApiError> {
    let ids = values
        .map(|value| value.parse::<i64>().ok().filter(|id| *id > 0))
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| ApiError::BadRequest("`call` must be a call id".into()))?;
    if ids.len() > MAX_LIMIT as usize {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_LIMIT} calls at once"
        )));
    }
    Ok(ids)
}

pub async fn confirm_retry(
    operator: Operator,
    query: Result<Query<Vec<(String, String)>>, ApiError>,
) -> Result<Html<String>, PageError> {
    let Query(query) = query?;
    let ids = call_ids(
        query
            .iter()
            .filter(|(name, _)| name == "call")
            .map(|(_, value)| value.as_str()),
    )?;
    Ok(view::page(
        "Retry dead calls",
        Section::Calls,
        Some(&operator),
        html! {
            @if ids.is_empty() {
                p.empty { "No call was selected." }
            } @else {
                p { "Retrying makes each call below pending and due now, with a full set of tries. A call that is no longer dead or held is left as it is." }
                ul.ids { @for id in &ids { li { "Call " (id) } } }
                form method="post" action="/console/calls/retry" {
                    (view::csrf_field(&operator))
                    @for id in &ids { input type="hidden" name="call" value=(id); }
                    button.primary type="submit" { "Retry " (view::count(ids.len(), "call")) }
                }
            }
            p { a href="/console/calls?status=dead" { "Back to the dead calls" } }
        },
    ))
}

pub async fn retry_many(
    State(state): State<AppState>,
    action: Action,
) -> Result<Html<String>, PageError> {
    let ids = call_ids(action.values("call"))?;
    let mut retried = 0;
    let mut refused = Vec::new();
    for id in ids {
        match calls::retry(&state.admin_db, id).await? {
            Change::Made(_) => retried += 1,
            Change::NotFound => refused.push(format!("call {id} not found")),
            Change::Refused(reason) => refused.push(reason),
        }
    }
    tracing::info!(
        retried,
        refused = refused.len(),
        "console: dead calls retried"
    );
    Ok(view::page(
        "Retry dead calls",
        Section::Calls,
        Some(&action.operator),
        html! {
            p.notice.good role="status" { "Pending again: " (view::count(retried, "call")) "." }
            @if !refused.is_empty() {
                h2 { "Left as they were" }
                ul { @for reason in &refused { li { (reason) } } }
            }
            p { a href="/console/calls?status=pending" { "See the pending calls" } }
        },
    ))
}

pub async fn retry(
    State(state): State<AppState>,
    id: Result<Id, ApiError>,
    _: Action,
) -> Result<Redirect, PageError> {
    act(&state, ("call", "retried"), id, calls::retry, to_order).await
}

pub async fn cancel(
    State(state): State<AppState>,
    id: Result<Id, ApiError>,
    _: Action,
) -> Result<Redirect, PageError> {
    act(&state, ("call", "canceled"), id, calls::cancel, to_order).await
}

/// The call's place in its order's timeline.
fn to_order(call: &CallRecord) -> String {
    format!("/console/orders/{}#call-{}", call.order_id, call.id)
}
