//! The plugins a tenant sees: their state, details and upstream breakers. Their lifecycle is
//! [`lifecycle`]'s.

mod lifecycle;

use integrations_core::{PluginName, RegisteredPlugin, TenantId, ToolSpec};
use integrations_store::{Installation, InstallationState};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Service, ServiceError};

/// A plugin's state for one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Not installed.
    NotInstalled,
    /// Installed and enabled.
    Enabled,
    /// Installed, disabled.
    Disabled,
    /// Installed, but this build does not include the connector (rebuilt without it): its tools
    /// and webhooks are off, and uninstall still removes its configuration and secrets.
    Unavailable,
}

impl From<InstallationState> for PluginState {
    fn from(state: InstallationState) -> Self {
        match state {
            InstallationState::Enabled => Self::Enabled,
            InstallationState::Disabled => Self::Disabled,
        }
    }
}

/// A plugin in the tenant's list.
#[derive(Clone, Debug, Serialize)]
pub struct PluginSummary {
    /// Name.
    pub name: String,
    /// Version.
    pub version: &'static str,
    /// Description.
    pub description: &'static str,
    /// This tenant's state.
    pub state: PluginState,
    /// Whether flags let this tenant use it.
    pub allowed: bool,
    /// Whether the installation's delegated authorisation stopped working (a refresh token was
    /// revoked or expired): configure it with a new credential.
    pub needs_reauthorization: bool,
}

/// Everything about one plugin for one tenant; never any secret value.
#[derive(Clone, Debug, Serialize)]
pub struct PluginDetails {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: PluginSummary,
    /// JSON Schema of the config.
    pub config_schema: Value,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
    /// Non-secret config fields, when installed.
    pub config: Option<Map<String, Value>>,
    /// Names of secret fields that hold a value, when installed.
    pub secrets_set: Option<Vec<String>>,
    /// Where the vendor should send webhooks, when installed.
    pub webhook_url: Option<String>,
    /// The identity platform's reason, when the installation needs re-authorisation.
    pub reauthorization_reason: Option<String>,
    /// The tenant's circuit breaker for the plugin's upstream, on this replica.
    pub upstream: UpstreamView,
}

/// The state of a tenant's breaker for a plugin's upstream (the worst of its hosts).
#[derive(Clone, Debug, Serialize)]
pub struct UpstreamView {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// When an open breaker lets a call through again (RFC 3339), else `null`.
    pub retry_at: Option<String>,
}

impl Service {
    /// The plugin and the tenant's installation of it; 404s for an unknown plugin or tenant, or
    /// a plugin not installed.
    async fn installed(
        &self,
        tenant_id: &TenantId,
        name: &str,
    ) -> Result<(&RegisteredPlugin, Installation), ServiceError> {
        let registered = self.plugin(name)?;
        self.tenant(tenant_id).await?;
        let installation = self
            .store
            .get_installation(tenant_id, name)
            .await?
            .ok_or_else(|| ServiceError::NotInstalled(name.to_string()))?;
        Ok((registered, installation))
    }

    pub(crate) fn plugin(&self, name: &str) -> Result<&RegisteredPlugin, ServiceError> {
        self.registry
            .get(name)
            .ok_or_else(|| ServiceError::PluginNotFound(name.to_string()))
    }

    /// The compiled-in plugins with this tenant's state, then any installation whose connector
    /// this build lacks, as `unavailable`.
    pub async fn list_plugins(&self, tenant_id: &TenantId) -> Result<Vec<PluginSummary>, ServiceError> {
        let gate = self.existing_gate(tenant_id).await?;
        let mut plugins: Vec<PluginSummary> = self
            .registry
            .plugins()
            .map(|registered| {
                let manifest = registered.plugin.manifest();
                let state = gate
                    .installation(manifest.name)
                    .map_or(PluginState::NotInstalled, |i| i.state.into());
                PluginSummary {
                    name: manifest.name.to_string(),
                    version: manifest.version,
                    description: manifest.description,
                    state,
                    allowed: gate.allowed(self, manifest.name),
                    needs_reauthorization: gate
                        .installation(manifest.name)
                        .is_some_and(|i| i.reauthorization_reason.is_some()),
                }
            })
            .collect();
        plugins.extend(
            gate.installations
                .iter()
                .filter(|i| self.registry.get(&i.plugin).is_none())
                .map(|orphan| PluginSummary {
                    name: orphan.plugin.clone(),
                    version: "",
                    description: "not included in this build; uninstall removes its configuration and secrets",
                    state: PluginState::Unavailable,
                    allowed: false,
                    needs_reauthorization: orphan.reauthorization_reason.is_some(),
                }),
        );
        Ok(plugins)
    }

    /// One plugin with this tenant's state and redacted config.
    pub async fn plugin_details(&self, tenant_id: &TenantId, name: &PluginName) -> Result<PluginDetails, ServiceError> {
        let registered = self.plugin(name)?;
        let gate = self.existing_gate(tenant_id).await?;
        let manifest = registered.plugin.manifest();
        let installation = gate.installation(name).cloned();
        let secrets_set = match &installation {
            Some(_) => Some(
                self.store
                    .get_secrets(tenant_id, name)
                    .await?
                    .into_iter()
                    .map(|s| s.field)
                    .collect(),
            ),
            None => None,
        };
        Ok(PluginDetails {
            summary: PluginSummary {
                name: manifest.name.to_string(),
                version: manifest.version,
                description: manifest.description,
                state: installation
                    .as_ref()
                    .map_or(PluginState::NotInstalled, |i| i.state.into()),
                allowed: gate.allowed(self, name),
                needs_reauthorization: installation
                    .as_ref()
                    .is_some_and(|i| i.reauthorization_reason.is_some()),
            },
            reauthorization_reason: installation.as_ref().and_then(|i| i.reauthorization_reason.clone()),
            upstream: self.upstream_view(tenant_id, name),
            config_schema: registered.plugin.config_schema(),
            tools: registered.tools.clone(),
            webhook_url: installation.as_ref().map(|_| self.webhook_url(name, tenant_id)),
            config: installation.map(|i| i.config),
            secrets_set,
        })
    }

    /// The URL a vendor posts this tenant's webhooks for `plugin` to.
    pub fn webhook_url(&self, plugin: &str, tenant_id: &TenantId) -> String {
        format!("{}/v1/webhooks/{plugin}/{tenant_id}", self.public_url)
    }
}

impl Service {
    /// The tenant's breaker state for `plugin`'s upstream.
    pub fn upstream_view(&self, tenant_id: &TenantId, plugin: &str) -> UpstreamView {
        let view = self.breakers.view(tenant_id, plugin);
        UpstreamView {
            state: view.state.as_str(),
            retry_at: view.retry_at.map(|at| {
                let unix_ms = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_millis() as i64);
                integrations_events::rfc3339_millis(unix_ms)
            }),
        }
    }
}
