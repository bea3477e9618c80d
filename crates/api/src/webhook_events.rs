//! The tenant's received webhook events.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use integrations_service::{DeliveryCursor, WebhookDeliveryPage, DEFAULT_DELIVERY_PAGE_LIMIT};
use serde::Deserialize;

use crate::auth::CurrentTenant;
use crate::params::ApiQuery;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhook-events", get(list))
}

#[derive(Deserialize)]
struct ListQuery {
    plugin: Option<String>,
    limit: Option<i64>,
    /// The `next` of the previous page; a string no page handed out is a 400.
    after: Option<DeliveryCursor>,
}

async fn list(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<WebhookDeliveryPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_DELIVERY_PAGE_LIMIT);
    let page = state
        .service
        .list_webhook_deliveries(&tenant, query.plugin.as_deref(), query.after.as_ref(), limit)
        .await?;
    Ok(Json(page))
}
