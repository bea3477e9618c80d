use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::{
    HandshakeReply, HttpClient, NormalizedEvent, PluginConfig, TokenProvider, ToolError, ToolSpec, WebhookDelivery,
    WebhookError, WebhookOutcome, WebhookRequest,
};

/// Who a plugin is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginManifest {
    /// Unique, lowercase name; also the cargo feature and the URL segment (`jira`).
    pub name: &'static str,
    /// Semantic version of the plugin.
    pub version: &'static str,
    /// One sentence for people choosing a plugin.
    pub description: &'static str,
}

/// A lifecycle step the host is about to commit, giving the plugin a chance to refuse or prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// First configuration of the plugin for a tenant.
    Install,
    /// A new configuration replaces the stored one.
    Configure,
    /// Tools become available again.
    Enable,
    /// Tools stop being available; config is kept.
    Disable,
    /// Config and secrets are about to be deleted.
    Uninstall,
}

/// What the host hands a plugin for one call.
#[derive(Clone)]
pub struct PluginContext {
    /// The tenant the call is for.
    pub tenant_id: String,
    /// The tenant's decrypted configuration of this plugin (shared with the host's cache).
    pub config: Arc<PluginConfig>,
    /// The outbound HTTP client, with the host's policy applied.
    pub http: Arc<dyn HttpClient>,
    /// OAuth2 access tokens for this tenant's installation of the plugin (cached, single-flight).
    pub tokens: Arc<dyn TokenProvider>,
    /// The most pages one listing of this call may request: the operator's page cap
    /// (`INTEGRATIONS_TOOL_MAX_PAGES`). Read it through [`PluginContext::max_pages`].
    pub max_pages: usize,
}

impl PluginContext {
    /// The host's page cap unless the operator sets another.
    pub const DEFAULT_MAX_PAGES: usize = 100;

    /// How many pages one listing may request in this call, at least one. A vendor may send short
    /// pages with more to come, so a listing follows its cursor while items are still wanted, up
    /// to this many requests; at the cap it returns what it gathered with the cursor it was given.
    pub fn max_pages(&self) -> usize {
        self.max_pages.max(1)
    }

    /// Checks at install or configure that the base URL a tenant put in config field `field` may be
    /// called at all under the host's outbound policy; a refusal names the field.
    pub async fn check_destination_of(&self, field: &str, url: Result<String, String>) -> Result<(), PluginError> {
        let invalid = |message: String| PluginError::InvalidConfig {
            field: field.to_owned(),
            message,
        };
        let url = url.map_err(invalid)?;
        self.http
            .check_destination(&url)
            .await
            .map_err(|error| invalid(error.to_string()))
    }
}

/// Why a lifecycle step was refused.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The configuration is unusable; `field` names the culprit.
    #[error("{field}: {message}")]
    InvalidConfig {
        /// The offending config field.
        field: String,
        /// Why it is wrong.
        message: String,
    },
    /// Any other failure of the step.
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// A connector to one external system.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Name, version and description.
    fn manifest(&self) -> PluginManifest;

    /// JSON Schema of the plugin's configuration; secret fields carry `"writeOnly": true`. A secret
    /// that must not outlive a change of another field (a token and the host it is sent to) lists
    /// those fields in `"x-bound-to"`: configure then requires the secret again when they change.
    fn config_schema(&self) -> Value;

    /// The tools this plugin offers.
    fn tools(&self) -> Vec<ToolSpec>;

    /// Called before the host commits a lifecycle step; the config has already passed the schema.
    /// Install and configure use it to check the config (and may check credentials).
    async fn on_lifecycle(&self, ctx: &PluginContext, step: Lifecycle) -> Result<(), PluginError> {
        let _ = (ctx, step);
        Ok(())
    }

    /// The response budget a call of `tool` needs when it is more than the host's default (a file
    /// download up to a size the installation configured). The host grants it up to its own
    /// ceiling; `None` keeps the default.
    fn response_budget(&self, tool: &str, config: &PluginConfig) -> Option<usize> {
        let _ = (tool, config);
        None
    }

    /// Runs a tool; the host has validated `arguments` against its `input_schema`.
    async fn call_tool(&self, ctx: &PluginContext, tool: &str, arguments: Value) -> Result<Value, ToolError>;

    /// Answers a handshake the vendor sends to a webhook URL before any delivery and that needs no
    /// installation to answer (Microsoft Graph's `validationToken`). The host asks before it looks
    /// the tenant up, so the answer is the same for every tenant, whether it exists or has the
    /// plugin installed, and tells nobody who uses what. `None`: not such a handshake, so the
    /// request is verified as a delivery; an error is refused alike for every tenant.
    fn answer_handshake(&self, request: &WebhookRequest) -> Option<Result<HandshakeReply, WebhookError>> {
        let _ = request;
        None
    }

    /// Verifies an inbound webhook with the tenant's config, in constant time where a MAC is compared.
    fn verify_webhook(&self, config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError>;

    /// Turns a verified, stored delivery into the events it means, after it was acknowledged. The
    /// default yields one event per delivery; a connector whose deliveries batch several
    /// notifications (Microsoft Graph) yields one each. Runs off the request path, on the stored
    /// bytes, so it must not fail: anything unexpected becomes the default event.
    fn normalize_webhook(&self, delivery: &WebhookDelivery<'_>) -> Vec<NormalizedEvent> {
        vec![crate::default_normalized_event(self.manifest().name, delivery)]
    }
}
