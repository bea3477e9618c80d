//! The domain logic of the service, free of HTTP: tenants and their keys, the plugin lifecycle,
//! the tool catalog, inbound webhooks, outbound webhook endpoints and master-key rotation. The API crate is a thin layer over
//! [`Service`]; tests can drive it directly.

mod budget;
mod gate;
mod idempotency;
mod in_flight;
mod jobs;
mod limits;
mod outbound;
mod plugins;
mod rate_limits;
mod replicas;
mod rotation;
mod state;
mod tenant_events;
mod tenants;
mod tokens;
mod tools;
mod validation;
mod vault;
mod webhook_deliveries;
mod webhook_endpoints;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use integrations_core::{HttpClient, PluginRegistry};
use integrations_events::EventLog;
use integrations_flags::Flags;
use integrations_oauth2::TokenManager;
use integrations_secrets::Keyring;
use integrations_store::Store;
use jsonschema::Validator;

pub use budget::ToolLimits;
pub use idempotency::{tool_call_fingerprint, IdempotentStart, MAX_IDEMPOTENCY_KEY_LEN};
pub use integrations_core::{EndpointId, InvalidId, JobId, KeyId, PluginName, TenantId, ToolName};
pub use integrations_problems::{FieldError, FieldErrors, RateLimited, RateScope, ServiceError, MAX_REPORTED_ERRORS};
pub use integrations_store::StoredResponse;
pub use jobs::{job_handlers, retryable, JobView, DEFAULT_JOB_PAGE, TOOL_CALL_JOB};
pub use limits::{check_rate_limit, DeploymentLimits, EffectiveLimits, LimitChange, LimitsUpdate};
pub use plugins::{PluginDetails, PluginState, PluginSummary, UpstreamView};
pub use rotation::{rotate_master_key, RotationReport};
pub use tenants::{validate_tenant_id, CreatedKey, NewTenant, TenantSummary, TenantUpdate};
pub use tools::ToolListing;
pub use webhook_deliveries::{
    DeliveryCursor, InvalidCursor, WebhookDeliveryPage, WebhookDeliveryView, DEFAULT_DELIVERY_PAGE_LIMIT,
    MAX_DELIVERY_PAGE_LIMIT, MAX_DELIVERY_PAGE_PAYLOAD_BYTES,
};
pub use webhook_endpoints::{
    AttemptPage, AttemptView, CreatedWebhookEndpoint, ReplayReport, ReplayRequest, ReplaySince, WebhookEndpointFields,
    WebhookEndpointView, MAX_ATTEMPT_PAGE, MAX_REPLAY_EVENTS,
};
pub use webhooks::WebhookReceipt;

/// Re-reads the master keys from where they came from.
pub type KeyringReload = Box<dyn Fn() -> Result<Keyring, String> + Send + Sync>;

/// Builds the outbound client of a tenant whose allowlist adds networks (CIDRs) to the global
/// one; fails on a malformed CIDR.
pub type TenantHttpFactory = Box<dyn Fn(&[String]) -> Result<Arc<dyn HttpClient>, String> + Send + Sync>;

/// What the service is assembled from.
pub struct ServiceParts {
    /// The database.
    pub store: Store,
    /// Master keys.
    pub keyring: Keyring,
    /// Re-reads the master keys (file mode), when a data key names a key not in the keyring.
    pub keyring_reload: Option<KeyringReload>,
    /// Compiled-in plugins.
    pub registry: Arc<PluginRegistry>,
    /// Flag gate.
    pub flags: Flags,
    /// Outbound client for plugins.
    pub http: Arc<dyn HttpClient>,
    /// Outbound clients for tenants with their own allowlist.
    pub tenant_http: TenantHttpFactory,
    /// Base URL under which this service is reachable (for webhook URLs).
    pub public_url: String,
    /// Response budget and deadline of every tool call.
    pub tool_limits: ToolLimits,
    /// How background jobs (asynchronous tool calls) are retried.
    pub job_settings: integrations_jobs::JobSettings,
    /// What each tenant may use unless the operator set its own limits.
    pub limits: DeploymentLimits,
    /// How vendor requests are retried.
    pub upstream_retry: integrations_http::RetrySettings,
    /// When a tenant's breaker for a vendor opens and for how long.
    pub breakers: integrations_http::BreakerSettings,
    /// How long an idempotency key's response is replayed.
    pub idempotency_ttl: std::time::Duration,
}

