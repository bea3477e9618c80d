//! The tool catalog and tool calls, with `Idempotency-Key`.

use crate::params::PathId;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use integrations_core::TenantId;
use integrations_problems::RequestError;
use integrations_service::StoredResponse;
use integrations_service::ToolName;
use integrations_service::{tool_call_fingerprint, IdempotentStart, MAX_IDEMPOTENCY_KEY_LEN};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::CurrentTenant;
use crate::body::JsonBodyOrEmpty;
use crate::params::ApiQuery;
use crate::{ApiError, AppState};

/// Marks a response replayed for its `Idempotency-Key`.
const REPLAYED: &str = "idempotent-replayed";

/// Headers of a response that are kept to replay it.
const REPLAYED_HEADERS: [HeaderName; 2] = [CONTENT_TYPE, LOCATION];

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
    PathId(name): PathId<ToolName>,
    ApiQuery(query): ApiQuery<CallQuery>,
    headers: HeaderMap,
    JsonBodyOrEmpty(arguments): JsonBodyOrEmpty,
) -> Result<Response, ApiError> {
    let Some(key) = idempotency_key(&headers)? else {
        return run(&state, &tenant, &name, query.queued, arguments).await;
    };
    let fingerprint = tool_call_fingerprint(&name, query.queued, &arguments);
    match state.service.start_idempotent(&tenant, &key, &fingerprint).await? {
        IdempotentStart::Replay(stored) => Ok(replay(stored)),
        IdempotentStart::Run => {
            // On a task of its own: a client that hangs up (and retries) must not cancel the call
            // and lose its response, or the retry would call the vendor a second time.
            let call = tokio::spawn(async move {
                let response = match run(&state, &tenant, &name, query.queued, arguments).await {
                    Ok(response) => response,
                    Err(error) => error.into_response(),
                };
                keep(&state, &tenant, &key, response).await
            });
            call.await.map_err(|_| {
                ApiError::from(integrations_service::ServiceError::Internal(
                    "a tool call failed to finish".into(),
                ))
            })
        }
    }
}

async fn run(
    state: &AppState,
    tenant: &TenantId,
    name: &ToolName,
    queued: bool,
    arguments: Value,
) -> Result<Response, ApiError> {
    if queued {
        let job = state.service.call_tool_async(tenant, name, arguments).await?;
        let location = format!("/v1/jobs/{}", job.id);
        let body = json!({"job_id": job.id, "state": job.state});
        return Ok((StatusCode::ACCEPTED, [(LOCATION, location)], Json(body)).into_response());
    }
    let result = state.service.call_tool(tenant, name, arguments).await?;
    Ok(Json(json!({"result": result})).into_response())
}

/// The `Idempotency-Key` of a request: at most one, of 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut keys = headers.get_all("idempotency-key").iter();
    let Some(key) = keys.next() else { return Ok(None) };
    if keys.next().is_some() {
        return Err(ApiError::from(RequestError::InvalidIdempotencyKey("send one")));
    }
    let key = key.as_bytes();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(ApiError::from(RequestError::InvalidIdempotencyKey(
            "use 1 to 255 characters",
        )));
    }
    if !key.iter().all(|byte| (0x20..=0x7e).contains(byte)) {
        return Err(ApiError::from(RequestError::InvalidIdempotencyKey(
            "use printable ASCII characters",
        )));
    }
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}

/// Keeps a finished call's response for its key, or gives the key up after a failure of ours
/// (the client may then try again); a vendor's own error is an answer, kept like any other.
async fn keep(state: &AppState, tenant: &TenantId, key: &str, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        let _ = state.service.release_idempotent(tenant, key).await;
        return ApiError::from(integrations_service::ServiceError::Internal(
            "unreadable response".into(),
        ))
        .into_response();
    };
    let vendors_answer = bytes
        .windows(b"/problems/upstream-error\"".len())
        .any(|window| window == b"/problems/upstream-error\"");
    let ours_to_retry = parts.status.is_server_error() && !vendors_answer;
    let kept = if ours_to_retry {
        state.service.release_idempotent(tenant, key).await
    } else {
        let headers: Map<String, Value> = REPLAYED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), Value::from(value)))
            })
            .collect();
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            headers: Value::Object(headers).to_string(),
            body: bytes.to_vec(),
        };
        state.service.finish_idempotent(tenant, key, &stored).await
    };
    if let Err(error) = kept {
        tracing::error!(%error, %tenant, "cannot record an idempotent call's outcome");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The first request's response again, marked replayed.
fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    if let Ok(Value::Object(kept)) = serde_json::from_str::<Value>(&stored.headers) {
        for (name, value) in kept {
            let parsed = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            );
            if let (Ok(name), Some(Ok(value))) = parsed {
                headers.insert(name, value);
            }
        }
    }
    headers.insert(HeaderName::from_static(REPLAYED), HeaderValue::from_static("true"));
    response
}
