//! What the service can refuse or fail with, one variant per kind of failure.

use std::time::Duration;

use integrations_core::{HttpError, ToolError};
use integrations_events::EventError;
use integrations_jobs::EnqueueError;
use integrations_secrets::CryptoError;
use integrations_store::StoreError;
use serde_json::Value;

use crate::{FieldError, FieldErrors, RateLimited};

/// Everything the service can refuse or fail with; [`crate::Problem`] maps each kind to one
/// problem type.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Missing or unknown credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Tenant id malformed.
    #[error("invalid tenant id: {0}")]
    InvalidTenantId(String),
    /// Request body malformed in a way the schema cannot express.
    #[error("{0}")]
    InvalidRequest(String),
    /// No such tenant (or not visible to the caller).
    #[error("tenant not found")]
    TenantNotFound,
    /// The tenant exists already.
    #[error("tenant already exists")]
    TenantExists,
    /// No such API key for the tenant.
    #[error("API key not found")]
    ApiKeyNotFound,
    /// No such plugin compiled in.
    #[error("plugin {0} not found")]
    PluginNotFound(String),
    /// The plugin is installed already.
    #[error("plugin {0} is already installed")]
    AlreadyInstalled(String),
    /// Flags do not let this tenant use the plugin.
    #[error("plugin {0} is not allowed for this tenant")]
    PluginNotAllowed(String),
    /// The plugin is not installed for this tenant.
    #[error("plugin {0} is not installed")]
    NotInstalled(String),
    /// The config violates the plugin's schema or the plugin's checks.
    #[error("invalid plugin configuration")]
    InvalidConfig(FieldErrors),
    /// No such tool available to the tenant.
    #[error("tool {0} not found")]
    ToolNotFound(String),
    /// Tool arguments violate the tool's input schema.
    #[error("invalid tool arguments")]
    InvalidArguments(FieldErrors),
    /// The vendor answered with an error.
    #[error("upstream answered {status}: {message}")]
    Upstream {
        /// The vendor's status.
        status: u16,
        /// Summary.
        message: String,
        /// The vendor's own error body.
        details: Value,
        /// The wait the vendor asked for (`Retry-After`), when it did.
        retry_after: Option<Duration>,
    },
    /// The outbound policy refused the destination.
    #[error("{0}")]
    DestinationRefused(String),
    /// The vendor could not be reached.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The tenant's breaker for this vendor is open: no request was made.
    #[error("the vendor has been failing; calls to it resume in {} s", .retry_after.as_secs_f64().ceil().max(1.0))]
    UpstreamCircuitOpen {
        /// When a call may go through again.
        retry_after: Duration,
    },
    /// The vendor's responses to one tool call exceeded the host's limit (budget or body cap).
    #[error("the vendor's responses exceed {limit_bytes} bytes, the most one tool call may read")]
    UpstreamResponseTooLarge {
        /// The limit that was passed.
        limit_bytes: usize,
    },
    /// A tool call did not finish within the host's deadline.
    #[error("the tool call did not finish within {} seconds", .0.as_secs_f64())]
    ToolDeadlineExceeded(Duration),
    /// The installation cannot serve the call.
    #[error("plugin is misconfigured: {0}")]
    Misconfigured(String),
    /// The installation's delegated authorisation must be renewed before its tools work again.
    #[error("plugin {plugin} must be authorised again: {reason}")]
    ReauthorizationRequired {
        /// The plugin.
        plugin: String,
        /// The identity platform's reason.
        reason: String,
    },
    /// No such job for the tenant.
    #[error("job not found")]
    JobNotFound,
    /// Only dead or failed jobs are retried.
    #[error("a {0} job cannot be retried; only dead or failed jobs can")]
    JobNotRetryable(&'static str),
    /// No such outbound webhook endpoint for this tenant.
    #[error("webhook endpoint not found")]
    WebhookEndpointNotFound,
    /// An outbound webhook endpoint's fields are unusable (a refused URL, malformed filters).
    #[error("invalid webhook endpoint")]
    InvalidWebhookEndpoint(FieldErrors),
    /// A webhook handshake answered alike for every tenant is malformed (an over-long token).
    #[error("{0}")]
    InvalidHandshake(String),
    /// A webhook was refused, for whatever reason: every refusal looks alike to the sender.
    #[error("webhook rejected")]
    WebhookRejected,
    /// The tenant is over its rate limit.
    #[error("rate limit exceeded; retry in {} ms", .0.retry_after.as_millis())]
    RateLimited(RateLimited),
    /// The tenant already has as many tool calls running as it may.
    #[error("the tenant already has {limit} tool calls running, the most it may have at once")]
    TooManyConcurrentCalls {
        /// The tenant's limit.
        limit: u32,
    },
    /// The tenant already has as many jobs queued or running as it may.
    #[error("the tenant already has {limit} jobs queued or running, the most it may have")]
    TooManyQueuedJobs {
        /// The tenant's limit.
        limit: u32,
    },
    /// The tenant has as many of a resource as it may.
    #[error("the tenant already has {limit} {resource}, the most it may have")]
    QuotaExceeded {
        /// What is counted (plural: `webhook endpoints`).
        resource: &'static str,
        /// The tenant's limit.
        limit: u32,
    },
    /// The idempotency key was used with another request.
    #[error("this Idempotency-Key was used with another request; use a new key for a new request")]
    IdempotencyKeyReused,
    /// A replay for the same endpoint is still being written.
    #[error("a replay for this endpoint is still under way; try again when it has finished")]
    ReplayInProgress,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ToolError> for ServiceError {
    fn from(error: ToolError) -> Self {
        match error {
            ToolError::UnknownTool(name) => ServiceError::ToolNotFound(name),
            ToolError::InvalidArguments(message) => ServiceError::InvalidArguments(
                vec![FieldError {
                    field: String::new(),
                    message,
                }]
                .into(),
            ),
            ToolError::Misconfigured(message) => ServiceError::Misconfigured(message),
            ToolError::Upstream {
                status,
                message,
                details,
            } => ServiceError::Upstream {
                status,
                message,
                details,
                retry_after: None,
            },
            ToolError::Http(HttpError::Refused(reason)) => ServiceError::DestinationRefused(reason),
            ToolError::Http(HttpError::BodyTooLarge(limit_bytes) | HttpError::ResponseBudgetExceeded(limit_bytes)) => {
                ServiceError::UpstreamResponseTooLarge { limit_bytes }
            }
            ToolError::Http(HttpError::CircuitOpen { retry_after }) => {
                ServiceError::UpstreamCircuitOpen { retry_after }
            }
            ToolError::Http(other) => ServiceError::UpstreamUnavailable(other.to_string()),
            ToolError::ReauthorizationRequired(reason) => ServiceError::ReauthorizationRequired {
                plugin: String::new(),
                reason,
            },
            ToolError::Internal(message) => ServiceError::Internal(message),
        }
    }
}

impl From<EnqueueError> for ServiceError {
    fn from(error: EnqueueError) -> Self {
        match error {
            EnqueueError::TooManyQueued { limit } => ServiceError::TooManyQueuedJobs { limit },
            EnqueueError::Store(error) => ServiceError::Store(error),
        }
    }
}

impl From<EventError> for ServiceError {
    fn from(error: EventError) -> Self {
        match error {
            // Deleted between the gate's check and the append.
            EventError::Store(StoreError::UnknownTenant) => ServiceError::TenantNotFound,
            EventError::Store(error) => ServiceError::Store(error),
            refused => ServiceError::InvalidRequest(refused.to_string()),
        }
    }
}
