//! Slack connector: post messages and list channels over the Web API; verify Events API webhooks.
//!
//! Requests follow Slack's Web API contract: `Authorization: Bearer <bot token>`, JSON bodies with
//! an explicit charset, and failures reported as HTTP 200 `{"ok":false,"error":"…"}`.

mod api;
mod schema;
mod webhook;

use async_trait::async_trait;
use integrations_core::{
    Lifecycle, Plugin, PluginConfig, PluginContext, PluginError, PluginManifest, ToolError, ToolSpec, WebhookError,
    WebhookOutcome, WebhookRequest,
};
use serde_json::Value;

/// The Slack plugin.
#[derive(Debug, Default)]
pub struct SlackPlugin;

impl SlackPlugin {
    /// The plugin, as registered.
    pub fn new() -> Self {
        Self
    }
}

integrations_core::register_plugin!(SlackPlugin::new);

#[async_trait]
impl Plugin for SlackPlugin {
    fn manifest(&self) -> PluginManifest {
        PluginManifest {
            name: "slack",
            version: env!("CARGO_PKG_VERSION"),
            description: "Slack: post messages and list channels; receive Events API webhooks.",
        }
    }

    fn config_schema(&self) -> Value {
        schema::config_schema()
    }

    fn tools(&self) -> Vec<ToolSpec> {
        schema::tools()
    }

    async fn on_lifecycle(&self, ctx: &PluginContext, step: Lifecycle) -> Result<(), PluginError> {
        if matches!(step, Lifecycle::Install | Lifecycle::Configure) {
            let base = api::api_base_url(&ctx.config).map(String::from);
            ctx.check_destination_of("api_base_url", base).await?;
            api::SlackClient::new(ctx)?.check_credentials().await?;
        }
        Ok(())
    }

    async fn call_tool(&self, ctx: &PluginContext, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        let client = api::SlackClient::new(ctx)?;
        match tool {
            "slack_send_message" => client.send_message(&arguments).await,
            "slack_list_channels" => client.list_channels(&arguments).await,
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }

    fn verify_webhook(&self, config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
        webhook::verify(config, request)
    }
}
