//! The contract between the host and its connectors: the [`Plugin`] trait, the types a plugin
//! exchanges with the host (config, tools, webhooks, outbound HTTP) and the link-time registry.
//!
//! Deliberately light: no web framework, no database. The host owns storage, encryption, flags
//! and routing; a plugin sees only what [`PluginContext`] hands it.

mod base_url;
mod config;
mod event;
mod http_client;
mod ids;
mod json_request;
mod oauth2;
mod plugin;
mod registry;
mod tool;
mod webhook;

pub use base_url::parse_base_url;
pub use config::{PluginConfig, Secret};
pub use event::{
    body_as_text_data, default_normalized_event, event_type_name, EventData, NormalizedEvent, WebhookDelivery,
};
pub use http_client::{retry_after_secs, HttpClient, HttpError, HttpRequest, HttpResponse};
pub use ids::{EndpointId, InvalidId, JobId, KeyId, PluginName, TenantId, ToolName};
pub use json_request::JsonRequest;
pub use oauth2::{NoTokenProvider, TokenError, TokenGrant, TokenProvider, TokenRequest};
pub use plugin::{Lifecycle, Plugin, PluginContext, PluginError, PluginManifest};
pub use registry::{PluginRegistration, PluginRegistry, RegisteredPlugin, RegistryError};
pub use tool::{ToolError, ToolSpec};
pub use webhook::{HandshakeReply, VerifiedWebhook, WebhookError, WebhookOutcome, WebhookRequest};

#[doc(hidden)]
pub use inventory;

/// Registers a plugin with the host at link time.
///
/// `register_plugin!(JiraPlugin::new)` takes a constructor; the host calls it once at start-up.
#[macro_export]
macro_rules! register_plugin {
    ($constructor:path) => {
        $crate::inventory::submit! {
            $crate::PluginRegistration::new(|| ::std::sync::Arc::new($constructor()))
        }
    };
}
