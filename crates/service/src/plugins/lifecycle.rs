//! A plugin's lifecycle for one tenant: install, configure, enable, disable, uninstall. Each step
//! checks the config, runs the plugin's hook, then commits the change with its lifecycle event.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use integrations_core::{Lifecycle, Plugin, PluginConfig, PluginError, PluginName, TenantId};
use integrations_events::{EventLog, LifecycleChange};
use integrations_store::{Change, Installation, InstallationState, NewEvent, Store, StoreError};
use serde_json::{Map, Value};

use super::PluginDetails;
use crate::state::TenantState;
use crate::vault::{secret_fields, split};
use crate::{validation, FieldError, Service, ServiceError};

impl Service {
    /// Installs a plugin for a tenant with `config`; the plugin starts enabled.
    pub async fn install(
        &self,
        tenant_id: &TenantId,
        name: &PluginName,
        config: Value,
    ) -> Result<PluginDetails, ServiceError> {
        let registered = self.plugin(name)?;
        let gate = self.existing_gate(tenant_id).await?;
        if self.store.get_installation(tenant_id, name).await?.is_some() {
            return Err(ServiceError::AlreadyInstalled(name.to_string()));
        }
        // Refused before anything is stored or recorded in Flagsmith.
        if !gate.allowed(self, name) {
            return Err(ServiceError::PluginNotAllowed(name.to_string()));
        }
        let config = self.validated_config(name, &registered.plugin, config_object(config)?, BTreeMap::new())?;
        self.run_hook(&registered.plugin, &gate, &config, Lifecycle::Install)
            .await?;

        let key = self.data_key(tenant_id).await?;
        let rows = self.seal(&key, tenant_id, name, config.secrets())?;
        let installation = Installation {
            plugin: name.to_string(),
            state: InstallationState::Enabled,
            config: config.plain,
            reauthorization_reason: None,
        };
        self.commit_lifecycle(
            tenant_id,
            name,
            LifecycleChange::Installed,
            |store, tenant, _, event| async move {
                store
                    .insert_installation(&tenant, &installation, &rows, &event)
                    .await
                    .map(|()| true)
            },
        )
        .await
        .map_err(|error| match error {
            ServiceError::Store(StoreError::Conflict) => ServiceError::AlreadyInstalled(name.to_string()),
            other => other,
        })?;
        self.plugin_details(tenant_id, name).await
    }

    /// Replaces a plugin's config; secret fields left out keep their stored values, secret fields
    /// set to `null` are removed.
    pub async fn configure(
        &self,
        tenant_id: &TenantId,
        name: &PluginName,
        config: Value,
    ) -> Result<PluginDetails, ServiceError> {
        let (registered, installed) = self.installed(tenant_id, name).await?;
        let mut incoming = config_object(config)?;
        let schema = registered.plugin.config_schema();
        let secret_names = secret_fields(&schema);
        let mut stored = self.open_secrets(tenant_id, name).await?;
        let mut removed = Vec::new();
        for field in &secret_names {
            if incoming.get(field) == Some(&Value::Null) {
                incoming.remove(field);
                stored.remove(field);
                removed.push(field.clone());
            }
        }
        // Secrets the caller left out keep their stored values.
        stored.retain(|field, _| !incoming.contains_key(field));
        check_bound_secrets(&schema, stored.keys(), &incoming, &installed.config)?;
        let config = self.validated_config(name, &registered.plugin, incoming, stored)?;
        let gate = self.existing_gate(tenant_id).await?;
        self.run_hook(&registered.plugin, &gate, &config, Lifecycle::Configure)
            .await?;

        let key = self.data_key(tenant_id).await?;
        let rows = self.seal(&key, tenant_id, name, config.secrets())?;
        let plain = config.plain;
        self.commit_lifecycle(
            tenant_id,
            name,
            LifecycleChange::Configured,
            |store, tenant, plugin, event| async move {
                store
                    .update_installation_config(&tenant, &plugin, &plain, &rows, &removed, &event)
                    .await
            },
        )
        .await?;
        self.plugin_details(tenant_id, name).await
    }

