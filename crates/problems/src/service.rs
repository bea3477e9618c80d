//! The problem of each [`ServiceError`]: one status and one stable `type` per kind of failure.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use serde_json::json;

use crate::problem::whole_seconds;
use crate::{FieldErrors, Problem, RateLimited, RateScope, ServiceError};

impl From<&ServiceError> for Problem {
    fn from(error: &ServiceError) -> Self {
        from_service(error)
    }
}

fn from_service(error: &ServiceError) -> Problem {
    use ServiceError as E;
    let detail = error.to_string();
    match error {
        E::Unauthorized => Problem::unauthorized(detail),
        E::InvalidTenantId(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-tenant-id",
            "Invalid tenant id",
            detail,
        ),
        E::InvalidRequest(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "Invalid request",
            detail,
        ),
        E::TenantNotFound => Problem::new(StatusCode::NOT_FOUND, "tenant-not-found", "Tenant not found", detail),
        E::TenantExists => Problem::new(StatusCode::CONFLICT, "tenant-exists", "Tenant already exists", detail),
        E::ApiKeyNotFound => Problem::new(StatusCode::NOT_FOUND, "api-key-not-found", "API key not found", detail),
        E::PluginNotFound(_) => Problem::new(StatusCode::NOT_FOUND, "plugin-not-found", "Plugin not found", detail),
        E::AlreadyInstalled(_) => Problem::new(
            StatusCode::CONFLICT,
            "plugin-already-installed",
            "Plugin already installed",
            detail,
        ),
        E::PluginNotAllowed(_) => Problem::new(
            StatusCode::FORBIDDEN,
            "plugin-not-allowed",
            "Plugin not allowed",
            detail,
        ),
        E::NotInstalled(_) => Problem::new(
            StatusCode::NOT_FOUND,
            "plugin-not-installed",
            "Plugin not installed",
            detail,
        ),
        E::InvalidConfig(errors) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-config",
            "Invalid plugin configuration",
            summary(errors),
        )
        .with("errors", json!(errors.errors))
        .with("errors_omitted", json!(errors.omitted)),
        E::ToolNotFound(_) => Problem::new(StatusCode::NOT_FOUND, "tool-not-found", "Tool not found", detail),
        E::InvalidArguments(errors) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-arguments",
            "Invalid tool arguments",
            summary(errors),
        )
        .with("errors", json!(errors.errors))
        .with("errors_omitted", json!(errors.omitted)),
        E::Upstream {
            status,
            details,
            message,
            retry_after,
        } => {
            let problem = Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream-error",
                "The vendor API answered with an error",
                message.clone(),
            )
            .with("upstream_status", json!(status))
            .with("upstream_errors", details.clone());
            match retry_after {
                Some(wait) => problem.retry_after(*wait),
                None => problem,
            }
        }
        E::UpstreamCircuitOpen { retry_after } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream-unavailable",
            "The vendor API is failing; calls to it are paused",
            detail,
        )
        .retry_after(*retry_after),
        E::DestinationRefused(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "destination-refused",
            "Outbound destination refused",
            detail,
        ),
        E::UpstreamUnavailable(_) => Problem::new(
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
            "The vendor API could not be reached",
            detail,
        ),
        E::UpstreamResponseTooLarge { limit_bytes } => Problem::new(
            StatusCode::BAD_GATEWAY,
            "upstream-response-too-large",
            "The vendor API answered with more data than a tool call may read",
            detail,
        )
        .with("limit_bytes", json!(limit_bytes)),
        E::ToolDeadlineExceeded(_) => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "tool-deadline-exceeded",
            "The tool call took too long",
            detail,
        ),
        E::Misconfigured(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin-misconfigured",
            "Plugin misconfigured",
            detail,
        ),
        E::JobNotFound => Problem::new(StatusCode::NOT_FOUND, "job-not-found", "Job not found", detail),
        E::JobNotRetryable(_) => Problem::new(StatusCode::CONFLICT, "job-not-retryable", "Job not retryable", detail),
        E::ReauthorizationRequired { plugin, .. } => Problem::new(
            StatusCode::CONFLICT,
            "reauthorization-required",
            "The installation must be authorised again",
            detail,
        )
        .with("plugin", json!(plugin)),
        E::WebhookEndpointNotFound => Problem::new(
            StatusCode::NOT_FOUND,
            "webhook-endpoint-not-found",
            "Webhook endpoint not found",
            detail,
        ),
        E::InvalidWebhookEndpoint(errors) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-webhook-endpoint",
            "Invalid webhook endpoint",
            summary(errors),
        )
        .with("errors", json!(errors.errors))
        .with("errors_omitted", json!(errors.omitted)),
        E::InvalidHandshake(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-webhook-handshake",
            "Invalid webhook handshake",
            detail,
        ),
        // One fixed body for every refusal: nothing of the tenant, the plugin or the reason.
        E::WebhookRejected => Problem::new(
            StatusCode::NOT_FOUND,
            "webhook-rejected",
            "Webhook rejected",
            "no installation accepted this delivery",
        ),
        E::RateLimited(limited) => rate_limited(limited, detail),
        E::TooManyConcurrentCalls { limit } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-concurrent-calls",
            "Too many tool calls at once",
            detail,
        )
        .with("limit", json!(limit))
        .retry_after(Duration::from_secs(1)),
        E::TooManyQueuedJobs { limit } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-queued-jobs",
            "Too many jobs queued",
            detail,
        )
        .with("limit", json!(limit))
        .retry_after(Duration::from_secs(1)),
        E::QuotaExceeded { resource, limit } => {
            Problem::new(StatusCode::CONFLICT, "quota-exceeded", "Quota exceeded", detail)
                .with("resource", json!(resource))
                .with("limit", json!(limit))
        }
        E::IdempotencyKeyReused => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
            detail,
        ),
        E::ReplayInProgress => Problem::new(StatusCode::CONFLICT, "replay-in-progress", "Replay in progress", detail),
        E::Store(_) | E::Crypto(_) | E::Internal(_) => {
            tracing::error!(error = %error, "internal error");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "an internal error occurred",
            )
        }
    }
}

