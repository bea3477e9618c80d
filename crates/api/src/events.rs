//! The tenant's normalized events: emit one, or read the stream after a cursor (long-poll).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use integrations_service::ServiceError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::CurrentTenant;
use crate::body::JsonBody;
use crate::params::ApiQuery;
use crate::{ApiError, AppState};

/// Events per read unless the caller asks for another number (at most 500).
const DEFAULT_LIMIT: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", get(read).post(emit))
}

#[derive(Deserialize)]
struct ReadQuery {
    /// The `next` of the previous read.
    after: Option<String>,
    limit: Option<i64>,
    /// Seconds to wait for an event when there is none yet (at most 30).
    wait: Option<u64>,
}

async fn read(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let page = state
        .service
        .read_events(
            &tenant,
            query.after.as_deref(),
            query.limit.unwrap_or(DEFAULT_LIMIT),
            Duration::from_secs(query.wait.unwrap_or(0)),
        )
        .await?;
    // Written out directly: through `json!` each event's stored data would be parsed again.
    Ok(Json(page).into_response())
}

async fn emit(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let invalid = |message: &str| ApiError::from(ServiceError::InvalidRequest(message.to_owned()));
    let event_type = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("type is required and must be a string"))?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let mut keys = headers.get_all("idempotency-key").iter();
    let idempotency_key = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(key), None) => Some(
            key.to_str()
                .map_err(|_| invalid("Idempotency-Key must be printable ASCII"))?
                .to_owned(),
        ),
        (Some(_), Some(_)) => return Err(invalid("send one Idempotency-Key")),
    };
    let emitted = state
        .service
        .emit_event(&tenant, event_type, data, idempotency_key)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"id": emitted.id}))))
}
