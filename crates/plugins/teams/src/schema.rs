use integrations_core::ToolSpec;
use serde_json::{json, Value};

/// The shared Graph app fields, plus the team and the delegated refresh token for posting. The
/// refresh token belongs to one app in one tenant and is sent to the login host, so it is bound
/// to all four.
pub fn config_schema() -> Value {
    integrations_msgraph::schema::config_schema(
        json!({
            "team_id": {
                "type": "string",
                "minLength": 1,
                "description": "Id of the team (the group id, a GUID) the tools act on"
            },
            "refresh_token": {
                "type": "string",
                "minLength": 1,
                "writeOnly": true,
                "x-bound-to": ["tenant_id", "client_id", "login_base_url", "graph_base_url"],
                "description": "Delegated refresh token granted ChannelMessage.Send and offline_access; needed to post messages (Graph lets no app-only token post)"
            }
        }),
        &["team_id"],
    )
}

/// The tools and their input schemas.
pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "teams_send_message".into(),
            description: "Post a message to a channel of the team, as the user who granted the refresh token. Returns the new chatMessage (id, webUrl, …).".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["channel_id", "content"],
                "properties": {
                    "channel_id": {"type": "string", "minLength": 1, "description": "Channel id, e.g. 19:…@thread.tacv2"},
                    "content": {"type": "string", "minLength": 1, "description": "Message body"},
                    "content_type": {"type": "string", "enum": ["text", "html"], "default": "text", "description": "How Teams reads content"}
                }
            }),
        },
        ToolSpec {
            name: "teams_create_channel".into(),
            description: "Create a standard channel in the team. Returns the new channel (id, displayName, …).".into(),
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["display_name"],
                "properties": {
                    "display_name": {"type": "string", "minLength": 1, "maxLength": 50, "description": "Channel name as shown in Teams"},
                    "description": {"type": "string", "maxLength": 1024, "description": "Optional description"}
                }
            }),
        },
    ]
}
