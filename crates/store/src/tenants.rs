use serde_json::{Map, Value};
use sqlx::Row;

use crate::invalidations::{notify_on_commit, Change};
use crate::{now_unix, Backend, Store, StoreError, TenantLimits};

/// A tenant: a customer organisation, the unit of isolation.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    /// The tenant id (slug).
    pub id: String,
    /// Traits used for flag evaluation (`{"plan":"pro"}`).
    pub traits: Map<String, Value>,
    /// Networks (CIDRs) this tenant's outbound calls may reach besides the global allowlist.
    pub outbound_allow_cidrs: Vec<String>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// The operator's limits for this tenant.
    pub limits: TenantLimits,
}

/// A stored API key: its id and the digest of the full key.
#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    /// The key id (the public part of the key).
    pub id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// Keyed digest of the whole key.
    pub digest: Vec<u8>,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

/// A tenant's wrapped data key.
#[derive(Clone, Debug)]
pub struct DataKeyRecord {
    /// The tenant id.
    pub tenant_id: String,
    /// Fingerprint of the master key that wrapped it.
    pub master_key_id: String,
    /// The wrapped key.
    pub wrapped_key: Vec<u8>,
}

impl Store {
    /// Creates a tenant with its first API key and its data key, atomically.
    pub async fn create_tenant(
        &self,
        tenant: &Tenant,
        key: &ApiKeyRecord,
        data_key: &DataKeyRecord,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let traits = Value::Object(tenant.traits.clone()).to_string();
        sqlx::query(sql::INSERT_TENANT)
            .bind(&tenant.id)
            .bind(traits)
            .bind(tenant.created_at)
            .bind(cidrs_json(&tenant.outbound_allow_cidrs))
            .bind(tenant.limits.to_json())
            .execute(&mut *tx)
            .await?;
        insert_api_key(&mut tx, key).await?;
        sqlx::query(sql::INSERT_DATA_KEY)
            .bind(&data_key.tenant_id)
            .bind(&data_key.master_key_id)
            .bind(&data_key.wrapped_key)
            .bind(now_unix())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant with this id.
    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query(sql::TENANT).bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| tenant_from_row(&r)).transpose()
    }

    /// Replaces a tenant's traits, outbound allowlist and limits (each only when given). Returns
    /// whether the tenant exists.
    pub async fn update_tenant(
        &self,
        id: &str,
        traits: Option<&Map<String, Value>>,
        outbound_allow_cidrs: Option<&[String]>,
        limits: Option<&TenantLimits>,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // COALESCE keeps a column the caller left out, in one statement on both backends.
        let updated = sqlx::query(sql::UPDATE_TENANT)
            .bind(traits.map(|t| Value::Object(t.clone()).to_string()))
            .bind(outbound_allow_cidrs.map(cidrs_json))
            .bind(limits.map(|limits| limits.to_json()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        notify_on_commit(self.backend, &mut tx, &Change::Tenant(id.to_owned())).await?;
        tx.commit().await?;
        Ok(updated.rows_affected() > 0)
    }

    /// All tenants, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(sql::TENANTS).fetch_all(&self.pool).await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Deletes a tenant and everything it owns, its data key first. Returns whether it existed.
    pub async fn delete_tenant(&self, id: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // First, so that what a concurrent transaction writes for the tenant either commits
            // before the deletes below (which then see it) or finds the tenant gone: the event
            // log's tables have no foreign keys to do this on PostgreSQL (migration 0010).
            sqlx::query(sql::postgres::LOCK_TENANT)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for statement in [
            sql::DELETE_DATA_KEYS,
            sql::DELETE_SECRETS,
            sql::DELETE_INSTALLATIONS,
            // Before the webhooks: the backlog names them by id alone.
            sql::DELETE_BACKLOG,
            sql::DELETE_WEBHOOKS,
            sql::DELETE_EVENTS,
            sql::DELETE_JOBS,
            sql::DELETE_IDEMPOTENCY_KEYS,
            sql::DELETE_API_KEYS,
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        let deleted = sqlx::query(sql::DELETE_TENANT).bind(id).execute(&mut *tx).await?;
        notify_on_commit(self.backend, &mut tx, &Change::Tenant(id.to_owned())).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Adds an API key to an existing tenant.
    pub async fn add_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The API key with this id.
    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(sql::API_KEY).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| ApiKeyRecord {
            id: r.get(0),
            tenant_id: r.get(1),
            digest: r.get(2),
            created_at: r.get(3),
        }))
    }

    /// Revokes one of a tenant's keys. Returns whether it existed for that tenant.
    pub async fn delete_api_key(&self, tenant_id: &str, key_id: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(sql::DELETE_API_KEY)
            .bind(tenant_id)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        notify_on_commit(self.backend, &mut tx, &Change::Key(key_id.to_owned())).await?;
        tx.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    /// A tenant's wrapped data key.
    pub async fn get_data_key(&self, tenant_id: &str) -> Result<Option<DataKeyRecord>, StoreError> {
        let row = sqlx::query(sql::DATA_KEY)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| data_key_from_row(&r)))
    }

    /// How many tenant data keys exist.
    pub async fn count_data_keys(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query(sql::COUNT_DATA_KEYS).fetch_one(&self.pool).await?.get(0))
    }

    /// Every wrapped data key not yet under `master_key_id`, for rotation.
    pub async fn data_keys_not_under(&self, master_key_id: &str) -> Result<Vec<DataKeyRecord>, StoreError> {
        let rows = sqlx::query(sql::DATA_KEYS_NOT_UNDER)
            .bind(master_key_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(data_key_from_row).collect())
    }

    /// Replaces a wrapped data key if it is still the one that was read (compare-and-set), so a
    /// concurrent rotation cannot lose an update. Returns whether it was replaced.
    pub async fn replace_data_key(&self, previous: &DataKeyRecord, next: &DataKeyRecord) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let result = sqlx::query(sql::REWRAP_DATA_KEY)
            .bind(&next.master_key_id)
            .bind(&next.wrapped_key)
            .bind(&previous.tenant_id)
            .bind(&previous.master_key_id)
            .bind(&previous.wrapped_key)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

