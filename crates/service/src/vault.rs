//! Splitting configs into plain and secret parts, and sealing/opening the secret part.

use integrations_core::TenantId;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use integrations_core::Secret;
use integrations_secrets::{CryptoError, DataKey, Keyring, SecretLocation, WrappedDataKey};
use integrations_store::{SecretRow, Store};
use serde_json::{Map, Value};

use crate::{KeyringReload, Service, ServiceError};

/// The fields a config schema marks `"writeOnly": true`.
pub(crate) fn secret_fields(schema: &Value) -> BTreeSet<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, p)| p.get("writeOnly").and_then(Value::as_bool) == Some(true))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Splits a validated config into plain fields and secrets.
pub(crate) fn split(
    config: Map<String, Value>,
    secret_names: &BTreeSet<String>,
) -> (Map<String, Value>, BTreeMap<String, Secret>) {
    let mut plain = Map::new();
    let mut secrets = BTreeMap::new();
    for (name, value) in config {
        if secret_names.contains(&name) {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            secrets.insert(name, Secret::new(text));
        } else {
            plain.insert(name, value);
        }
    }
    (plain, secrets)
}

/// The master keys, shared with the token manager's vault: both unwrap tenants' data keys.
pub(crate) struct Keys {
    keyring: RwLock<Arc<Keyring>>,
    reload: Option<KeyringReload>,
}

impl Keys {
    pub(crate) fn new(keyring: Keyring, reload: Option<KeyringReload>) -> Self {
        Self {
            keyring: RwLock::new(Arc::new(keyring)),
            reload,
        }
    }

    /// The tenant's data key, unwrapped with the master key that wrapped it.
    pub(crate) async fn data_key(&self, store: &Store, tenant_id: &TenantId) -> Result<DataKey, ServiceError> {
        let record = store
            .get_data_key(tenant_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("tenant has no data key".into()))?;
        let wrapped = WrappedDataKey {
            master_key_id: record.master_key_id,
            ciphertext: record.wrapped_key,
        };
        match self.current().unwrap(tenant_id, &wrapped) {
            Err(CryptoError::UnknownMasterKey(id)) => match self.reload()? {
                // A rotation elsewhere re-wrapped this key; retry once with the keys it left.
                Some(fresh) => {
                    tracing::info!(master_key_id = %id, "reloaded master keys");
                    Ok(fresh.unwrap(tenant_id, &wrapped)?)
                }
                None => Err(CryptoError::UnknownMasterKey(id).into()),
            },
            other => Ok(other?),
        }
    }

    /// Re-reads the master keys where they can change at run time (file mode); `None` elsewhere.
    pub(crate) fn reload(&self) -> Result<Option<Arc<Keyring>>, ServiceError> {
        let Some(reload) = &self.reload else {
            return Ok(None);
        };
        let fresh = Arc::new(reload().map_err(ServiceError::Internal)?);
        *self.keyring.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
        Ok(Some(fresh))
    }

    pub(crate) fn current(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Encrypts one secret field of an installation; the location is bound into the ciphertext.
pub(crate) fn seal_field(
    key: &DataKey,
    tenant: &str,
    plugin: &str,
    field: &str,
    secret: &Secret,
) -> Result<Vec<u8>, ServiceError> {
    let location = SecretLocation { tenant, plugin, field };
    Ok(key.seal(location, secret.expose().as_bytes())?)
}

/// Decrypts one secret field of an installation.
pub(crate) fn open_field(
    key: &DataKey,
    tenant: &str,
    plugin: &str,
    field: &str,
    ciphertext: &[u8],
) -> Result<Secret, ServiceError> {
    let location = SecretLocation { tenant, plugin, field };
    let plaintext = key.open(location, ciphertext)?;
    let text = String::from_utf8(plaintext).map_err(|_| ServiceError::Internal("secret is not UTF-8".into()))?;
    Ok(Secret::new(text))
}

impl Service {
    pub(crate) async fn data_key(&self, tenant_id: &TenantId) -> Result<DataKey, ServiceError> {
        self.keys.data_key(&self.store, tenant_id).await
    }

    pub(crate) fn reload_keyring(&self) -> Result<Option<Arc<Keyring>>, ServiceError> {
        self.keys.reload()
    }

    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        self.keys.current()
    }

    pub(crate) fn seal(
        &self,
        key: &DataKey,
        tenant: &str,
        plugin: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Result<Vec<SecretRow>, ServiceError> {
        secrets
            .iter()
            .map(|(field, secret)| {
                Ok(SecretRow {
                    field: field.clone(),
                    ciphertext: seal_field(key, tenant, plugin, field, secret)?,
                })
            })
            .collect()
    }

    pub(crate) async fn open_secrets(
        &self,
        tenant: &TenantId,
        plugin: &str,
    ) -> Result<BTreeMap<String, Secret>, ServiceError> {
        let rows = self.store.get_secrets(tenant, plugin).await?;
        self.open_rows(tenant, plugin, rows).await
    }

    /// Decrypts an installation's secret rows.
    pub(crate) async fn open_rows(
        &self,
        tenant: &TenantId,
        plugin: &str,
        rows: Vec<SecretRow>,
    ) -> Result<BTreeMap<String, Secret>, ServiceError> {
        if rows.is_empty() {
            return Ok(BTreeMap::new());
        }
        let key = self.data_key(tenant).await?;
        rows.into_iter()
            .map(|row| {
                let secret = open_field(&key, tenant, plugin, &row.field, &row.ciphertext)?;
                Ok((row.field, secret))
            })
            .collect()
    }
}