    /// Enables or disables an installed plugin.
    pub async fn set_enabled(
        &self,
        tenant_id: &TenantId,
        name: &PluginName,
        enabled: bool,
    ) -> Result<PluginDetails, ServiceError> {
        let (registered, _) = self.installed(tenant_id, name).await?;
        let gate = self.existing_gate(tenant_id).await?;
        if enabled && !gate.allowed(self, name) {
            return Err(ServiceError::PluginNotAllowed(name.to_string()));
        }
        let config = self.plugin_config(&gate, name).await?;
        let step = if enabled { Lifecycle::Enable } else { Lifecycle::Disable };
        self.call_hook(&registered.plugin, &gate, config, step).await?;
        let state = if enabled {
            InstallationState::Enabled
        } else {
            InstallationState::Disabled
        };
        let change = if enabled {
            LifecycleChange::Enabled
        } else {
            LifecycleChange::Disabled
        };
        self.commit_lifecycle(
            tenant_id,
            name,
            change,
            move |store, tenant, plugin, event| async move {
                store.set_installation_state(&tenant, &plugin, state, &event).await
            },
        )
        .await?;
        self.plugin_details(tenant_id, name).await
    }

    /// Uninstalls a plugin, deleting its config and secrets; also for a connector this build
    /// lacks, whose hook then cannot run.
    pub async fn uninstall(&self, tenant_id: &TenantId, name: &PluginName) -> Result<(), ServiceError> {
        let gate = self.existing_gate(tenant_id).await?;
        match self.registry.get(name) {
            Some(registered) => {
                if gate.installation(name).is_none() {
                    return Err(ServiceError::NotInstalled(name.to_string()));
                }
                let config = self.plugin_config(&gate, name).await?;
                // A plugin failing to clean up remotely must not keep a tenant's secrets stored here.
                if let Err(error) = self
                    .call_hook(&registered.plugin, &gate, config, Lifecycle::Uninstall)
                    .await
                {
                    tracing::warn!(tenant = %tenant_id, plugin = %name, %error, "plugin uninstall hook failed; uninstalling anyway");
                }
            }
            None if gate.installation(name).is_some() => {
                tracing::warn!(
                    tenant = %tenant_id,
                    plugin = %name,
                    "uninstalling a connector this build lacks; its hook cannot run"
                );
            }
            None => return Err(ServiceError::PluginNotFound(name.to_string())),
        }
        self.commit_lifecycle(
            tenant_id,
            name,
            LifecycleChange::Uninstalled,
            |store, tenant, plugin, event| async move { store.delete_installation(&tenant, &plugin, &event).await },
        )
        .await
    }

    /// What every lifecycle operation ends with: `write` stores the change together with its
    /// lifecycle event (false: the installation is gone), then the event's readers are woken and
    /// Flagsmith hears whether the plugin is now on for the tenant.
    async fn commit_lifecycle<F, Fut>(
        &self,
        tenant_id: &TenantId,
        name: &str,
        change: LifecycleChange,
        write: F,
    ) -> Result<(), ServiceError>
    where
        F: FnOnce(Store, String, String, NewEvent) -> Fut,
        Fut: Future<Output = Result<bool, StoreError>> + Send + 'static,
    {
        let event = EventLog::lifecycle_event(tenant_id, name, change);
        let (tenant, plugin) = (tenant_id.to_string(), name.to_string());
        let found = self
            .mutate(Change::Tenant(tenant_id.to_string()), move |store| {
                write(store, tenant, plugin, event)
            })
            .await?;
        if !found {
            return Err(ServiceError::NotInstalled(name.to_string()));
        }
        match change {
            LifecycleChange::Installed => tracing::info!(tenant = %tenant_id, plugin = %name, "plugin installed"),
            LifecycleChange::Configured => tracing::info!(tenant = %tenant_id, plugin = %name, "plugin configured"),
            LifecycleChange::Enabled => tracing::info!(tenant = %tenant_id, plugin = %name, "plugin enabled"),
            LifecycleChange::Disabled => tracing::info!(tenant = %tenant_id, plugin = %name, "plugin disabled"),
            LifecycleChange::Uninstalled => tracing::info!(tenant = %tenant_id, plugin = %name, "plugin uninstalled"),
        }
        self.events.notify_appended();
        let flag = match change {
            LifecycleChange::Installed | LifecycleChange::Enabled => Some(true),
            LifecycleChange::Disabled | LifecycleChange::Uninstalled => Some(false),
            LifecycleChange::Configured => None,
        };
        if let Some(enabled) = flag {
            self.record_flag_trait(tenant_id, name, enabled).await;
        }
        Ok(())
    }