async fn insert_api_key(tx: &mut sqlx::Transaction<'_, sqlx::Any>, key: &ApiKeyRecord) -> Result<(), StoreError> {
    sqlx::query(sql::INSERT_API_KEY)
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.digest)
        .bind(key.created_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn tenant_from_row(row: &sqlx::any::AnyRow) -> Result<Tenant, StoreError> {
    let traits: String = row.get(1);
    let traits = match serde_json::from_str(&traits) {
        Ok(Value::Object(map)) => map,
        _ => return Err(StoreError::Corrupt("tenant traits".into())),
    };
    let cidrs: String = row.get(3);
    let outbound_allow_cidrs =
        serde_json::from_str(&cidrs).map_err(|_| StoreError::Corrupt("tenant outbound_allow_cidrs".into()))?;
    Ok(Tenant {
        id: row.get(0),
        traits,
        outbound_allow_cidrs,
        created_at: row.get(2),
        limits: TenantLimits::from_json(&row.get::<String, _>(4))?,
    })
}

fn cidrs_json(cidrs: &[String]) -> String {
    Value::from(cidrs.to_vec()).to_string()
}

fn data_key_from_row(row: &sqlx::any::AnyRow) -> DataKeyRecord {
    DataKeyRecord {
        tenant_id: row.get(0),
        master_key_id: row.get(1),
        wrapped_key: row.get(2),
    }
}

/// This resource's statements.
pub(crate) mod sql {
    statements! {
        /// A tenant.
        INSERT_TENANT = "INSERT INTO tenants (id, traits, created_at, outbound_allow_cidrs, limits) VALUES ($1, $2, $3, $4, $5)";
        /// A tenant's wrapped data key.
        INSERT_DATA_KEY = "INSERT INTO tenant_data_keys (tenant_id, master_key_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4)";
        /// A tenant.
        TENANT = "SELECT id, traits, created_at, outbound_allow_cidrs, limits FROM tenants WHERE id = $1";
        /// Changes what is given of a tenant's traits, allowed networks and limits.
        UPDATE_TENANT = "UPDATE tenants SET traits = COALESCE($1, traits), \
             outbound_allow_cidrs = COALESCE($2, outbound_allow_cidrs), limits = COALESCE($3, limits) WHERE id = $4";
        /// Every tenant, by id.
        TENANTS = "SELECT id, traits, created_at, outbound_allow_cidrs, limits FROM tenants ORDER BY id";
        /// A tenant's data keys.
        DELETE_DATA_KEYS = "DELETE FROM tenant_data_keys WHERE tenant_id = $1";
        /// A tenant's secrets.
        DELETE_SECRETS = "DELETE FROM secrets WHERE tenant_id = $1";
        /// A tenant's installations.
        DELETE_INSTALLATIONS = "DELETE FROM installations WHERE tenant_id = $1";
        /// A tenant's webhooks out of the backlog.
        DELETE_BACKLOG = "DELETE FROM webhook_backlog WHERE id IN (SELECT id FROM webhook_events WHERE tenant_id = $1)";
        /// A tenant's webhooks.
        DELETE_WEBHOOKS = "DELETE FROM webhook_events WHERE tenant_id = $1";
        /// A tenant's events.
        DELETE_EVENTS = "DELETE FROM events WHERE tenant_id = $1";
        /// A tenant's jobs.
        DELETE_JOBS = "DELETE FROM jobs WHERE tenant_id = $1";
        /// A tenant's idempotency keys.
        DELETE_IDEMPOTENCY_KEYS = "DELETE FROM idempotency_keys WHERE tenant_id = $1";
        /// A tenant's API keys.
        DELETE_API_KEYS = "DELETE FROM api_keys WHERE tenant_id = $1";
        /// The tenant's row.
        DELETE_TENANT = "DELETE FROM tenants WHERE id = $1";
        /// An API key.
        API_KEY = "SELECT id, tenant_id, digest, created_at FROM api_keys WHERE id = $1";
        /// One of the tenant's API keys.
        DELETE_API_KEY = "DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2";
        /// A tenant's wrapped data key.
        DATA_KEY = "SELECT tenant_id, master_key_id, wrapped_key FROM tenant_data_keys WHERE tenant_id = $1";
        /// How many data keys there are.
        COUNT_DATA_KEYS = "SELECT COUNT(*) FROM tenant_data_keys";
        /// The data keys wrapped by another master key than `$1`.
        DATA_KEYS_NOT_UNDER = "SELECT tenant_id, master_key_id, wrapped_key FROM tenant_data_keys WHERE master_key_id <> $1 ORDER BY tenant_id";
        /// Rewraps a data key, unless it changed meanwhile.
        REWRAP_DATA_KEY = "UPDATE tenant_data_keys SET master_key_id = $1, wrapped_key = $2 \
             WHERE tenant_id = $3 AND master_key_id = $4 AND wrapped_key = $5";
        /// An API key.
        INSERT_API_KEY = "INSERT INTO api_keys (id, tenant_id, digest, created_at) VALUES ($1, $2, $3, $4)";
    }

    /// PostgreSQL's lock.
    pub(crate) mod postgres {
        statements! {
            /// Locks the tenant's row for its deletion: what a concurrent transaction writes for
            /// the tenant commits first, or finds it gone.
            LOCK_TENANT = "SELECT id FROM tenants WHERE id = $1 FOR UPDATE";
        }
    }
}
