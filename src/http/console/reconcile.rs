//! Reconciling one order from its page: the admin API's reconciliation (`POST
//! /admin/reconcile` with the order), its report as a page, and a repair that queues
//! the corrective calls like any other change.

use axum::extract::State;
use axum::response::Html;
use maud::{html, Markup};

use super::view::{self, PageError, Section};
use super::{Action, Operator};
use crate::http::admin;
use crate::http::extract::Id;
use crate::http::{ApiError, AppState};
use crate::reconcile::{Report, Source};

/// The button on an order's page.
pub fn button(operator: &Operator, order: i64) -> Markup {
    view::action_button(
        operator,
        &format!("/console/orders/{order}/reconcile"),
        "Reconcile with Stripe and UChat",
        "secondary",
    )
}

pub async fn run(
    State(state): State<AppState>,
    id: Result<Id, ApiError>,
    action: Action,
) -> Result<Html<String>, PageError> {
    let Id(order) = id?;
    let repair = action.values("repair").any(|value| value == "true");
    let report = admin::reconcile_now(&state, Some(order), repair).await?;
    tracing::info!(order, repair, "console: order reconciled");
    Ok(view::page(
        &format!("Order {order}: reconciliation"),
        Section::Orders,
        Some(&action.operator),
        report_page(&action.operator, order, &report),
    ))
}

fn report_page(operator: &Operator, order: i64, report: &Report) -> Markup {
    let drifts: Vec<_> = report.drifts.iter().filter(|d| d.order == order).collect();
    html! {
        p { a href={ "/console/orders/" (order) } { "Back to order " (order) } }
        @for error in &report.errors { p.attention { "Not compared: " (error) } }
        @if report.orders_in_flight > 0 {
            p { "A call of this order is still unfinished, so it was not compared: try again once it is done." }
        }
        @if drifts.is_empty() {
            @if report.errors.is_empty() && report.orders_in_flight == 0 {
                p { "Stripe and UChat agree with what this order provisioned." }
            }
        } @else {
            div.scroll {
                table {
                    caption { (view::count(drifts.len(), "drift")) }
                    thead { tr {
                        th scope="col" { "Field" } th scope="col" { "Source" }
                        th scope="col" { "Expected" } th scope="col" { "Actual" }
                    } }
                    tbody {
                        @for drift in &drifts {
                            tr {
                                td { (drift.field) }
                                td { (match drift.source { Source::Stripe => "Stripe", Source::Uchat => "UChat" }) }
                                td { code { (drift.expected) } }
                                td { code { (drift.actual) } }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(calls) = report.repaired.get(&order) {
            p {
                "Queued to repair: "
                (calls.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                ". The worker delivers them in order, like any call."
            }
        } @else if !report.repair && !drifts.is_empty() {
            form.inline method="post" action={ "/console/orders/" (order) "/reconcile" } {
                (view::csrf_field(operator))
                input type="hidden" name="repair" value="true";
                button type="submit" { "Repair UChat through the queue" }
            }
        }
    }
}
