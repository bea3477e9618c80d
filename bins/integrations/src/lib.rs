//! The host: turns a [`Config`] into a running service. `main.rs` is only the CLI around it, so
//! tests assemble exactly what production runs.

pub mod config;
mod master_key;
pub mod plugins;
pub mod server;

use std::sync::Arc;

use axum::Router;
use integrations_api::{AdminTokenDigest, AppState, TenantAuth};
use integrations_core::{PluginRegistry, RegistryError};
use integrations_flags::{Flags, FlagsmithServer};
use integrations_http::{GuardedHttpClient, OutboundPolicy};
use integrations_mcp::McpConfig;
pub use integrations_mcp::McpSessions;
use integrations_service::{Service, ServiceError, ServiceParts, ToolLimits};
use integrations_store::{Store, StoreError};

pub use config::{Config, ConfigError, FlagsSource};
pub use master_key::{keyring, load_keyring, replace_key_file, KeySource};

/// Why the host cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plugin set is inconsistent.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service could not be assembled.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The master key is missing or unusable.
    #[error("master key: {0}")]
    MasterKey(String),
    /// Flags could not be loaded.
    #[error(transparent)]
    Flags(#[from] integrations_flags::FlagsError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The assembled host.
pub struct App {
    /// The HTTP API: the REST API and the MCP endpoint.
    pub router: Router,
    /// The service behind it.
    pub service: Arc<Service>,
    /// Ends the MCP sessions, whose event streams would otherwise hold a graceful shutdown.
    pub mcp_sessions: McpSessions,
}

/// Opens the database (creating the data dir for SQLite) and applies migrations.
/// Starts everything that reads the event log, side by side: the pipeline (stored webhooks into
/// events, retention), the NATS relay when configured, and outbound webhook delivery. Each keeps
/// its own position in the log, so none waits for another.
fn start_event_log_consumers(service: &Service, config: &Config) {
    service.start_pipeline(integrations_events::PipelineSettings {
        retention: config.event_retention,
        ..Default::default()
    });
    if let Some(nats) = &config.nats {
        let relay =
            integrations_nats::EventRelay::new(service.store().clone(), nats.clone(), service.event_log().appended());
        service.keep_background(relay.spawn());
        // The URL may carry credentials: only the stream is logged.
        tracing::info!(stream = %nats.stream, "publishing events to NATS JetStream");
    }
    service.start_outbound(integrations_delivery::DeliverySettings {
        schedule: config.webhook_retry_schedule.clone(),
        memory_budget_bytes: config.dispatch_memory_bytes,
        ..Default::default()
    });
}

pub async fn open_store(config: &Config) -> Result<Store, StartupError> {
    if config.is_embedded() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartupError::Other(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
    }
    let store = Store::connect(&config.database_url()).await?;
    store.migrate().await?;
    Ok(store)
}

/// Builds the whole host from its configuration, with the plugins linked into this binary.
pub async fn build_app(config: &Config) -> Result<App, StartupError> {
    build_app_with(config, PluginRegistry::linked()?).await
}

/// Builds the host with the given plugins (tests: a build that lacks a connector).
pub async fn build_app_with(config: &Config, registry: PluginRegistry) -> Result<App, StartupError> {
    // Check the key first: a misconfigured production start must not touch the database.
    load_keyring(config)?;
    let store = open_store(config).await?;
    let (keyring, source) = keyring(config, &store).await?;
    // In file mode a rotation replaces the key file while servers run; they pick it up when they
    // meet a data key wrapped by a key they do not know yet.
    let reload: Option<integrations_service::KeyringReload> = match source {
        KeySource::File(_) => {
            let config = config.clone();
            Some(Box::new(move || match load_keyring(&config) {
                Ok(Some((keyring, _))) => Ok(keyring),
                Ok(None) => Err("the master key file has gone".to_owned()),
                Err(error) => Err(error.to_string()),
            }))
        }
        KeySource::Environment => None,
    };
    let policy = OutboundPolicy::from_cidr_list(&config.outbound_allow_cidrs)
        .map_err(|e| StartupError::Other(format!("INTEGRATIONS_OUTBOUND_ALLOW_CIDRS: {e}")))?;
    let http = GuardedHttpClient::new(policy.clone(), config.outbound_timeout)
        .map_err(|e| StartupError::Other(e.to_string()))?;
    let timeout = config.outbound_timeout;
    // A tenant with its own allowlist gets its own client (and connection pool), built once and
    // kept with the tenant's cached state.
    let tenant_http: integrations_service::TenantHttpFactory = Box::new(move |cidrs| {
        let client = GuardedHttpClient::new(policy.with_additional(cidrs)?, timeout).map_err(|e| e.to_string())?;
        Ok(Arc::new(client) as Arc<dyn integrations_core::HttpClient>)
    });
    let flags = match &config.flags {
        FlagsSource::None => Flags::allow_all(),
        FlagsSource::File(path) => Flags::from_document_file(path)?,
        FlagsSource::Server {
            api_url,
            server_key,
            poll_interval,
        } => Flags::from_server(FlagsmithServer::new(api_url, server_key.expose(), *poll_interval)?).await,
    };
    let service = Arc::new(Service::new(ServiceParts {
        store,
        keyring,
        keyring_reload: reload,
        registry: Arc::new(registry),
        flags,
        http: Arc::new(http),
        tenant_http,
        public_url: config.public_url(),
        tool_limits: ToolLimits {
            response_budget_bytes: config.tool_response_budget_bytes,
            max_response_budget_bytes: config.tool_response_budget_max_bytes,
            deadline: config.tool_deadline,
            max_pages: config.tool_max_pages,
        },
        job_settings: integrations_jobs::JobSettings {
            max_attempts: config.job_max_attempts,
            backoff_base: config.job_backoff_base,
            retention: config.job_retention,
            max_running_per_tenant: config.max_running_jobs_per_tenant,
            // A claim outlasts the longest run a tool call is allowed, so runs never overlap.
            lease: config.tool_deadline + std::time::Duration::from_secs(60),
            ..Default::default()
        },
        limits: config.tenant_limits,
        upstream_retry: config.upstream_retry,
        breakers: config.breakers,
        idempotency_ttl: config.idempotency_ttl,
    })?);
    if let Some(nats) = &config.nats {
        // Jobs are announced on a JetStream work queue that every replica's worker pulls from;
        // without it (or while it is unreachable at start) workers poll the database.
        let ack_wait = config.tool_deadline + std::time::Duration::from_secs(60);
        match integrations_nats::NatsJobFeed::connect(nats, ack_wait).await {
            Ok(feed) => service.job_queue().set_feed(feed).map_err(StartupError::Other)?,
            Err(error) => tracing::warn!(%error, "job announcements on NATS unavailable; workers poll the database"),
        }
    }
    let worker = service.job_queue().spawn(integrations_service::job_handlers(&service));
    service.keep_background(worker);
    service.listen_for_changes().await;
    service.start_idempotency_sweep();
    start_event_log_consumers(&service, config);
    let state = AppState {
        service: service.clone(),
        admin_token: config.admin_token.as_ref().map(|t| AdminTokenDigest::new(t.expose())),
        tenant_auth: if config.trust_tenant_header {
            TenantAuth::TrustedHeader
        } else {
            TenantAuth::ApiKey
        },
    };
    let mcp = integrations_mcp::endpoint(
        state.clone(),
        &McpConfig {
            allowed_hosts: config.mcp_allowed_hosts.clone(),
            max_sessions_per_tenant: config.mcp_max_sessions_per_tenant,
        },
    );
    Ok(App {
        router: integrations_api::app(state).merge(mcp.router),
        service,
        mcp_sessions: mcp.sessions,
    })
}
