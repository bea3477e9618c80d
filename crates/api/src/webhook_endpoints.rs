//! The tenant's outbound webhook endpoints: CRUD, secret rotation, attempts and replays.

use crate::params::PathId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use integrations_service::EndpointId;
use integrations_service::{
    AttemptPage, CreatedWebhookEndpoint, FieldError, ReplayReport, ReplayRequest, ServiceError, WebhookEndpointView,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::CurrentTenant;
use crate::body::{JsonBody, JsonBodyOrEmpty};
use crate::params::ApiQuery;
use crate::{ApiError, AppState};

/// Endpoints per page unless the caller asks for another number (at most 500).
const DEFAULT_ENDPOINTS: i64 = 50;

/// Attempts per page unless the caller asks for another number (at most 100).
const DEFAULT_ATTEMPTS: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook-endpoints", get(list).post(create))
        .route("/v1/webhook-endpoints/{id}", get(show).patch(update).delete(remove))
        .route("/v1/webhook-endpoints/{id}/rotate-secret", post(rotate))
        .route("/v1/webhook-endpoints/{id}/attempts", get(attempts))
        .route("/v1/webhook-endpoints/{id}/replay", post(replay))
}

async fn create(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<CreatedWebhookEndpoint>), ApiError> {
    let created = state.service.create_webhook_endpoint(&tenant, typed(body)?).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize)]
struct ListQuery {
    /// The `next` of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

async fn list(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (endpoints, next) = state
        .service
        .list_webhook_endpoints(
            &tenant,
            query.after.as_deref(),
            query.limit.unwrap_or(DEFAULT_ENDPOINTS),
        )
        .await?;
    Ok(Json(json!({"endpoints": endpoints, "next": next})))
}

async fn show(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(id): PathId<EndpointId>,
) -> Result<Json<WebhookEndpointView>, ApiError> {
    Ok(Json(state.service.webhook_endpoint(&tenant, &id).await?))
}

async fn update(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(id): PathId<EndpointId>,
    JsonBody(body): JsonBody,
) -> Result<Json<WebhookEndpointView>, ApiError> {
    Ok(Json(
        state
            .service
            .update_webhook_endpoint(&tenant, &id, typed(body)?)
            .await?,
    ))
}

async fn remove(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(id): PathId<EndpointId>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_webhook_endpoint(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(id): PathId<EndpointId>,
) -> Result<Json<CreatedWebhookEndpoint>, ApiError> {
    Ok(Json(state.service.rotate_webhook_endpoint_secret(&tenant, &id).await?))
}

#[derive(Deserialize)]
struct AttemptsQuery {
    /// The `next` of the previous page.
    before: Option<String>,
    limit: Option<i64>,
}

async fn attempts(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(id): PathId<EndpointId>,
    ApiQuery(query): ApiQuery<AttemptsQuery>,
) -> Result<Json<AttemptPage>, ApiError> {
    let page = state
        .service
        .list_webhook_attempts(
            &tenant,
            &id,
            query.before.as_deref(),
            query.limit.unwrap_or(DEFAULT_ATTEMPTS),
        )
        .await?;
    Ok(Json(page))
}

async fn replay(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(id): PathId<EndpointId>,
    JsonBodyOrEmpty(body): JsonBodyOrEmpty,
) -> Result<(StatusCode, Json<ReplayReport>), ApiError> {
    let request: ReplayRequest = typed(body)?;
    let report = state
        .service
        .replay_webhook_endpoint(&tenant, &id, request.since)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(report)))
}

/// A request body as the service's typed input; a value of the wrong shape is 422 naming its
/// field (`event_types.0`), as the service names the fields it refuses.
fn typed<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let field = match error.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        let message = error.into_inner().to_string();
        ApiError::from(ServiceError::InvalidWebhookEndpoint(
            vec![FieldError { field, message }].into(),
        ))
    })
}
