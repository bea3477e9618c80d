//! The tool catalog and tool calls.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::CurrentTenant;
use crate::body::JsonBodyOrEmpty;
use crate::params::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tools", get(list))
        .route("/v1/tools/{name}", post(call))
}

async fn list(CurrentTenant(tenant): CurrentTenant, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"tools": state.service.list_tools(&tenant).await?})))
}

#[derive(Deserialize)]
struct CallQuery {
    /// `?async=true`: queue the call as a job and answer 202 at once.
    #[serde(rename = "async", default)]
    queued: bool,
}

async fn call(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<CallQuery>,
    JsonBodyOrEmpty(arguments): JsonBodyOrEmpty,
) -> Result<Response, ApiError> {
    if query.queued {
        let job = state.service.call_tool_async(&tenant, &name, arguments).await?;
        let location = format!("/v1/jobs/{}", job.id);
        let body = json!({"job_id": job.id, "state": job.state});
        return Ok((StatusCode::ACCEPTED, [(LOCATION, location)], Json(body)).into_response());
    }
    let result = state.service.call_tool(&tenant, &name, arguments).await?;
    Ok(Json(json!({"result": result})).into_response())
}
