use serde::Serialize;
use serde_json::Value;

use crate::{HttpError, TokenError};

/// A tool a plugin offers: its name is global across plugins, `input_schema` is JSON Schema.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSpec {
    /// Globally unique tool name, prefixed with the plugin name (`jira_create_issue`).
    pub name: String,
    /// What the tool does, written for a person or an LLM choosing tools.
    pub description: String,
    /// JSON Schema the arguments must satisfy; the host validates before calling the plugin.
    pub input_schema: Value,
}

/// Why a tool call failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The plugin has no tool of this name.
    #[error("unknown tool {0}")]
    UnknownTool(String),
    /// Arguments passed the schema but are still unusable.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The installation's config cannot serve this call.
    #[error("plugin is misconfigured: {0}")]
    Misconfigured(String),
    /// The vendor answered with an error; `details` carries its own error body.
    #[error("upstream answered {status}: {message}")]
    Upstream {
        /// The vendor's HTTP status.
        status: u16,
        /// A one-line summary.
        message: String,
        /// The vendor's error payload as it sent it (for Jira: `errorMessages` and `errors`).
        details: Value,
    },
    /// The vendor could not be reached or the destination was refused.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The installation's delegated authorisation stopped working (a refresh token was revoked or
    /// expired); someone must authorise again and configure the new credential.
    #[error("the installation must be authorised again: {0}")]
    ReauthorizationRequired(String),
    /// The host could not build the request it meant to send (a body that cannot be written as
    /// JSON, a URL or header the HTTP types refuse): our fault, not the caller's or the vendor's.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<TokenError> for ToolError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Refused {
                status,
                code,
                description,
            } => ToolError::Upstream {
                status,
                message: format!("the token endpoint refused the credentials: {code}"),
                details: serde_json::json!({"error": code, "error_description": description}),
            },
            TokenError::ReauthorizationRequired(reason) => ToolError::ReauthorizationRequired(reason),
            TokenError::Malformed { status } => ToolError::Upstream {
                status,
                message: "the token endpoint answered with a body that is not a token response".into(),
                details: serde_json::Value::Null,
            },
            TokenError::Http(error) => ToolError::Http(error),
            TokenError::Unavailable(reason) => ToolError::Misconfigured(reason),
        }
    }
}
