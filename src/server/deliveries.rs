//! `GET /v1/webhooks/deliveries`: the events of token changes and expiries, newest first, with
//! where the delivery of each stands (see `crate::delivery`). Super-admins only: an event
//! holds a token's record.

use super::auth::Admin;
use super::error::ApiError;
use super::handlers::Params;
use super::openapi::errors;
use crate::outbox::{Delivery, OutboxEvent};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The most deliveries one answer lists.
const MAX: usize = 1000;

// `#[param]` takes literals only: `limit`'s `maximum` below must be the constant.
const _: () = assert!(MAX == 1000);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// How many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The events kept (25 hours after each), newest first.
#[derive(Serialize, ToSchema)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct Deliveries {
    deliveries: Vec<DeliveryView>,
}

/// One event and its delivery.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryView {
    /// The `webhook-id`, the same on every attempt.
    id: String,
    /// `token.created`, `token.updated`, `token.regenerated`, `token.deleted`,
    /// `token.revoked`, `token.leaked`, `token.expiring` or `token.expired`.
    #[serde(rename = "type")]
    kind: String,
    /// When the change was made, or the notice added.
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    /// `pending` (some receiver has not taken it yet), `delivered` (every receiver did) or
    /// `failed` (given up 24 hours after the change).
    #[schema(value_type = String, pattern = "^(pending|delivered|failed)$")]
    status: Delivery,
    /// Attempts made.
    attempts: u32,
    /// When the last attempt was made.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    last_attempt_at: Option<DateTime<Utc>>,
    /// What the last attempt got from the receivers that did not take it.
    #[schema(required = true)]
    last_error: Option<String>,
    /// When the next attempt is due (pending only).
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    next_attempt_at: Option<DateTime<Utc>>,
    /// The receivers (URLs without credentials) that took it.
    delivered_to: Vec<String>,
    /// The body sent: `{"type", "timestamp", "data": {"actor", "record", …}}`.
    #[schema(value_type = Object)]
    body: serde_json::Value,
}

impl From<OutboxEvent> for DeliveryView {
    fn from(event: OutboxEvent) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            created_at: event.created_at,
            status: event.delivery,
            attempts: event.attempts,
            last_attempt_at: event.last_attempt_at,
            last_error: event.last_error,
            next_attempt_at: event.next_attempt_at,
            delivered_to: event.delivered_to,
            body: event.body,
        }
    }
}

/// `GET /v1/webhooks/deliveries?limit=N`
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries",
    operation_id = "listDeliveries",
    tag = "tokens",
    summary = "Webhook events and their delivery, newest first (super-admin).",
    description = "Every event of a token change or expiry kept (25 hours after each), with \
                   its attempts and where its delivery stands. Events are kept whether or not \
                   the server delivers them (`--webhook`).",
    security(("bearer" = []), ("token" = [])),
    params(DeliveriesQuery),
    responses(
        (status = OK, description = "The events.", body = Deliveries),
        errors::Management, errors::BadRequest
    )
)]
pub async fn deliveries(
    admin: Admin,
    Params(query): Params<DeliveriesQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX}"
        )));
    }
    let events = admin.tokens().events(limit).await?;
    let deliveries = events.into_iter().map(DeliveryView::from).collect();
    Ok(Json(Deliveries { deliveries }).into_response())
}
