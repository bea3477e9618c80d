//! The operator's API: tenants and their keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use integrations_service::ServiceError;
use serde_json::{json, Map, Value};

use crate::auth::Admin;
use crate::body::JsonBody;
use crate::params::ApiPath;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/admin/tenants/{id}", delete(delete_tenant))
        .route("/v1/admin/tenants/{id}/keys", post(create_key))
        .route("/v1/admin/tenants/{id}/keys/{key_id}", delete(revoke_key))
}

async fn create_tenant(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ServiceError::InvalidRequest("id: is required and must be a string".into()))?;
    let traits = match body.get("traits") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(traits)) => traits.clone(),
        Some(_) => return Err(ServiceError::InvalidRequest("traits: must be an object".into()).into()),
    };
    let created = state.service.create_tenant(id, traits).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": created.tenant_id, "key_id": created.key_id, "api_key": created.api_key})),
    ))
}

async fn list_tenants(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"tenants": state.service.list_tenants().await?})))
}

async fn delete_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_tenant(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = state.service.create_api_key(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant_id": created.tenant_id, "key_id": created.key_id, "api_key": created.api_key})),
    ))
}

async fn revoke_key(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((id, key_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.service.revoke_api_key(&id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
