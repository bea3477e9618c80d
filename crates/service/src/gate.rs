//! Whether a tenant may use a plugin right now: installed, enabled, and allowed by flags.

use integrations_flags::plugin_feature;
use integrations_store::{Installation, InstallationState};
use serde_json::{Map, Value};

use crate::{Service, ServiceError};

/// A tenant's installations and the traits its flags are evaluated with.
pub(crate) struct TenantGate {
    tenant_id: String,
    traits: Map<String, Value>,
    pub(crate) installations: Vec<Installation>,
}

impl TenantGate {
    /// The tenant's installation of `plugin`.
    pub(crate) fn installation(&self, plugin: &str) -> Option<&Installation> {
        self.installations.iter().find(|i| i.plugin == plugin)
    }

    /// Whether flags let the tenant use `plugin`.
    pub(crate) fn allowed(&self, service: &Service, plugin: &str) -> bool {
        service.flags.plugin_allowed(&self.tenant_id, &self.traits, plugin)
    }

    /// The installation, when it is enabled and allowed.
    pub(crate) fn usable(&self, service: &Service, plugin: &str) -> Option<&Installation> {
        self.installation(plugin)
            .filter(|i| i.state == InstallationState::Enabled && self.allowed(service, plugin))
    }
}

impl Service {
    /// The gate for a tenant; `None` when the tenant does not exist.
    pub(crate) async fn gate(&self, tenant_id: &str) -> Result<Option<TenantGate>, ServiceError> {
        let Some(tenant) = self.store.get_tenant(tenant_id).await? else {
            return Ok(None);
        };
        let installations = self.store.list_installations(tenant_id).await?;
        let mut traits = tenant.traits;
        // The same `plugin.<name>` traits enable/disable record in Flagsmith, so segments on them
        // match in local evaluation too; they are set after the tenant's own traits and win.
        for installation in &installations {
            let enabled = installation.state == InstallationState::Enabled;
            traits.insert(plugin_feature(&installation.plugin), Value::Bool(enabled));
        }
        Ok(Some(TenantGate {
            tenant_id: tenant.id,
            traits,
            installations,
        }))
    }

    /// The gate for a tenant that must exist.
    pub(crate) async fn existing_gate(&self, tenant_id: &str) -> Result<TenantGate, ServiceError> {
        self.gate(tenant_id).await?.ok_or(ServiceError::TenantNotFound)
    }
}
