use serde_json::{Map, Value};
use sqlx::Row;

use crate::event_log::{insert_event, lock_log, NewEvent};
use crate::invalidations::{notify_on_commit, Change};
use crate::{now_unix, Store, StoreError};

/// Whether an installed plugin's tools are available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallationState {
    /// Tools available (subject to flags).
    Enabled,
    /// Installed, config kept, tools unavailable.
    Disabled,
}

impl InstallationState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "enabled" => Ok(Self::Enabled),
            "disabled" => Ok(Self::Disabled),
            other => Err(StoreError::Corrupt(format!("installation state {other:?}"))),
        }
    }
}

/// A tenant's installation of a plugin; `config` holds only the non-secret fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Installation {
    /// The plugin name.
    pub plugin: String,
    /// Enabled or disabled.
    pub state: InstallationState,
    /// Non-secret config fields.
    pub config: Map<String, Value>,
    /// Why the installation must be authorised again (its refresh token stopped working), if so.
    pub reauthorization_reason: Option<String>,
}

/// One encrypted secret field of an installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRow {
    /// The config field name.
    pub field: String,
    /// Nonce, ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl Store {
    /// Records an installation with its encrypted secrets. Fails with `Conflict` if installed.
    pub async fn insert_installation(
        &self,
        tenant_id: &str,
        installation: &Installation,
        secrets: &[SecretRow],
        lifecycle: &NewEvent,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let now = now_unix();
        let mut tx = self.pool.begin().await?;
        lock_log(self.backend, &mut tx).await?;
        sqlx::query(sql::INSERT)
            .bind(tenant_id)
            .bind(&installation.plugin)
            .bind(installation.state.as_str())
            .bind(Value::Object(installation.config.clone()).to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        upsert_secrets(&mut tx, tenant_id, &installation.plugin, secrets, now).await?;
        insert_event(&mut tx, lifecycle).await?;
        notify_on_commit(self.backend, &mut tx, &Change::Tenant(tenant_id.to_owned())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces an installation's plain config and upserts the given secrets; secrets not given
    /// keep their stored value, secrets in `removed` are deleted. Returns whether it was installed.
    pub async fn update_installation_config(
        &self,
        tenant_id: &str,
        plugin: &str,
        config: &Map<String, Value>,
        secrets: &[SecretRow],
        removed: &[String],
        lifecycle: &NewEvent,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = now_unix();
        let mut tx = self.pool.begin().await?;
        lock_log(self.backend, &mut tx).await?;
        let updated = sqlx::query(sql::UPDATE_CONFIG)
            .bind(Value::Object(config.clone()).to_string())
            .bind(now)
            .bind(tenant_id)
            .bind(plugin)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        upsert_secrets(&mut tx, tenant_id, plugin, secrets, now).await?;
        for field in removed {
            sqlx::query(sql::DELETE_SECRET)
                .bind(tenant_id)
                .bind(plugin)
                .bind(field)
                .execute(&mut *tx)
                .await?;
        }
        insert_event(&mut tx, lifecycle).await?;
        notify_on_commit(self.backend, &mut tx, &Change::Tenant(tenant_id.to_owned())).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets enabled/disabled. Returns whether the plugin was installed.
    pub async fn set_installation_state(
        &self,
        tenant_id: &str,
        plugin: &str,
        state: InstallationState,
        lifecycle: &NewEvent,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        lock_log(self.backend, &mut tx).await?;
        let result = sqlx::query(sql::SET_STATE)
            .bind(state.as_str())
            .bind(now_unix())
            .bind(tenant_id)
            .bind(plugin)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, lifecycle).await?;
        notify_on_commit(self.backend, &mut tx, &Change::Tenant(tenant_id.to_owned())).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes an installation and its secrets. Returns whether it existed.
    pub async fn delete_installation(
        &self,
        tenant_id: &str,
        plugin: &str,
        lifecycle: &NewEvent,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        lock_log(self.backend, &mut tx).await?;
        sqlx::query(sql::DELETE_SECRETS)
            .bind(tenant_id)
            .bind(plugin)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query(sql::DELETE)
            .bind(tenant_id)
            .bind(plugin)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, lifecycle).await?;
        notify_on_commit(self.backend, &mut tx, &Change::Tenant(tenant_id.to_owned())).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A tenant's installation of a plugin.
    pub async fn get_installation(&self, tenant_id: &str, plugin: &str) -> Result<Option<Installation>, StoreError> {
        let row = sqlx::query(sql::INSTALLATION)
            .bind(tenant_id)
            .bind(plugin)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| installation_from_row(&r)).transpose()
    }

    /// All of a tenant's installations, by plugin name.
    pub async fn list_installations(&self, tenant_id: &str) -> Result<Vec<Installation>, StoreError> {
        let rows = sqlx::query(sql::INSTALLATIONS)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(installation_from_row).collect()
    }

    /// An installation with its encrypted secrets, read in one statement so that the plain config
    /// and the secrets always belong to the same version of the installation.
    pub async fn get_installation_with_secrets(
        &self,
        tenant_id: &str,
        plugin: &str,
    ) -> Result<Option<(Installation, Vec<SecretRow>)>, StoreError> {
        let rows = sqlx::query(sql::WITH_SECRETS)
            .bind(tenant_id)
            .bind(plugin)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let installation = installation_from_row(first)?;
        let secrets = rows
            .iter()
            .filter_map(|r| {
                let field: Option<String> = r.get(4);
                let ciphertext: Option<Vec<u8>> = r.get(5);
                Some(SecretRow {
                    field: field?,
                    ciphertext: ciphertext?,
                })
            })
            .collect();
        Ok(Some((installation, secrets)))
    }

    /// Replaces one secret, but only if it still holds `expected` (a refresh token the identity
    /// platform rotated must not overwrite one the tenant configured meanwhile). Sends no change
    /// notice: cached configs keep the old value, which only the token manager reads, from here.
    pub async fn replace_secret_if_unchanged(
        &self,
        tenant_id: &str,
        plugin: &str,
        field: &str,
        expected: &[u8],
        replacement: &[u8],
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let updated = sqlx::query(sql::REPLACE_SECRET)
            .bind(replacement)
            .bind(now_unix())
            .bind(tenant_id)
            .bind(plugin)
            .bind(field)
            .bind(expected)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Records that the installation must be authorised again, unless secret `field` no longer
    /// holds `expected` (a new credential arrived meanwhile). Returns whether it was recorded.
    pub async fn mark_reauthorization_required(
        &self,
        tenant_id: &str,
        plugin: &str,
        field: &str,
        expected: &[u8],
        reason: &str,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(sql::REAUTHORIZE)
            .bind(reason)
            .bind(now_unix())
            .bind(tenant_id)
            .bind(plugin)
            .bind(field)
            .bind(expected)
            .execute(&mut *tx)
            .await?;
        notify_on_commit(self.backend, &mut tx, &Change::Tenant(tenant_id.to_owned())).await?;
        tx.commit().await?;
        Ok(updated.rows_affected() > 0)
    }

    /// The encrypted secrets of an installation.
    pub async fn get_secrets(&self, tenant_id: &str, plugin: &str) -> Result<Vec<SecretRow>, StoreError> {
        let rows = sqlx::query(sql::SECRETS)
            .bind(tenant_id)
            .bind(plugin)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| SecretRow {
                field: r.get(0),
                ciphertext: r.get(1),
            })
            .collect())
    }
}

async fn upsert_secrets(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &str,
    plugin: &str,
    secrets: &[SecretRow],
    now: i64,
) -> Result<(), StoreError> {
    for secret in secrets {
        sqlx::query(sql::UPSERT_SECRET)
            .bind(tenant_id)
            .bind(plugin)
            .bind(&secret.field)
            .bind(&secret.ciphertext)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn installation_from_row(row: &sqlx::any::AnyRow) -> Result<Installation, StoreError> {
    let state: String = row.get(1);
    let config: String = row.get(2);
    let config = match serde_json::from_str(&config) {
        Ok(Value::Object(map)) => map,
        _ => return Err(StoreError::Corrupt("installation config".into())),
    };
    Ok(Installation {
        plugin: row.get(0),
        state: InstallationState::parse(&state)?,
        config,
        reauthorization_reason: row.get(3),
    })
}

/// This resource's statements.
pub(crate) mod sql {
    statements! {
        /// An installation.
        INSERT = "INSERT INTO installations (tenant_id, plugin, state, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)";
        /// Replaces an installation's config, which clears its reauthorization reason.
        UPDATE_CONFIG = "UPDATE installations SET config = $1, updated_at = $2, reauthorization_reason = NULL \
             WHERE tenant_id = $3 AND plugin = $4";
        /// One secret of an installation.
        DELETE_SECRET = "DELETE FROM secrets WHERE tenant_id = $1 AND plugin = $2 AND field = $3";
        /// Enables or disables an installation.
        SET_STATE = "UPDATE installations SET state = $1, updated_at = $2 WHERE tenant_id = $3 AND plugin = $4";
        /// An installation's secrets.
        DELETE_SECRETS = "DELETE FROM secrets WHERE tenant_id = $1 AND plugin = $2";
        /// An installation.
        DELETE = "DELETE FROM installations WHERE tenant_id = $1 AND plugin = $2";
        /// One of the tenant's installations.
        INSTALLATION = "SELECT plugin, state, config, reauthorization_reason FROM installations WHERE tenant_id = $1 AND plugin = $2";
        /// The tenant's installations, by plugin.
        INSTALLATIONS = "SELECT plugin, state, config, reauthorization_reason FROM installations WHERE tenant_id = $1 ORDER BY plugin";
        /// An installation with its secrets.
        WITH_SECRETS = "SELECT i.plugin, i.state, i.config, i.reauthorization_reason, s.field, s.ciphertext FROM installations i \
             LEFT JOIN secrets s ON s.tenant_id = i.tenant_id AND s.plugin = i.plugin \
             WHERE i.tenant_id = $1 AND i.plugin = $2 ORDER BY s.field";
        /// Replaces a secret's ciphertext, unless it changed meanwhile.
        REPLACE_SECRET = "UPDATE secrets SET ciphertext = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND plugin = $4 AND field = $5 AND ciphertext = $6";
        /// Asks for reauthorization, while the installation's secret is as it was.
        REAUTHORIZE = "UPDATE installations SET reauthorization_reason = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND plugin = $4 AND EXISTS (SELECT 1 FROM secrets s \
             WHERE s.tenant_id = $3 AND s.plugin = $4 AND s.field = $5 AND s.ciphertext = $6)";
        /// An installation's secrets, by field.
        SECRETS = "SELECT field, ciphertext FROM secrets WHERE tenant_id = $1 AND plugin = $2 ORDER BY field";
        /// Stores a secret.
        UPSERT_SECRET = "INSERT INTO secrets (tenant_id, plugin, field, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, plugin, field) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at";
    }
}
