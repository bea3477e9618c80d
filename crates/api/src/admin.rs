//! The operator's API: tenants and their keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use integrations_core::TenantId;
use integrations_service::KeyId;
use integrations_service::{NewTenant, ServiceError, TenantUpdate};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

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
    let tenant: NewTenant = typed(body)?;
    let created = state
        .service
        .create_tenant(
            &tenant.id,
            tenant.traits.unwrap_or_default(),
            &tenant.outbound_allow_cidrs.unwrap_or_default(),
            tenant.limits,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": created.tenant_id, "key_id": created.key_id, "api_key": created.api_key})),
    ))
}

/// A request body as the service's typed input; a value of the wrong shape is a 422 naming its
/// field.
fn typed<T: DeserializeOwned>(body: Value) -> Result<T, ServiceError> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        // The limits name their own field (serde loses the path of flattened fields).
        ServiceError::InvalidRequest(match path.as_str() {
            "." => message,
            path => format!("{path}: {message}"),
        })
    })
}

async fn get_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.service.get_tenant(&tenant_in_path(&id)?).await?)))
}

/// Changes a tenant's traits (a plan change, say) and outbound allowlist; a field left out keeps
/// its value. Flags see new traits on the next request.
async fn update_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let update: TenantUpdate = typed(body)?;
    Ok(Json(json!(
        state.service.update_tenant(&tenant_in_path(&id)?, update).await?
    )))
}

async fn list_tenants(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"tenants": state.service.list_tenants().await?})))
}

async fn delete_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_tenant(&tenant_in_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = state.service.create_api_key(&tenant_in_path(&id)?).await?;
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
    state
        .service
        .revoke_api_key(
            &tenant_in_path(&id)?,
            &KeyId::parse(&key_id).map_err(|_| ServiceError::ApiKeyNotFound)?,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant a path names; one that cannot be a tenant id is not found, like any other absent one.
fn tenant_in_path(id: &str) -> Result<TenantId, ServiceError> {
    TenantId::parse(id).map_err(|_| ServiceError::TenantNotFound)
}
