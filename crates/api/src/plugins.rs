//! The tenant's plugin lifecycle.

use crate::params::PathId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use integrations_service::PluginDetails;
use integrations_service::PluginName;
use serde_json::{json, Value};

use crate::auth::CurrentTenant;
use crate::body::JsonBody;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/plugins", get(list))
        .route("/v1/plugins/{name}", get(details).delete(uninstall))
        .route("/v1/plugins/{name}/install", post(install))
        .route("/v1/plugins/{name}/configure", put(configure))
        .route("/v1/plugins/{name}/enable", post(enable))
        .route("/v1/plugins/{name}/disable", post(disable))
}

async fn list(CurrentTenant(tenant): CurrentTenant, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"plugins": state.service.list_plugins(&tenant).await?})))
}

async fn details(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(name): PathId<PluginName>,
) -> Result<Json<PluginDetails>, ApiError> {
    Ok(Json(state.service.plugin_details(&tenant, &name).await?))
}

async fn install(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(name): PathId<PluginName>,
    JsonBody(config): JsonBody,
) -> Result<(StatusCode, Json<PluginDetails>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.install(&tenant, &name, config).await?),
    ))
}

async fn configure(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(name): PathId<PluginName>,
    JsonBody(config): JsonBody,
) -> Result<Json<PluginDetails>, ApiError> {
    Ok(Json(state.service.configure(&tenant, &name, config).await?))
}

async fn enable(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(name): PathId<PluginName>,
) -> Result<Json<PluginDetails>, ApiError> {
    Ok(Json(state.service.set_enabled(&tenant, &name, true).await?))
}

async fn disable(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(name): PathId<PluginName>,
) -> Result<Json<PluginDetails>, ApiError> {
    Ok(Json(state.service.set_enabled(&tenant, &name, false).await?))
}

async fn uninstall(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(name): PathId<PluginName>,
) -> Result<StatusCode, ApiError> {
    state.service.uninstall(&tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
