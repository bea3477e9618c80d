use integrations_core::{JsonRequest, PluginContext, PluginError, ToolError};
use integrations_msgraph::{id_segment, GraphClient, GraphSettings};
use serde_json::{json, Value};

/// The delegated scope asked for when refreshing: only what posting needs (`ChannelMessage.Send`),
/// plus `offline_access` so that the identity platform keeps issuing refresh tokens. The refresh
/// token must have been granted with at least these scopes.
pub const SEND_MESSAGE_SCOPE: &str = "https://graph.microsoft.com/ChannelMessage.Send offline_access";

/// The secret field holding the delegated refresh token.
const REFRESH_TOKEN_FIELD: &str = "refresh_token";

/// One client per call: the team, and a Graph client per credential the tools use.
pub struct TeamsClient {
    settings: GraphSettings,
    team: String,
    app: GraphClient,
    delegated: Option<GraphClient>,
}

impl TeamsClient {
    /// Reads the Graph settings and `team_id`; the delegated client exists when `refresh_token` is set.
    pub fn new(ctx: &PluginContext) -> Result<Self, PluginError> {
        let settings = GraphSettings::from_config(&ctx.config)?;
        let invalid = |message: String| PluginError::InvalidConfig {
            field: "team_id".into(),
            message,
        };
        let team = id_segment(
            ctx.config
                .str("team_id")
                .ok_or_else(|| invalid("team_id is required".into()))?,
        )
        .map_err(invalid)?;
        let app = GraphClient::new(ctx, settings.app_token_request());
        let delegated = ctx.config.secret(REFRESH_TOKEN_FIELD).map(|_| {
            GraphClient::new(
                ctx,
                settings.delegated_token_request(REFRESH_TOKEN_FIELD, SEND_MESSAGE_SCOPE),
            )
        });
        Ok(Self {
            settings,
            team,
            app,
            delegated,
        })
    }

    /// `teams_send_message`: `POST /v1.0/teams/{team}/channels/{channel}/messages` with the
    /// delegated token, because Graph lets no app-only token post ordinary channel messages.
    pub async fn send_message(&self, args: &Value) -> Result<Value, ToolError> {
        let delegated = self.delegated.as_ref().ok_or_else(|| {
            ToolError::Misconfigured(
                "posting channel messages needs a delegated refresh_token (ChannelMessage.Send); configure one".into(),
            )
        })?;
        let channel = id_segment(str_arg(args, "channel_id")?).map_err(ToolError::InvalidArguments)?;
        let content_type = args.get("content_type").and_then(Value::as_str).unwrap_or("text");
        let url = self
            .settings
            .graph_url(&format!("v1.0/teams/{}/channels/{channel}/messages", self.team))?;
        let body = json!({"body": {"contentType": content_type, "content": str_arg(args, "content")?}});
        delegated.json(&JsonRequest::post(url).json(&body)).await
    }

    /// `teams_create_channel`: `POST /v1.0/teams/{team}/channels`, a standard channel, app-only.
    pub async fn create_channel(&self, args: &Value) -> Result<Value, ToolError> {
        let url = self.settings.graph_url(&format!("v1.0/teams/{}/channels", self.team))?;
        let mut body = json!({"displayName": str_arg(args, "display_name")?, "membershipType": "standard"});
        if let Some(description) = args.get("description").and_then(Value::as_str) {
            body["description"] = json!(description);
        }
        self.app.json(&JsonRequest::post(url).json(&body)).await
    }
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("{name} is required")))
}
