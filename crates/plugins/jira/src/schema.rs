use integrations_core::ToolSpec;
use serde_json::{json, Value};

pub fn config_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["host", "email", "api_token"],
        "properties": {
            "host": {
                "type": "string",
                "pattern": "^https?://",
                "description": "Your Jira Cloud site, e.g. https://your-site.atlassian.net"
            },
            "email": {
                "type": "string",
                "pattern": "^[^@\\s]+@[^@\\s]+$",
                "description": "The Atlassian account email the API token belongs to"
            },
            "api_token": {
                "type": "string",
                "minLength": 1,
                "writeOnly": true,
                "x-bound-to": ["host", "email"],
                "description": "Atlassian API token (id.atlassian.com → Security → API tokens)"
            },
            "webhook_secret": {
                "type": "string",
                "minLength": 1,
                "writeOnly": true,
                "description": "Secret of the Jira admin webhook; required to accept webhooks"
            }
        }
    })
}

pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "jira_create_issue".into(),
            description: "Create a Jira issue in a project. Returns the new issue's id and key.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["project", "summary"],
                "properties": {
                    "project": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]{0,254}$", "description": "Project key, e.g. ABC"},
                    "summary": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": {"type": "string", "description": "Plain text; blank lines separate paragraphs"},
                    "issue_type": {"type": "string", "minLength": 1, "default": "Task", "description": "Issue type name, e.g. Task, Bug, Story"}
                }
            }),
        },
        ToolSpec {
            name: "jira_get_issue".into(),
            description: "Get a Jira issue by key (ABC-123) or id.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["issue_key"],
                "properties": {
                    "issue_key": {"type": "string", "pattern": "^([A-Z][A-Z0-9_]*-[0-9]+|[0-9]+)$"},
                    "fields": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "Fields to return (default: all navigable)"}
                }
            }),
        },
        ToolSpec {
            name: "jira_search_issues".into(),
            description: "Search Jira issues with JQL, following nextPageToken while fewer than max_results issues have come (pages may be short) until the last page or the host's page cap. Returns issues, is_last, and next_page_token when Jira has more."
                .into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["jql"],
                "properties": {
                    "jql": {"type": "string", "minLength": 1},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                    "fields": {"type": "array", "items": {"type": "string", "minLength": 1}, "default": ["summary", "status"]}
                }
            }),
        },
    ]
}