/// 429 with `Retry-After` and the IETF `RateLimit-Policy`/`RateLimit` fields
/// (draft-ietf-httpapi-ratelimit-headers): the bucket's size `q` over the `w` seconds it takes to
/// refill, none `r` remaining, and `t` seconds until one is back.
fn rate_limited(limited: &RateLimited, detail: String) -> Problem {
    let policy = match limited.scope {
        RateScope::Api => "tenant",
        RateScope::Webhooks => "webhooks",
    };
    let refill = Duration::from_secs_f64(f64::from(limited.limit.burst) / limited.limit.per_sec);
    let wait = whole_seconds(limited.retry_after).max(1);
    let policy_field = format!(
        "\"{policy}\";q={};w={}",
        limited.limit.burst,
        whole_seconds(refill).max(1)
    );
    let state_field = format!("\"{policy}\";r=0;t={wait}");
    let mut problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Rate limit exceeded",
        detail,
    )
    .retry_after(limited.retry_after);
    for (name, value) in [("ratelimit-policy", policy_field), ("ratelimit", state_field)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            problem = problem.header(HeaderName::from_static(name), value);
        }
    }
    problem
}

/// How many field errors the `detail` line names; `errors` carries the reported ones in full.
const ERRORS_IN_DETAIL: usize = 3;

fn summary(errors: &FieldErrors) -> String {
    let mut parts: Vec<String> = errors
        .errors
        .iter()
        .take(ERRORS_IN_DETAIL)
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect();
    let more = errors.errors.len().saturating_sub(ERRORS_IN_DETAIL) + errors.omitted;
    if more > 0 {
        parts.push(format!("and {more} more"));
    }
    parts.join("; ")
}
