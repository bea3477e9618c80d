//! The operator's API: tenants and their keys.

use crate::params::named;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use integrations_core::TenantId;
use integrations_service::KeyId;
use integrations_service::{LimitChange, LimitsUpdate, ServiceError, TenantUpdate};
use serde::de::DeserializeOwned;
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
    let cidrs = outbound_allow_cidrs(&body)?.unwrap_or_default();
    let created = state.service.create_tenant(id, traits, &cidrs, limits(&body)?).await?;
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

/// The optional `outbound_allow_cidrs` list of a request body.
fn outbound_allow_cidrs(body: &Value) -> Result<Option<Vec<String>>, ServiceError> {
    let invalid = || ServiceError::InvalidRequest("outbound_allow_cidrs: must be a list of CIDR strings".into());
    match body.get("outbound_allow_cidrs") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid()),
    }
}

/// The limit fields of a request body: absent keeps a limit, `null` returns it to the default.
fn limits(body: &Value) -> Result<LimitsUpdate, ServiceError> {
    Ok(LimitsUpdate {
        rate_limit: limit(
            body,
            "rate_limit",
            "an object {\"per_sec\": number, \"burst\": integer}",
        )?,
        webhook_rate_limit: limit(
            body,
            "webhook_rate_limit",
            "an object {\"per_sec\": number, \"burst\": integer}",
        )?,
        max_concurrent_tool_calls: limit(body, "max_concurrent_tool_calls", "a whole number")?,
        max_webhook_endpoints: limit(body, "max_webhook_endpoints", "a whole number")?,
        max_queued_jobs: limit(body, "max_queued_jobs", "a whole number")?,
    })
}

fn limit<T: DeserializeOwned>(body: &Value, field: &str, expected: &str) -> Result<LimitChange<T>, ServiceError> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(value) => serde_json::from_value(value.clone())
            .map(|parsed| Some(Some(parsed)))
            .map_err(|_| ServiceError::InvalidRequest(format!("{field}: must be null or {expected}"))),
    }
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
    let update = TenantUpdate {
        traits: traits(&body)?,
        outbound_allow_cidrs: outbound_allow_cidrs(&body)?,
        limits: limits(&body)?,
    };
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
            &named(&key_id, KeyId::parse, || ServiceError::ApiKeyNotFound)?,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant a path names; one that cannot be a tenant id is not found, like any other absent one.
fn tenant_in_path(id: &str) -> Result<TenantId, ServiceError> {
    TenantId::parse(id).map_err(|_| ServiceError::TenantNotFound)
}