/// The service: every operation the API offers.
pub struct Service {
    store: Store,
    keys: Arc<vault::Keys>,
    tokens: Arc<TokenManager>,
    events: Arc<EventLog>,
    jobs: Arc<integrations_jobs::JobQueue>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Outbound webhook delivery, once started.
    outbound: std::sync::OnceLock<integrations_delivery::Outbound>,
    registry: Arc<PluginRegistry>,
    flags: Flags,
    http: Arc<dyn HttpClient>,
    tenant_http: Arc<TenantHttpFactory>,
    public_url: String,
    cache: Arc<state::StateCache>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    tool_limits: ToolLimits,
    config_validators: HashMap<String, Validator>,
    tool_validators: HashMap<String, Validator>,
    limits: DeploymentLimits,
    rate_limiters: Arc<rate_limits::RateLimiters>,
    tool_calls: in_flight::InFlight,
    long_polls: in_flight::InFlight,
    /// This process among the replicas sharing the database.
    replica_id: String,
    upstream_retry: integrations_http::RetrySettings,
    breakers: Arc<integrations_http::Breakers>,
    idempotency_ttl: std::time::Duration,
}

impl Service {
    /// Assembles the service, compiling every plugin's schemas once.
    pub fn new(parts: ServiceParts) -> Result<Self, ServiceError> {
        let mut config_validators = HashMap::new();
        let mut tool_validators = HashMap::new();
        for registered in parts.registry.plugins() {
            let name = registered.plugin.manifest().name;
            let validator = validation::compile(&registered.plugin.config_schema())
                .map_err(|e| ServiceError::Internal(format!("plugin {name}: invalid config schema: {e}")))?;
            config_validators.insert(name.to_owned(), validator);
            for tool in &registered.tools {
                let validator = validation::compile(&tool.input_schema)
                    .map_err(|e| ServiceError::Internal(format!("tool {}: invalid input schema: {e}", tool.name)))?;
                tool_validators.insert(tool.name.clone(), validator);
            }
        }
        // On PostgreSQL other replicas change things too: the cache stays bypassed until
        // `listen_for_changes` hears them.
        let cache_enabled = parts.store.backend() == integrations_store::Backend::Sqlite;
        let cache = Arc::new(state::StateCache::new(cache_enabled));
        let keys = Arc::new(vault::Keys::new(parts.keyring, parts.keyring_reload));
        let tokens = TokenManager::new(Arc::new(tokens::InstallationVault::new(
            parts.store.clone(),
            keys.clone(),
            cache.clone(),
        )));
        let events = EventLog::new(parts.store.clone(), parts.registry.clone());
        let jobs = integrations_jobs::JobQueue::new(parts.store.clone(), parts.job_settings);
        Ok(Self {
            cache,
            listener: Mutex::new(None),
            tenant_http: Arc::new(parts.tenant_http),
            outbound: std::sync::OnceLock::new(),
            store: parts.store,
            keys,
            tokens,
            events,
            jobs,
            background: Mutex::new(Vec::new()),
            registry: parts.registry,
            flags: parts.flags,
            http: parts.http,
            public_url: parts.public_url.trim_end_matches('/').to_owned(),
            tool_limits: parts.tool_limits,
            config_validators,
            tool_validators,
            limits: parts.limits,
            rate_limiters: Arc::new(rate_limits::RateLimiters::new()),
            tool_calls: in_flight::InFlight::default(),
            long_polls: in_flight::InFlight::default(),
            replica_id: hex::encode(integrations_secrets::random_bytes::<8>()?),
            upstream_retry: parts.upstream_retry,
            breakers: integrations_http::Breakers::new(parts.breakers),
            idempotency_ttl: parts.idempotency_ttl,
        })
    }

    /// Starts applying other replicas' changes to this replica's cache (PostgreSQL); until then,
    /// and whenever that channel is down, the cache is bypassed.
    pub async fn listen_for_changes(&self) {
        let handle = state::spawn_listener(self.store.clone(), &self.cache).await;
        let previous = std::mem::replace(
            &mut *self.listener.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            handle,
        );
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// Starts the background work of the event pipeline (webhooks into events, retention); it
    /// stops when the service is dropped.
    pub fn start_pipeline(&self, settings: integrations_events::PipelineSettings) {
        let handles = self.events.spawn(settings);
        self.background
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(handles);
    }

    /// The normalized event log (for its consumers: the NATS relay, outbound deliveries).
    pub fn event_log(&self) -> &Arc<EventLog> {
        &self.events
    }

    /// Keeps a background task of the host's, to stop it with the service.
    pub fn keep_background(&self, task: tokio::task::JoinHandle<()>) {
        self.background
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(task);
    }

    /// The store, for operations outside the request path (rotation, tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The compiled-in plugins.
    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(listener) = self
            .listener
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            listener.abort();
        }
        for task in self
            .background
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
