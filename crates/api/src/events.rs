//! The tenant's received webhook events.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

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
}

async fn list(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let events = state
        .service
        .list_webhook_events(&tenant, query.plugin.as_deref(), query.limit.unwrap_or(50))
        .await?;
    Ok(Json(json!({"events": events})))
}
