//! The tool catalog and tool calls.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::auth::CurrentTenant;
use crate::body::JsonBodyOrEmpty;
use crate::params::ApiPath;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tools", get(list))
        .route("/v1/tools/{name}", post(call))
}

async fn list(CurrentTenant(tenant): CurrentTenant, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"tools": state.service.list_tools(&tenant).await?})))
}

async fn call(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    JsonBodyOrEmpty(arguments): JsonBodyOrEmpty,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"result": state.service.call_tool(&tenant, &name, arguments).await?}),
    ))
}
