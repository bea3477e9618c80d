use integrations_core::ToolSpec;
use serde_json::{json, Value};

use crate::api::DEFAULT_API_BASE_URL;

pub fn config_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["bot_token"],
        "properties": {
            "bot_token": {
                "type": "string",
                "pattern": "^[\\x21-\\x7E]+$",
                "writeOnly": true,
                "x-bound-to": ["api_base_url"],
                "description": "Bot User OAuth Token (xoxb-…) of your Slack app"
            },
            "signing_secret": {
                "type": "string",
                "minLength": 1,
                "writeOnly": true,
                "description": "Signing Secret of your Slack app; required to accept Events API webhooks"
            },
            "api_base_url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://",
                "default": DEFAULT_API_BASE_URL,
                "description": "Base URL of the Slack Web API"
            }
        }
    })
}

pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "slack_send_message".into(),
            description: "Post a message to a Slack channel. Returns the channel and the message's ts.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["channel", "text"],
                "properties": {
                    "channel": {"type": "string", "minLength": 1, "description": "Channel id (C123…) or name"},
                    "text": {"type": "string", "minLength": 1, "description": "Message text (Slack mrkdwn)"}
                }
            }),
        },
        ToolSpec {
            name: "slack_list_channels".into(),
            description: "List Slack channels, following next_cursor while fewer than limit channels have come (pages may be short) until the last page or the host's page cap. Returns channels, and next_cursor when Slack has more.".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "types": {"type": "string", "pattern": "^(public_channel|private_channel|mpim|im)(,(public_channel|private_channel|mpim|im))*$", "description": "Comma-separated, e.g. public_channel,private_channel"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "exclude_archived": {"type": "boolean"}
                }
            }),
        },
    ]
}
