//! Whether a tenant may use a plugin right now (installed, enabled, allowed by flags), and what
//! a call needs of the tenant: its decrypted config and its outbound client. All from the cache.

use integrations_core::TenantId;
use std::sync::Arc;

use integrations_core::{HttpClient, PluginConfig, PluginContext};
use integrations_http::{ResilientClient, UpstreamBreakers};
use integrations_store::{Installation, InstallationState};

use std::future::Future;

use integrations_store::{Change, Store, StoreError};

use crate::budget::BudgetedHttpClient;
use crate::state::{StateCache, TenantState};
use crate::{Service, ServiceError, TenantHttpFactory};

impl TenantState {
    /// Whether flags let the tenant use `plugin`; decided once per flags document for all plugins.
    pub(crate) fn allowed(&self, service: &Service, plugin: &str) -> bool {
        let decisions = self.decisions(service.flags.generation(), || {
            let names = service.registry.names();
            let verdicts = service.flags.allowed_plugins(&self.tenant.id, &self.traits, &names);
            names.into_iter().map(str::to_owned).zip(verdicts).collect()
        });
        decisions.get(plugin).copied().unwrap_or(false)
    }

    /// The installation, when it is enabled and allowed.
    pub(crate) fn usable(&self, service: &Service, plugin: &str) -> Option<&Installation> {
        self.installation(plugin)
            .filter(|i| i.state == InstallationState::Enabled && self.allowed(service, plugin))
    }
}

impl Service {
    /// The state of a tenant; `None` when the tenant does not exist.
    pub(crate) async fn gate(&self, tenant_id: &TenantId) -> Result<Option<Arc<TenantState>>, ServiceError> {
        load_gate(&self.cache, &self.store, tenant_id).await
    }

    /// The state of a tenant that must exist.
    pub(crate) async fn existing_gate(&self, tenant_id: &TenantId) -> Result<Arc<TenantState>, ServiceError> {
        self.gate(tenant_id).await?.ok_or(ServiceError::TenantNotFound)
    }

    /// The tenant's decrypted config of `plugin`, decrypted once and then kept with its state.
    pub(crate) async fn plugin_config(
        &self,
        state: &TenantState,
        plugin: &str,
    ) -> Result<Arc<PluginConfig>, ServiceError> {
        if let Some(config) = state.cached_config(plugin) {
            return Ok(config);
        }
        // The cached state's tenant was checked when it was created.
        let tenant_id = &TenantId::from_trusted(&state.tenant.id);
        let (installation, rows) = self
            .store
            .get_installation_with_secrets(tenant_id, plugin)
            .await?
            .ok_or_else(|| ServiceError::NotInstalled(plugin.to_owned()))?;
        let secrets = self.open_rows(tenant_id, plugin, rows).await?;
        let config = Arc::new(PluginConfig::new(installation.config, secrets));
        state.remember_config(plugin, config.clone());
        Ok(config)
    }

    /// The outbound client for this tenant: the shared one, or one that also admits the
    /// tenant's own networks.
    pub(crate) fn tenant_http(&self, state: &TenantState) -> Result<Arc<dyn HttpClient>, ServiceError> {
        client_for(&self.http, &self.tenant_http, state)
    }

    /// What a plugin gets for one tool call or lifecycle hook: a fresh response budget (plugins
    /// cannot opt out of it, nor share it across calls), retries and the tenant's circuit
    /// breakers, and the token manager, all over the tenant's outbound client, and the operator's
    /// page cap for listings.
    pub(crate) fn plugin_context(
        &self,
        state: &TenantState,
        plugin: &str,
        config: Arc<PluginConfig>,
        response_budget_bytes: usize,
    ) -> Result<PluginContext, ServiceError> {
        let upstream = self.breakers.of(&state.tenant.id, plugin);
        Ok(self
            .call_context(state, plugin, upstream, config, response_budget_bytes)?
            .0)
    }

    /// [`Self::plugin_context`] with the tenant's breakers for the plugin's upstream, and the
    /// call's client for what it saw of the vendor.
    pub(crate) fn call_context(
        &self,
        state: &TenantState,
        plugin: &str,
        upstream: Arc<UpstreamBreakers>,
        config: Arc<PluginConfig>,
        response_budget_bytes: usize,
    ) -> Result<(PluginContext, Arc<ResilientClient>), ServiceError> {
        let budgeted: Arc<dyn HttpClient> =
            Arc::new(BudgetedHttpClient::new(self.tenant_http(state)?, response_budget_bytes));
        let resilient = Arc::new(ResilientClient::new(
            budgeted,
            self.upstream_retry,
            upstream,
            std::time::Instant::now() + self.tool_limits.deadline,
        ));
        let http: Arc<dyn HttpClient> = resilient.clone();
        let context = PluginContext {
            tenant_id: state.tenant.id.clone(),
            tokens: self
                .tokens
                .provider(&state.tenant.id, plugin, config.clone(), http.clone()),
            config,
            http,
            max_pages: self.tool_limits.max_pages,
        };
        Ok((context, resilient))
    }

    /// Runs a mutation to its end even if the caller goes away meanwhile (its commit may already
    /// be under way), then forgets on this replica what it changed; other replicas hear of it
    /// from the notice the store sends with the commit.
    pub(crate) async fn mutate<T, F, Fut>(&self, change: Change, mutation: F) -> Result<T, ServiceError>
    where
        F: FnOnce(Store) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let cache = self.cache.clone();
        let running = mutation(self.store.clone());
        let task = tokio::spawn(async move {
            let outcome = running.await;
            cache.invalidate(&change);
            outcome
        });
        match task.await {
            Ok(outcome) => Ok(outcome?),
            Err(error) => Err(ServiceError::Internal(format!(
                "a store mutation failed to finish: {error}"
            ))),
        }
    }
}

/// The state of a tenant from the cache, or loaded and remembered; `None` when it does not exist.
pub(crate) async fn load_gate(
    cache: &StateCache,
    store: &Store,
    tenant_id: &TenantId,
) -> Result<Option<Arc<TenantState>>, ServiceError> {
    if let Some(state) = cache.tenant(tenant_id) {
        return Ok(Some(state));
    }
    let generation = cache.generation();
    let Some(tenant) = store.get_tenant(tenant_id).await? else {
        return Ok(None);
    };
    let installations = store.list_installations(tenant_id).await?;
    let state = Arc::new(TenantState::new(tenant, installations));
    cache.insert_tenant(generation, state.clone());
    Ok(Some(state))
}

/// The tenant's outbound client: the shared one, or one (built once per cached state) that also
/// admits the tenant's own networks.
pub(crate) fn client_for(
    shared: &Arc<dyn HttpClient>,
    factory: &TenantHttpFactory,
    state: &TenantState,
) -> Result<Arc<dyn HttpClient>, ServiceError> {
    if state.tenant.outbound_allow_cidrs.is_empty() {
        return Ok(shared.clone());
    }
    if let Some(client) = state.http() {
        return Ok(client);
    }
    let client = factory(&state.tenant.outbound_allow_cidrs).map_err(ServiceError::Internal)?;
    Ok(state.remember_http(client))
}
