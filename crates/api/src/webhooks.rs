//! Inbound webhooks: verified by the plugin, stored before they are acknowledged.

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use integrations_core::WebhookRequest;
use integrations_service::WebhookReceipt;
use serde_json::json;

use crate::body::read_bytes;
use crate::params::ApiPath;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{plugin}/{tenant}", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    ApiPath((plugin, tenant)): ApiPath<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    // An oversized body is still a 413 rather than the uniform refusal: it is answered before
    // anything is looked up, so it says something about the request's size and nothing about which
    // tenants or plugins exist.
    let body = read_bytes(request, &()).await?;
    let request = WebhookRequest {
        headers,
        query,
        body: body.to_vec(),
    };
    match state.service.receive_webhook(&plugin, &tenant, request).await? {
        WebhookReceipt::Stored { event_id, duplicate } => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": event_id, "duplicate": duplicate})).into_response(),
        )
            .into_response()),
        // The body echoes the sender's text: never to be sniffed into HTML by a browser.
        WebhookReceipt::Handshake { content_type, body } => Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            body,
        )
            .into_response()),
    }
}
