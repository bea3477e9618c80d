//! Splitting configs into plain and secret parts, and sealing/opening the secret part.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use integrations_core::Secret;
use integrations_secrets::{CryptoError, DataKey, Keyring, SecretLocation, WrappedDataKey};
use integrations_store::SecretRow;
use serde_json::{Map, Value};

use crate::{Service, ServiceError};

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

impl Service {
    pub(crate) async fn data_key(&self, tenant_id: &str) -> Result<DataKey, ServiceError> {
        let record = self
            .store
            .get_data_key(tenant_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("tenant has no data key".into()))?;
        let wrapped = WrappedDataKey {
            master_key_id: record.master_key_id,
            ciphertext: record.wrapped_key,
        };
        match self.keyring().unwrap(tenant_id, &wrapped) {
            Err(CryptoError::UnknownMasterKey(id)) => match self.reload_keyring()? {
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
    pub(crate) fn reload_keyring(&self) -> Result<Option<Arc<Keyring>>, ServiceError> {
        let Some(reload) = &self.keyring_reload else {
            return Ok(None);
        };
        let fresh = Arc::new(reload().map_err(ServiceError::Internal)?);
        *self.keyring.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
        Ok(Some(fresh))
    }

    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
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
                let location = SecretLocation { tenant, plugin, field };
                Ok(SecretRow {
                    field: field.clone(),
                    ciphertext: key.seal(location, secret.expose().as_bytes())?,
                })
            })
            .collect()
    }

    pub(crate) async fn open_secrets(
        &self,
        tenant: &str,
        plugin: &str,
    ) -> Result<BTreeMap<String, Secret>, ServiceError> {
        let rows = self.store.get_secrets(tenant, plugin).await?;
        self.open_rows(tenant, plugin, rows).await
    }

    /// Decrypts an installation's secret rows.
    pub(crate) async fn open_rows(
        &self,
        tenant: &str,
        plugin: &str,
        rows: Vec<SecretRow>,
    ) -> Result<BTreeMap<String, Secret>, ServiceError> {
        if rows.is_empty() {
            return Ok(BTreeMap::new());
        }
        let key = self.data_key(tenant).await?;
        rows.into_iter()
            .map(|row| {
                let location = SecretLocation {
                    tenant,
                    plugin,
                    field: &row.field,
                };
                let plaintext = key.open(location, &row.ciphertext)?;
                let text =
                    String::from_utf8(plaintext).map_err(|_| ServiceError::Internal("secret is not UTF-8".into()))?;
                Ok((row.field, Secret::new(text)))
            })
            .collect()
    }
}
