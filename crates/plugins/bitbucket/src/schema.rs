use integrations_core::ToolSpec;
use serde_json::{json, Value};

use crate::api::DEFAULT_API_BASE_URL;

/// The installation's config: secrets are `writeOnly`; a credential is bound to the host it is sent
/// to. Exactly one credential form (`access_token`, or `email` + `api_token`) is checked at install.
pub fn config_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["workspace"],
        "properties": {
            "workspace": {
                "type": "string",
                "minLength": 1,
                "description": "Workspace slug or UUID the repositories live in"
            },
            "access_token": {
                "type": "string",
                "pattern": "^[\\x21-\\x7E]+$",
                "writeOnly": true,
                "x-bound-to": ["api_base_url"],
                "description": "Repository or workspace access token, sent as a bearer token (or use email + api_token)"
            },
            "email": {
                "type": "string",
                "minLength": 1,
                "description": "Atlassian account email the api_token belongs to"
            },
            "api_token": {
                "type": "string",
                "pattern": "^[\\x21-\\x7E]+$",
                "writeOnly": true,
                "x-bound-to": ["api_base_url"],
                "description": "Atlassian API token, sent with email as Basic auth"
            },
            "webhook_secret": {
                "type": "string",
                "minLength": 1,
                "writeOnly": true,
                "description": "Secret of the repository webhook; required to accept webhooks"
            },
            "api_base_url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://",
                "default": DEFAULT_API_BASE_URL,
                "description": "Base URL of the Bitbucket Cloud REST 2.0 API"
            }
        }
    })
}

/// The tools and their input schemas.
pub fn tools() -> Vec<ToolSpec> {
    let repo_slug = json!({"type": "string", "minLength": 1, "description": "Repository slug within the workspace"});
    vec![
        ToolSpec {
            name: "bitbucket_get_repository".into(),
            description: "Read one repository of the workspace, as Bitbucket describes it.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["repo_slug"],
                "properties": {"repo_slug": repo_slug}
            }),
        },
        ToolSpec {
            name: "bitbucket_list_pull_requests".into(),
            description: "List a repository's pull requests, following next while fewer than limit have come (pages may be short) until the last page or the host's page cap. Returns values, and next when Bitbucket has more.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["repo_slug"],
                "properties": {
                    "repo_slug": repo_slug,
                    "state": {"type": "string", "enum": ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
                }
            }),
        },
        ToolSpec {
            name: "bitbucket_create_pr_comment".into(),
            description: "Comment on a pull request. Returns the new comment.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["repo_slug", "pull_request_id", "text"],
                "properties": {
                    "repo_slug": repo_slug,
                    "pull_request_id": {"type": "integer", "minimum": 1},
                    "text": {"type": "string", "minLength": 1, "description": "Comment text (Markdown)"}
                }
            }),
        },
    ]
}
