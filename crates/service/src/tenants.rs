use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use integrations_core::{KeyId, TenantId};
use integrations_secrets::{random_bytes, token_digest, verify_token};
use integrations_store::{ApiKeyRecord, DataKeyRecord, Tenant, TenantLimits};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{now_unix, Service, ServiceError};
use integrations_store::Change;

const KEY_PREFIX: &str = "itk_";

/// A tenant as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TenantSummary {
    /// The tenant id.
    pub id: String,
    /// Flag traits.
    pub traits: Map<String, Value>,
    /// Networks this tenant's outbound calls may reach besides the global allowlist.
    pub outbound_allow_cidrs: Vec<String>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// The tenant's own limits (`null`: the deployment default).
    #[serde(flatten)]
    pub limits: TenantLimits,
    /// The limits in force: the tenant's own, else the deployment's.
    pub effective_limits: crate::EffectiveLimits,
}

/// A newly issued API key; `api_key` is shown once and never stored.
#[derive(Clone, Serialize)]
pub struct CreatedKey {
    /// The tenant id.
    pub tenant_id: String,
    /// The key id, for revocation.
    pub key_id: String,
    /// The full key.
    pub api_key: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("tenant_id", &self.tenant_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Checks a tenant id: 1 to 63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit.
pub fn validate_tenant_id(id: &str) -> Result<TenantId, ServiceError> {
    TenantId::parse(id).map_err(|invalid| ServiceError::InvalidTenantId(invalid.0.into()))
}

/// `plugin.<name>` traits are the service's own (installation state); operators may not set them.
fn check_traits(traits: &Map<String, Value>) -> Result<(), ServiceError> {
    match traits.keys().find(|key| key.starts_with("plugin.")) {
        Some(key) => Err(ServiceError::InvalidRequest(format!(
            "traits: {key} is reserved: plugin.* traits reflect installations"
        ))),
        None => Ok(()),
    }
}

/// What the admin may change about a tenant; a field left out keeps its value.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct TenantUpdate {
    /// New flag traits.
    #[serde(default)]
    pub traits: Option<Map<String, Value>>,
    /// New per-tenant outbound allowlist (CIDRs).
    #[serde(default)]
    pub outbound_allow_cidrs: Option<Vec<String>>,
    /// Changes to the tenant's limits.
    #[serde(flatten)]
    pub limits: crate::LimitsUpdate,
}

/// A new tenant (the admin API's `POST`): its id, and optionally its traits, outbound allowlist
/// and limits.
#[derive(Debug, serde::Deserialize)]
pub struct NewTenant {
    /// Checked by [`Service::create_tenant`].
    pub id: String,
    /// Flag traits.
    #[serde(default)]
    pub traits: Option<Map<String, Value>>,
    /// Outbound allowlist (CIDRs).
    #[serde(default)]
    pub outbound_allow_cidrs: Option<Vec<String>>,
    /// Limits other than the deployment's.
    #[serde(flatten)]
    pub limits: crate::LimitsUpdate,
}

/// Checks and normalises CIDRs (`10.1.0.0/16`; a bare address means that one address).
fn check_cidrs(cidrs: &[String]) -> Result<Vec<String>, ServiceError> {
    cidrs
        .iter()
        .map(|cidr| {
            let trimmed = cidr.trim();
            let network = trimmed
                .parse::<ipnet::IpNet>()
                .or_else(|_| trimmed.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ServiceError::InvalidRequest(format!("outbound_allow_cidrs: {cidr:?} is not a CIDR")))?;
            Ok(network.to_string())
        })
        .collect()
}

fn summary(tenant: Tenant, defaults: &crate::DeploymentLimits) -> TenantSummary {
    TenantSummary {
        effective_limits: defaults.effective(&tenant.limits),
        limits: tenant.limits,
        id: tenant.id,
        traits: tenant.traits,
        outbound_allow_cidrs: tenant.outbound_allow_cidrs,
        created_at: tenant.created_at,
    }
}

fn new_key(tenant_id: &TenantId) -> Result<(CreatedKey, ApiKeyRecord), ServiceError> {
    let key_id = hex::encode(random_bytes::<8>()?);
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let api_key = format!("{KEY_PREFIX}{key_id}.{secret}");
    let record = ApiKeyRecord {
        id: key_id.clone(),
        tenant_id: tenant_id.to_string(),
        digest: token_digest(&api_key),
        created_at: now_unix(),
    };
    Ok((
        CreatedKey {
            tenant_id: tenant_id.to_string(),
            key_id,
            api_key,
        },
        record,
    ))
}

impl Service {
    /// Creates a tenant with its data key and first API key.
    pub async fn create_tenant(
        &self,
        id: &str,
        traits: Map<String, Value>,
        outbound_allow_cidrs: &[String],
        limits: crate::LimitsUpdate,
    ) -> Result<CreatedKey, ServiceError> {
        let tenant = validate_tenant_id(id)?;
        check_traits(&traits)?;
        let limits = limits.apply(TenantLimits::default())?;
        let outbound_allow_cidrs = check_cidrs(outbound_allow_cidrs)?;
        let (created, key_record) = new_key(&tenant)?;
        // Wrap under the newest key: a rotation may have replaced the key file since start-up,
        // and a key wrapped under the old one after the rotation listed its rows would stay there.
        let keyring = self.reload_keyring()?.unwrap_or_else(|| self.keyring());
        let (_, wrapped) = keyring.new_data_key(id)?;
        let data_key = DataKeyRecord {
            tenant_id: id.to_owned(),
            master_key_id: wrapped.master_key_id,
            wrapped_key: wrapped.ciphertext,
        };
        let tenant = Tenant {
            id: id.to_owned(),
            traits,
            outbound_allow_cidrs,
            created_at: now_unix(),
            limits,
        };
        match self.store.create_tenant(&tenant, &key_record, &data_key).await {
            Ok(()) => {}
            Err(integrations_store::StoreError::Conflict) => return Err(ServiceError::TenantExists),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(tenant = %id, key_id = %created.key_id, "tenant created");
        Ok(created)
    }

    /// One tenant.
    pub async fn get_tenant(&self, id: &TenantId) -> Result<TenantSummary, ServiceError> {
        Ok(summary(self.tenant(id).await?, &self.limits))
    }

    /// Changes a tenant's traits and outbound allowlist; fields left out keep their values.
    pub async fn update_tenant(&self, id: &TenantId, update: TenantUpdate) -> Result<TenantSummary, ServiceError> {
        if let Some(traits) = &update.traits {
            check_traits(traits)?;
        }
        let cidrs = update.outbound_allow_cidrs.as_deref().map(check_cidrs).transpose()?;
        let limits = if update.limits.is_empty() {
            None
        } else {
            // Read from the store, not the cache: the change applies to what is stored.
            let current = self.store.get_tenant(id).await?.ok_or(ServiceError::TenantNotFound)?;
            Some(update.limits.apply(current.limits)?)
        };
        let (tenant, traits) = (id.to_owned(), update.traits);
        let found = self
            .mutate(Change::Tenant(id.to_string()), move |store| async move {
                store
                    .update_tenant(&tenant, traits.as_ref(), cidrs.as_deref(), limits.as_ref())
                    .await
            })
            .await?;
        if !found {
            return Err(ServiceError::TenantNotFound);
        }
        tracing::info!(tenant = %id, "tenant updated");
        self.get_tenant(id).await
    }

    /// All tenants.
    pub async fn list_tenants(&self) -> Result<Vec<TenantSummary>, ServiceError> {
        Ok(self
            .store
            .list_tenants()
            .await?
            .into_iter()
            .map(|tenant| summary(tenant, &self.limits))
            .collect())
    }

    /// Deletes a tenant; its data key goes first, so its secrets become unreadable at once.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<(), ServiceError> {
        let tenant = id.to_owned();
        let deleted = self
            .mutate(Change::Tenant(id.to_string()), move |store| async move {
                store.delete_tenant(&tenant).await
            })
            .await?;
        if !deleted {
            return Err(ServiceError::TenantNotFound);
        }
        tracing::info!(tenant = %id, "tenant deleted");
        Ok(())
    }

