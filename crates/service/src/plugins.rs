use integrations_core::{PluginName, TenantId};
use std::collections::BTreeMap;
use std::sync::Arc;

use integrations_core::{Lifecycle, Plugin, PluginConfig, PluginError, RegisteredPlugin, ToolSpec};
use std::future::Future;

use integrations_store::{Installation, InstallationState, NewEvent, Store, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};

use integrations_events::{EventLog, LifecycleChange};
use integrations_store::Change;

use crate::state::TenantState;
use crate::vault::{secret_fields, split};
use crate::{validation, FieldError, Service, ServiceError};

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
    async fn installed(&self, tenant_id: &str, name: &str) -> Result<(&RegisteredPlugin, Installation), ServiceError> {
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
        tenant_id: &str,
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

    async fn record_flag_trait(&self, tenant_id: &str, plugin: &str, enabled: bool) {
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
