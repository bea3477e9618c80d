//! Where the token manager keeps refresh tokens: the installation's own encrypted secret fields,
//! so that configure, uninstall and master-key rotation treat them like every other secret.

use std::sync::Arc;

use async_trait::async_trait;
use integrations_core::{Secret, TenantId};
use integrations_oauth2::{RefreshTokenVault, StoredRefreshToken, VaultError};
use integrations_store::{Change, Store};

use crate::state::StateCache;
use crate::vault::{open_field, seal_field, Keys};
use crate::ServiceError;

pub(crate) struct InstallationVault {
    store: Store,
    keys: Arc<Keys>,
    cache: Arc<StateCache>,
}

impl InstallationVault {
    pub(crate) fn new(store: Store, keys: Arc<Keys>, cache: Arc<StateCache>) -> Self {
        Self { store, keys, cache }
    }
}

fn vault_error(tenant: &str, plugin: &str, error: ServiceError) -> VaultError {
    // The vault's failures are ours, not the tenant's: logged in full here, summarised upward.
    tracing::error!(tenant, plugin, %error, "token vault failure");
    VaultError("the credential store failed".into())
}

#[async_trait]
impl RefreshTokenVault for InstallationVault {
    async fn load(&self, tenant: &str, plugin: &str, field: &str) -> Result<Option<StoredRefreshToken>, VaultError> {
        let fail = |e: ServiceError| vault_error(tenant, plugin, e);
        let rows = self
            .store
            .get_secrets(tenant, plugin)
            .await
            .map_err(|e| fail(e.into()))?;
        let Some(row) = rows.into_iter().find(|row| row.field == field) else {
            return Ok(None);
        };
        let key = self
            .keys
            .data_key(&self.store, &TenantId::from_trusted(tenant))
            .await
            .map_err(fail)?;
        let token = open_field(&key, tenant, plugin, field, &row.ciphertext).map_err(fail)?;
        Ok(Some(StoredRefreshToken {
            token,
            version: row.ciphertext,
        }))
    }

    async fn replace(
        &self,
        tenant: &str,
        plugin: &str,
        field: &str,
        version: &[u8],
        rotated: &Secret,
    ) -> Result<bool, VaultError> {
        let fail = |e: ServiceError| vault_error(tenant, plugin, e);
        let key = self
            .keys
            .data_key(&self.store, &TenantId::from_trusted(tenant))
            .await
            .map_err(fail)?;
        let ciphertext = seal_field(&key, tenant, plugin, field, rotated).map_err(fail)?;
        self.store
            .replace_secret_if_unchanged(tenant, plugin, field, version, &ciphertext)
            .await
            .map_err(|e| fail(e.into()))
    }

    async fn mark_reauthorization_required(
        &self,
        tenant: &str,
        plugin: &str,
        field: &str,
        version: &[u8],
        reason: &str,
    ) -> Result<(), VaultError> {
        let marked = self
            .store
            .mark_reauthorization_required(tenant, plugin, field, version, reason)
            .await
            .map_err(|e| vault_error(tenant, plugin, e.into()))?;
        // Other replicas hear of it from the store's notice; this one forgets its copy now.
        self.cache.invalidate(&Change::Tenant(tenant.to_owned()));
        if !marked {
            tracing::info!(
                tenant,
                plugin,
                field,
                "credential changed during the failed refresh; not marked"
            );
        }
        Ok(())
    }
}
