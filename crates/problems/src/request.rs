//! Failures of a request itself, before or beside the service: what the REST API, the MCP
//! endpoint and the host's request timeout answer when there is nothing for the service to do.

use std::time::Duration;

use http::StatusCode;

use crate::Problem;

/// A request the host refuses or could not finish, whichever front end received it.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
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
    RequestTimeout(Duration),
    /// An `Mcp-Session-Id` that names no MCP session of the caller's tenant: unknown, ended, or
    /// another tenant's (which must look exactly like unknown).
    #[error("no such MCP session; initialize a new one")]
    McpSessionNotFound,
    /// The `Idempotency-Key` header is repeated, empty, too long or not printable ASCII.
    #[error("invalid Idempotency-Key: {0}")]
    InvalidIdempotencyKey(&'static str),
}

impl From<&RequestError> for Problem {
    fn from(error: &RequestError) -> Self {
        use RequestError as E;
        let detail = error.to_string();
        match error {
            E::MalformedJson(_) => Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON", detail),
            E::PayloadTooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                detail,
            ),
            E::InvalidParameters(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameters",
                "Invalid parameters",
                detail,
            ),
            E::BadBody => Problem::new(StatusCode::BAD_REQUEST, "bad-body", "Bad request body", detail),
            E::InvalidTenantHeader(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-tenant-header",
                "Invalid tenant header",
                detail,
            ),
            E::AdminUnauthorized => Problem::unauthorized(detail),
            E::RouteNotFound => Problem::new(StatusCode::NOT_FOUND, "route-not-found", "Not found", detail),
            E::MethodNotAllowed => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                detail,
            ),
            E::RequestTimeout(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request-timeout",
                "Request timed out",
                detail,
            ),
            E::McpSessionNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "mcp-session-not-found",
                "MCP session not found",
                detail,
            ),
            E::InvalidIdempotencyKey(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                detail,
            ),
        }
    }
}
