//! Errors at the HTTP edge, as RFC 9457 `application/problem+json` with a stable `type` per kind.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use integrations_service::{FieldErrors, ServiceError};
use serde_json::{json, Map, Value};

/// Prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "https://integrations.dev/problems/";

/// An error as the API reports it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the service.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The body is not valid JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body exceeds the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// A path or query parameter is malformed.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// The body could not be read.
    #[error("could not read the request body")]
    BadBody,
    /// The trusted gateway's `X-Tenant-Id` is repeated, empty or not a tenant id.
    #[error("invalid X-Tenant-Id header: {0}")]
    InvalidTenantHeader(&'static str),
    /// The admin API is disabled or the admin token is wrong.
    #[error("admin API unavailable")]
    AdminUnauthorized,
    /// No route.
    #[error("no such route")]
    RouteNotFound,
    /// Route exists, method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request (body and handling) did not finish within the server's request timeout.
    #[error("the request did not complete within {} seconds", .0.as_secs_f64())]
    RequestTimeout(std::time::Duration),
    /// An `Mcp-Session-Id` that names no MCP session of the caller's tenant: unknown, ended, or
    /// another tenant's (which must look exactly like unknown).
    #[error("no such MCP session; initialize a new one")]
    McpSessionNotFound,
    #[error("invalid Idempotency-Key: {0}")]
    InvalidIdempotencyKey(&'static str),
}

struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `Retry-After` in whole seconds, at least one (a client that retries sooner is refused again).
    fn retry_after(self, wait: std::time::Duration) -> Self {
        let seconds = whole_seconds(wait);
        self.with("retry_after", json!(seconds))
            .header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }
}

fn from_service(error: &ServiceError) -> Problem {
    use ServiceError as E;
    let detail = error.to_string();
    match error {
        E::Unauthorized => Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail),
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
        .retry_after(std::time::Duration::from_secs(1)),
        E::TooManyQueuedJobs { limit } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-queued-jobs",
            "Too many jobs queued",
            detail,
        )
        .with("limit", json!(limit))
        .retry_after(std::time::Duration::from_secs(1)),
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

/// How many field errors the `detail` line names; `errors` carries the reported ones in full.
fn whole_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// 429 with `Retry-After` and the IETF `RateLimit-Policy`/`RateLimit` fields
/// (draft-ietf-httpapi-ratelimit-headers): the bucket's size `q` over the `w` seconds it takes to
/// refill, none `r` remaining, and `t` seconds until one is back.
fn rate_limited(limited: &integrations_service::RateLimited, detail: String) -> Problem {
    let policy = match limited.scope {
        integrations_service::RateScope::Api => "tenant",
        integrations_service::RateScope::Webhooks => "webhooks",
    };
    let refill = std::time::Duration::from_secs_f64(f64::from(limited.limit.burst) / limited.limit.per_sec);
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
            problem = problem.header(header::HeaderName::from_static(name), value);
        }
    }
    problem
}

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

impl ApiError {
    /// The RFC 9457 problem document and its status: what the REST API answers, and what an MCP
    /// tool result carries when the same failure happens there.
    pub fn problem_document(&self) -> (StatusCode, Value) {
        let problem = self.problem();
        (problem.status, problem.document())
    }

    fn problem(&self) -> Problem {
        match self {
            ApiError::Service(error) => from_service(error),
            ApiError::MalformedJson(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                self.to_string(),
            ),
            ApiError::PayloadTooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                self.to_string(),
            ),
            ApiError::InvalidParameters(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameters",
                "Invalid parameters",
                self.to_string(),
            ),
            ApiError::BadBody => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "Bad request body",
                self.to_string(),
            ),
            ApiError::InvalidTenantHeader(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-tenant-header",
                "Invalid tenant header",
                self.to_string(),
            ),
            ApiError::AdminUnauthorized => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                self.to_string(),
            ),
            ApiError::RouteNotFound => {
                Problem::new(StatusCode::NOT_FOUND, "route-not-found", "Not found", self.to_string())
            }
            ApiError::MethodNotAllowed => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                self.to_string(),
            ),
            ApiError::RequestTimeout(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request-timeout",
                "Request timed out",
                self.to_string(),
            ),
            ApiError::InvalidIdempotencyKey(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                self.to_string(),
            ),
            ApiError::McpSessionNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "mcp-session-not-found",
                "MCP session not found",
                self.to_string(),
            ),
        }
    }
}

impl Problem {
    fn document(self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("{PROBLEM_TYPE_PREFIX}{}", self.slug)));
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.extend(self.extensions);
        Value::Object(body)
    }
}

/// A problem document as it is written out; the same members as [`Problem::document`].
#[derive(serde::Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    problem_type: std::fmt::Arguments<'a>,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(flatten)]
    extensions: &'a Map<String, Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut problem = self.problem();
        let (status, challenge) = (
            problem.status,
            problem.status == StatusCode::UNAUTHORIZED && problem.slug == "unauthorized",
        );
        let extra_headers = std::mem::take(&mut problem.headers);
        // Written straight from the problem's fields: no document tree to build and then print.
        let body = serde_json::to_vec(&ProblemBody {
            problem_type: format_args!("{PROBLEM_TYPE_PREFIX}{}", problem.slug),
            title: problem.title,
            status: problem.status.as_u16(),
            detail: &problem.detail,
            extensions: &problem.extensions,
        })
        .unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.extend(extra_headers);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
