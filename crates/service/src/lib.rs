//! The domain logic of the service, free of HTTP: tenants and their keys, the plugin lifecycle,
//! the tool catalog, inbound webhooks and master-key rotation. The API crate is a thin layer over
//! [`Service`]; tests can drive it directly.

mod budget;
mod error;
mod gate;
mod plugins;
mod rotation;
mod tenants;
mod tools;
mod validation;
mod vault;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use integrations_core::{HttpClient, PluginRegistry};
use integrations_flags::Flags;
use integrations_secrets::Keyring;
use integrations_store::Store;
use jsonschema::Validator;

pub use budget::ToolLimits;
pub use error::ServiceError;
pub use plugins::{PluginDetails, PluginState, PluginSummary};
pub use rotation::{rotate_master_key, RotationReport};
pub use tenants::{CreatedKey, TenantSummary};
pub use tools::ToolListing;
pub use validation::{FieldError, FieldErrors, MAX_REPORTED_ERRORS};
pub use webhooks::{WebhookEventView, WebhookReceipt};

/// Re-reads the master keys from where they came from.
pub type KeyringReload = Box<dyn Fn() -> Result<Keyring, String> + Send + Sync>;

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
    /// Base URL under which this service is reachable (for webhook URLs).
    pub public_url: String,
    /// Response budget and deadline of every tool call.
    pub tool_limits: ToolLimits,
}

/// The service: every operation the API offers.
pub struct Service {
    store: Store,
    keyring: RwLock<Arc<Keyring>>,
    keyring_reload: Option<KeyringReload>,
    registry: Arc<PluginRegistry>,
    flags: Flags,
    http: Arc<dyn HttpClient>,
    public_url: String,
    tool_limits: ToolLimits,
    config_validators: HashMap<String, Validator>,
    tool_validators: HashMap<String, Validator>,
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
        Ok(Self {
            store: parts.store,
            keyring: RwLock::new(Arc::new(parts.keyring)),
            keyring_reload: parts.keyring_reload,
            registry: parts.registry,
            flags: parts.flags,
            http: parts.http,
            public_url: parts.public_url.trim_end_matches('/').to_owned(),
            tool_limits: parts.tool_limits,
            config_validators,
            tool_validators,
        })
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

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
