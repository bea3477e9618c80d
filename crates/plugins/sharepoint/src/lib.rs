//! SharePoint connector: upload, download and list files in a site's default document library over
//! Microsoft Graph; receive Graph change notifications.
//!
//! What every Graph connector does (config, tokens from the host's token manager, one retry after
//! a 401, Graph errors, the credential check, change notifications) lives in `integrations-msgraph`;
//! `api.rs` holds the drive calls, `schema.rs` the config and tools; this file only dispatches.

mod api;
mod schema;

use async_trait::async_trait;
use integrations_core::{
    HandshakeReply, Lifecycle, NormalizedEvent, Plugin, PluginConfig, PluginContext, PluginError, PluginManifest,
    ToolError, ToolSpec, WebhookDelivery, WebhookError, WebhookOutcome, WebhookRequest,
};
use serde_json::Value;

/// The SharePoint plugin.
#[derive(Debug, Default)]
pub struct SharePointPlugin;

impl SharePointPlugin {
    /// The plugin, as registered.
    pub fn new() -> Self {
        Self
    }
}

integrations_core::register_plugin!(SharePointPlugin::new);

#[async_trait]
impl Plugin for SharePointPlugin {
    fn manifest(&self) -> PluginManifest {
        PluginManifest {
            name: "sharepoint",
            version: env!("CARGO_PKG_VERSION"),
            description: "SharePoint: upload, download and list files of a site; receive Graph change notifications.",
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
            api::SharePointClient::new(ctx)?;
            integrations_msgraph::check_credentials(ctx).await?;
        }
        Ok(())
    }

    fn response_budget(&self, tool: &str, config: &PluginConfig) -> Option<usize> {
        (tool == "sharepoint_download_file").then(|| api::download_budget(config))
    }

    async fn call_tool(&self, ctx: &PluginContext, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        let client = api::SharePointClient::new(ctx).map_err(|e| match e {
            PluginError::Tool(tool_error) => tool_error,
            invalid => ToolError::Misconfigured(invalid.to_string()),
        })?;
        match tool {
            "sharepoint_upload_file" => client.upload_file(&arguments).await,
            "sharepoint_download_file" => client.download_file(&arguments).await,
            "sharepoint_list_files" => client.list_files(&arguments).await,
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }

    fn answer_handshake(&self, request: &WebhookRequest) -> Option<Result<HandshakeReply, WebhookError>> {
        integrations_msgraph::validation_handshake(request)
    }

    fn verify_webhook(&self, config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
        integrations_msgraph::verify_change_notification(config, request)
    }

    fn normalize_webhook(&self, delivery: &WebhookDelivery<'_>) -> Vec<NormalizedEvent> {
        integrations_msgraph::normalize_change_notifications(delivery)
    }
}