    fn validated_config(
        &self,
        name: &str,
        plugin: &Arc<dyn Plugin>,
        incoming: Map<String, Value>,
        kept_secrets: BTreeMap<String, integrations_core::Secret>,
    ) -> Result<SplitConfig, ServiceError> {
        // Validate the config as sent (secret values keep their JSON type), kept secrets included.
        let mut config = Value::Object(incoming);
        for (field, secret) in kept_secrets {
            config[field.as_str()] = Value::String(secret.expose().to_owned());
        }
        let validator = self
            .config_validators
            .get(name)
            .ok_or_else(|| ServiceError::PluginNotFound(name.to_string()))?;
        let errors = validation::violations(validator, &config);
        if !errors.is_empty() {
            return Err(ServiceError::InvalidConfig(errors));
        }
        let (plain, secrets) = split(config_object(config)?, &secret_fields(&plugin.config_schema()));
        Ok(SplitConfig { plain, secrets })
    }

    async fn run_hook(
        &self,
        plugin: &Arc<dyn Plugin>,
        gate: &TenantState,
        config: &SplitConfig,
        step: Lifecycle,
    ) -> Result<(), ServiceError> {
        let config = Arc::new(PluginConfig::new(config.plain.clone(), config.secrets.clone()));
        self.call_hook(plugin, gate, config, step).await
    }

    async fn call_hook(
        &self,
        plugin: &Arc<dyn Plugin>,
        gate: &TenantState,
        config: Arc<PluginConfig>,
        step: Lifecycle,
    ) -> Result<(), ServiceError> {
        // A hook (a credentials check, say) talks to the tenant's vendor too: same limits as a call.
        let limits = self.tool_limits;
        let ctx = self.plugin_context(gate, plugin.manifest().name, config, limits.response_budget_bytes)?;
        let Ok(outcome) = tokio::time::timeout(limits.deadline, plugin.on_lifecycle(&ctx, step)).await else {
            return Err(ServiceError::ToolDeadlineExceeded(limits.deadline));
        };
        outcome.map_err(|error| match error {
            PluginError::InvalidConfig { field, message } => {
                ServiceError::InvalidConfig(vec![FieldError { field, message }].into())
            }
            PluginError::Tool(error) => error.into(),
        })
    }

    async fn record_flag_trait(&self, tenant_id: &TenantId, plugin: &str, enabled: bool) {
        if let Err(error) = self.flags.record_plugin_state(tenant_id, plugin, enabled).await {
            tracing::warn!(tenant = %tenant_id, plugin, %error, "could not record the plugin trait in Flagsmith");
        }
    }
}

struct SplitConfig {
    plain: Map<String, Value>,
    secrets: BTreeMap<String, integrations_core::Secret>,
}

impl SplitConfig {
    fn secrets(&self) -> &BTreeMap<String, integrations_core::Secret> {
        &self.secrets
    }
}

/// A kept secret must never follow a change of a field it is bound to (a token to a new host).
fn check_bound_secrets<'a>(
    schema: &Value,
    kept: impl Iterator<Item = &'a String>,
    incoming: &Map<String, Value>,
    stored: &Map<String, Value>,
) -> Result<(), ServiceError> {
    let errors: Vec<FieldError> = kept
        .filter_map(|secret| {
            let changed: Vec<String> = bound_fields(schema, secret)
                .into_iter()
                .filter(|bound| incoming.get(bound) != stored.get(bound))
                .collect();
            (!changed.is_empty()).then(|| FieldError {
                field: secret.clone(),
                message: format!("must be sent again when {} changes", changed.join(" or ")),
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::InvalidConfig(errors.into()))
    }
}

/// The fields a secret is bound to (`"x-bound-to": ["host"]` in its schema property).
fn bound_fields(schema: &Value, secret: &str) -> Vec<String> {
    schema
        .pointer(&format!("/properties/{secret}/x-bound-to"))
        .and_then(Value::as_array)
        .map(|fields| fields.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn config_object(config: Value) -> Result<Map<String, Value>, ServiceError> {
    match config {
        Value::Object(map) => Ok(map),
        _ => Err(ServiceError::InvalidConfig(
            vec![FieldError {
                field: String::new(),
                message: "must be a JSON object".into(),
            }]
            .into(),
        )),
    }
}