    /// Issues another API key for a tenant.
    pub async fn create_api_key(&self, tenant_id: &TenantId) -> Result<CreatedKey, ServiceError> {
        self.tenant(tenant_id).await?;
        let (created, record) = new_key(tenant_id)?;
        self.store.add_api_key(&record).await?;
        tracing::info!(tenant = %tenant_id, key_id = %created.key_id, "API key issued");
        Ok(created)
    }

    /// Revokes one of a tenant's keys.
    pub async fn revoke_api_key(&self, tenant_id: &TenantId, key_id: &KeyId) -> Result<(), ServiceError> {
        let (tenant, key) = (tenant_id.to_string(), key_id.to_string());
        let deleted = self
            .mutate(Change::Key(key_id.to_string()), move |store| async move {
                store.delete_api_key(&tenant, &key).await
            })
            .await?;
        if !deleted {
            return Err(ServiceError::ApiKeyNotFound);
        }
        tracing::info!(tenant = %tenant_id, %key_id, "API key revoked");
        Ok(())
    }

    /// The tenant an API key belongs to. Unknown and wrong keys are indistinguishable.
    pub async fn authenticate(&self, api_key: &str) -> Result<TenantId, ServiceError> {
        let key_id = api_key
            .strip_prefix(KEY_PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .map(|(id, _)| id)
            .ok_or(ServiceError::Unauthorized)?;
        let record = match self.cache.key(key_id) {
            Some(record) => record,
            None => {
                let generation = self.cache.generation();
                let record = Arc::new(
                    self.store
                        .get_api_key(key_id)
                        .await?
                        .ok_or(ServiceError::Unauthorized)?,
                );
                self.cache.insert_key(generation, record.clone());
                record
            }
        };
        if verify_token(api_key, &record.digest) {
            Ok(TenantId::from_trusted(&record.tenant_id))
        } else {
            Err(ServiceError::Unauthorized)
        }
    }

    /// The tenant named by a trusted gateway header, if it exists.
    pub async fn trusted_tenant(&self, tenant: TenantId) -> Result<TenantId, ServiceError> {
        match self.gate(&tenant).await? {
            Some(_) => Ok(tenant),
            None => Err(ServiceError::Unauthorized),
        }
    }

    pub(crate) async fn tenant(&self, tenant_id: &TenantId) -> Result<Tenant, ServiceError> {
        Ok(self.existing_gate(tenant_id).await?.tenant.clone())
    }
}
