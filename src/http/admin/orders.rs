//! `GET /admin/orders` and `GET /admin/orders/{id}`: did this customer get their
//! workspace, and if not, why?

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::page::{Page, PageParams};
use crate::db;
use crate::db::calls::{Attempt, CallRecord};
use crate::db::events::EventRecord;
use crate::db::orders::{self, OrderFilter, OrderRecord, OrderSummary};
use crate::http::extract::{optional, optional_variant, Id, Query};
use crate::http::{ApiError, AppState};
use crate::plan::OrderStatus;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders in this status.
    #[serde(default, deserialize_with = "optional_variant")]
    status: Option<OrderStatus>,
    /// Only orders of this buyer's email, in any case.
    #[serde(default, deserialize_with = "optional")]
    email: Option<String>,
    /// Only orders of this Stripe customer (`cus_...`).
    #[serde(default, deserialize_with = "optional")]
    customer: Option<String>,
    /// Only orders provisioning this UChat workspace.
    #[serde(default, deserialize_with = "optional")]
    workspace_id: Option<i64>,
    /// Only the order this Stripe id leads to: a subscription, Checkout Session, payment
    /// intent, invoice or charge id.
    #[serde(default, deserialize_with = "optional")]
    stripe_id: Option<String>,
}

/// Orders, newest first, filtered.
#[utoipa::path(
    get,
    path = "/orders",
    operation_id = "list_orders",
    tag = "orders",
    params(OrderQuery, PageParams),
    responses(
        (status = 200, description = "A page of orders", body = Page<OrderSummary>),
        (status = 400, description = "A malformed parameter", body = super::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<OrderQuery>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<OrderSummary>>, ApiError> {
    let filter = OrderFilter {
        status: query.status,
        email: query.email.as_deref(),
        customer: query.customer.as_deref(),
        workspace_id: query.workspace_id,
        stripe_id: query.stripe_id.as_deref(),
    };
    let rows = orders::list(&state.admin_db, &filter, page.before(), page.fetch()).await?;
    Ok(Json(Page::new(rows, &page, |order| order.id)))
}

/// An order and everything that happened to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    pub order: OrderRecord,
    /// The order's events and partner calls, in time order: an event when it arrived, a
    /// call when it was planned.
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum TimelineEntry {
    Event(EventRecord),
    Call(CallHistory),
}

/// A partner call with every try made of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallHistory {
    #[serde(flatten)]
    pub call: CallRecord,
    /// Its tries, oldest first.
    pub attempt_log: Vec<Attempt>,
}

impl TimelineEntry {
    fn at(&self) -> DateTime<Utc> {
        match self {
            TimelineEntry::Event(event) => event.received_at,
            TimelineEntry::Call(history) => history.call.created_at,
        }
    }
}

/// One order with its Stripe ids, facts, events, calls and their attempts.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    operation_id = "show_order",
    tag = "orders",
    params(("id" = i64, Path, description = "The order's id", minimum = 1)),
    responses(
        (status = 200, description = "The order and its timeline", body = OrderDetail),
        (status = 400, description = "A malformed id", body = super::ErrorBody),
        (status = 404, description = "No such order", body = super::ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<OrderDetail>, ApiError> {
    Ok(Json(detail(&state.admin_db, id).await?))
}

/// The order with its timeline, as the API and the console show it.
pub async fn detail(db: &PgPool, id: i64) -> Result<OrderDetail, ApiError> {
    let order = orders::get(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("order {id}")))?;
    let events = db::events::of_order(db, id).await?;
    let calls = db::calls::of_order(db, id).await?;
    let attempts = db::calls::attempts_of_order(db, id).await?;
    let timeline = timeline(events, calls, attempts);
    Ok(OrderDetail { order, timeline })
}

/// Events and calls in time order, each call with its own attempts.
fn timeline(
    events: Vec<EventRecord>,
    calls: Vec<CallRecord>,
    attempts: Vec<Attempt>,
) -> Vec<TimelineEntry> {
    let mut attempts_by_call: HashMap<i64, Vec<Attempt>> = HashMap::new();
    for attempt in attempts {
        attempts_by_call
            .entry(attempt.call_id)
            .or_default()
            .push(attempt);
    }
    let calls = calls.into_iter().map(|call| {
        TimelineEntry::Call(CallHistory {
            attempt_log: attempts_by_call.remove(&call.id).unwrap_or_default(),
            call,
        })
    });
    let mut timeline: Vec<TimelineEntry> = events
        .into_iter()
        .map(TimelineEntry::Event)
        .chain(calls)
        .collect();
    // A stable sort: an event and the calls it planned keep that order if their times tie.
    timeline.sort_by_key(TimelineEntry::at);
    timeline
}

/// The order statuses, as the `status` filter takes them. By hand, so the planner's type
/// stays free of documentation concerns.
impl PartialSchema for OrderStatus {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(OrderStatus::ALL.map(|status| status.to_string())))
            .into()
    }
}

impl ToSchema for OrderStatus {}
