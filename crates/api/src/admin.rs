//! The operator's API: tenants and their keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
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
        .route(
            "/v1/admin/tenants/{id}",
            get(get_tenant).patch(update_tenant).delete(delete_tenant),
        )
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
    let traits = traits(&body)?.unwrap_or_default();
    let created = state.service.create_tenant(id, traits).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": created.tenant_id, "key_id": created.key_id, "api_key": created.api_key})),
    ))
}

/// The optional `traits` object of a request body.
fn traits(body: &Value) -> Result<Option<Map<String, Value>>, ServiceError> {
    match body.get("traits") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(traits)) => Ok(Some(traits.clone())),
        Some(_) => Err(ServiceError::InvalidRequest("traits: must be an object".into())),
    }
}

async fn get_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.service.get_tenant(&id).await?)))
}

/// Replaces a tenant's traits (a plan change, say); flags see them on the next request.
async fn update_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let traits = traits(&body)?.ok_or_else(|| ServiceError::InvalidRequest("traits: is required".into()))?;
    Ok(Json(json!(state.service.set_tenant_traits(&id, traits).await?)))
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
