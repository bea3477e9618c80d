//! Jira Cloud connector: create, get and search issues over REST v3; verify admin webhooks.
//!
//! Requests follow Atlassian's v3 contract: Basic auth with email and API token, descriptions in
//! Atlassian Document Format, search through `POST /rest/api/3/search/jql` with `nextPageToken`.
//! Install and configure check the credentials with `GET /rest/api/3/myself`.

mod adf;
mod api;
mod schema;
mod webhook;

use async_trait::async_trait;
use integrations_core::{
    Lifecycle, Plugin, PluginConfig, PluginContext, PluginError, PluginManifest, ToolError, ToolSpec, WebhookError,
    WebhookOutcome, WebhookRequest,
};
use serde_json::Value;

/// The Jira plugin.
#[derive(Debug, Default)]
pub struct JiraPlugin;

impl JiraPlugin {
    /// The plugin, as registered.
    pub fn new() -> Self {
        Self
    }
}

integrations_core::register_plugin!(JiraPlugin::new);

#[async_trait]
impl Plugin for JiraPlugin {
    fn manifest(&self) -> PluginManifest {
        PluginManifest {
            name: "jira",
            version: env!("CARGO_PKG_VERSION"),
            description: "Jira Cloud: create, read and search issues; receive issue webhooks.",
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
            let host = api::site_url(&ctx.config).map(String::from);
            ctx.check_destination_of("host", host).await?;
            api::JiraClient::new(ctx)?.check_credentials().await?;
        }
        Ok(())
    }

    async fn call_tool(&self, ctx: &PluginContext, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        let client = api::JiraClient::new(ctx)?;
        match tool {
            "jira_create_issue" => client.create_issue(&arguments).await,
            "jira_get_issue" => client.get_issue(&arguments).await,
            "jira_search_issues" => client.search_issues(&arguments).await,
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }

    fn verify_webhook(&self, config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
        webhook::verify(config, request)
    }
}
