//! Configuration from environment variables, optionally completed by an env file named by
//! `INTEGRATIONS_CONFIG_FILE` (lines of `KEY=VALUE`); the environment wins over the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use integrations_core::Secret;
use integrations_delivery::{InvalidSchedule, RetrySchedule};
pub use integrations_nats::NatsSettings as NatsConfig;

mod values;

use values::{allowed_hosts, breaker_settings, invalid, nats_token, positive, read_env_file, seconds, tenant_limits};

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has an unusable value.
    #[error("{name}: {message}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Where Flagsmith's environment document comes from.
#[derive(Clone, Debug)]
pub enum FlagsSource {
    /// No Flagsmith: every plugin allowed.
    None,
    /// A local document file.
    File(PathBuf),
    /// A Flagsmith server polled for the document.
    Server {
        /// API base, e.g. `https://edge.api.flagsmith.com/api/v1`.
        api_url: String,
        /// Server-side environment key.
        server_key: Secret,
        /// Poll interval.
        poll_interval: Duration,
    },
}

/// The host's configuration.
#[derive(Clone)]
pub struct Config {
    /// `INTEGRATIONS_BIND`.
    pub bind: SocketAddr,
    /// `INTEGRATIONS_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`; `None` means SQLite in the data dir.
    pub database_url: Option<String>,
    /// `INTEGRATIONS_MASTER_KEY` (base64, 32 bytes).
    pub master_key: Option<Secret>,
    /// `INTEGRATIONS_PREVIOUS_MASTER_KEYS`: comma-separated keys still accepted for unwrapping.
    pub previous_master_keys: Vec<Secret>,
    /// `INTEGRATIONS_ADMIN_TOKEN`.
    pub admin_token: Option<Secret>,
    /// `INTEGRATIONS_TRUST_TENANT_HEADER`.
    pub trust_tenant_header: bool,
    /// `INTEGRATIONS_OUTBOUND_ALLOW_CIDRS`.
    pub outbound_allow_cidrs: String,
    /// `INTEGRATIONS_OUTBOUND_TIMEOUT_SECS`.
    pub outbound_timeout: Duration,
    /// `INTEGRATIONS_PUBLIC_URL`: base of webhook URLs.
    pub public_url: Option<String>,
    /// `INTEGRATIONS_TOOL_RESPONSE_BUDGET_BYTES`: vendor response bytes one tool call may read.
    pub tool_response_budget_bytes: usize,
    /// `INTEGRATIONS_TOOL_RESPONSE_BUDGET_MAX_BYTES`: the most a plugin may raise one call's budget
    /// to (a SharePoint download up to its configured size).
    pub tool_response_budget_max_bytes: usize,
    /// `INTEGRATIONS_TOOL_DEADLINE_SECS`: time one tool call may take.
    pub tool_deadline: Duration,
    /// `INTEGRATIONS_TOOL_MAX_PAGES`: vendor pages one listing of a tool call may request.
    pub tool_max_pages: usize,
    /// `INTEGRATIONS_HEADER_READ_TIMEOUT_SECS`: time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// `INTEGRATIONS_REQUEST_TIMEOUT_SECS`: time to read a request's body and answer it.
    pub request_timeout: Duration,
    /// `INTEGRATIONS_MAX_CONNECTIONS`: connections served at once (lowered at start to fit the
    /// open-file limit); when all are taken, the one idle the longest is closed for a new one.
    pub max_connections: usize,
    /// `INTEGRATIONS_WRITE_STALL_TIMEOUT_SECS`: time a client may leave a response unread.
    pub write_stall_timeout: Duration,
    /// How long events, and processed webhooks (whose delivery ids dedup), are kept.
    pub event_retention: Duration,
    /// `INTEGRATIONS_JOB_MAX_ATTEMPTS`: attempts of a background job before it is dead.
    pub job_max_attempts: i64,
    /// `INTEGRATIONS_JOB_BACKOFF_BASE_MS`: the first retry's wait; it doubles per attempt.
    pub job_backoff_base: Duration,
    /// `INTEGRATIONS_JOB_RETENTION_SECS`: how long a job that ended is kept.
    pub job_retention: Duration,
    /// `INTEGRATIONS_MAX_RUNNING_JOBS_PER_TENANT`: one tenant's jobs running at once, across replicas.
    pub max_running_jobs_per_tenant: usize,
    /// NATS JetStream to publish events to (`NATS_URL`); without it, events live in the database only.
    pub nats: Option<NatsConfig>,
    /// `INTEGRATIONS_MCP_ALLOWED_HOSTS`: `Host` header values the MCP endpoint accepts (`name` or
    /// `name:port`, comma-separated; `*` accepts any). Default: the loopback names.
    pub mcp_allowed_hosts: Vec<String>,
    /// `INTEGRATIONS_WEBHOOK_RETRY_SCHEDULE`: seconds before each outbound webhook attempt
    /// (`0,5,300,…`); Svix's schedule by default.
    pub webhook_retry_schedule: RetrySchedule,
    /// `INTEGRATIONS_DISPATCH_MEMORY_BYTES`: most event data the outbound dispatcher holds for
    /// claimed deliveries at once.
    pub dispatch_memory_bytes: usize,
    /// `FLAGSMITH_*`.
    pub flags: FlagsSource,
    /// `INTEGRATIONS_RATE_LIMIT_*`, `INTEGRATIONS_WEBHOOK_RATE_LIMIT_*`, `INTEGRATIONS_MAX_*`: what
    /// each tenant may use unless the operator gave it limits of its own.
    pub tenant_limits: integrations_service::DeploymentLimits,
    /// `INTEGRATIONS_MCP_MAX_SESSIONS_PER_TENANT`: MCP sessions one tenant may hold open; opening
    /// one more closes its least recently used.
    pub mcp_max_sessions_per_tenant: usize,
    /// `INTEGRATIONS_UPSTREAM_MAX_ATTEMPTS`: attempts of one vendor request, retries included.
    pub upstream_retry: integrations_http::RetrySettings,
    /// `INTEGRATIONS_BREAKER_*`: when a tenant's breaker for a vendor opens, and for how long.
    pub breakers: integrations_http::BreakerSettings,
    /// `INTEGRATIONS_IDEMPOTENCY_TTL_SECS`: how long a tool call's response is replayed for its
    /// `Idempotency-Key`.
    pub idempotency_ttl: Duration,
}

impl Config {
    /// Defaults: everything embedded under `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8085)),
            data_dir: data_dir.into(),
            database_url: None,
            master_key: None,
            previous_master_keys: Vec::new(),
            admin_token: None,
            trust_tenant_header: false,
            outbound_allow_cidrs: String::new(),
            outbound_timeout: Duration::from_secs(30),
            public_url: None,
            tool_response_budget_bytes: 4 * 1024 * 1024,
            tool_response_budget_max_bytes: 64 * 1024 * 1024,
            tool_deadline: Duration::from_secs(60),
            tool_max_pages: integrations_core::PluginContext::DEFAULT_MAX_PAGES,
            header_read_timeout: Duration::from_secs(10),
            // Longer than the tool deadline, so a slow tool call ends with its own, more precise
            // problem (tool-deadline-exceeded) rather than this generic one.
            request_timeout: Duration::from_secs(75),
            // Idle connections cost little (a socket and a small task), so many fit; what does not
            // fit the open-file limit is cut at start.
            max_connections: 10_000,
            write_stall_timeout: Duration::from_secs(10),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            job_max_attempts: 5,
            job_backoff_base: Duration::from_secs(2),
            job_retention: Duration::from_secs(7 * 24 * 3600),
            max_running_jobs_per_tenant: 4,
            nats: None,
            mcp_allowed_hosts: integrations_mcp::McpConfig::default().allowed_hosts,
            webhook_retry_schedule: RetrySchedule::default(),
            dispatch_memory_bytes: integrations_delivery::DeliverySettings::default().memory_budget_bytes,
            flags: FlagsSource::None,
            tenant_limits: integrations_service::DeploymentLimits::default(),
            mcp_max_sessions_per_tenant: integrations_mcp::McpConfig::default().max_sessions_per_tenant,
            upstream_retry: integrations_http::RetrySettings::default(),
            breakers: integrations_http::BreakerSettings::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// Reads the process environment (and the optional config file).
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let mut values = match env.get("INTEGRATIONS_CONFIG_FILE") {
            Some(path) => read_env_file(Path::new(path))?,
            None => HashMap::new(),
        };
        values.extend(env);
        Self::from_values(&values)
    }

    /// Builds a config from a map of variables.
    pub fn from_values(values: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| values.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut config = Self::with_data_dir(get("INTEGRATIONS_DATA_DIR").unwrap_or("./data"));
        if let Some(bind) = get("INTEGRATIONS_BIND") {
            config.bind = bind
                .parse()
                .map_err(|_| invalid("INTEGRATIONS_BIND", "expected host:port, e.g. 127.0.0.1:8085"))?;
        }
        config.database_url = get("DATABASE_URL").map(str::to_owned);
        config.master_key = get("INTEGRATIONS_MASTER_KEY").map(Secret::new);
        config.previous_master_keys = get("INTEGRATIONS_PREVIOUS_MASTER_KEYS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(Secret::new)
                    .collect()
            })
            .unwrap_or_default();
        config.admin_token = get("INTEGRATIONS_ADMIN_TOKEN").map(Secret::new);
        config.trust_tenant_header = match get("INTEGRATIONS_TRUST_TENANT_HEADER") {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => return Err(invalid("INTEGRATIONS_TRUST_TENANT_HEADER", "expected true or false")),
        };
        config.outbound_allow_cidrs = get("INTEGRATIONS_OUTBOUND_ALLOW_CIDRS").unwrap_or_default().to_owned();
        if let Some(secs) = get("INTEGRATIONS_OUTBOUND_TIMEOUT_SECS") {
            let secs: u64 = secs
                .parse()
                .map_err(|_| invalid("INTEGRATIONS_OUTBOUND_TIMEOUT_SECS", "expected seconds"))?;
            config.outbound_timeout = Duration::from_secs(secs.max(1));
        }
        config.public_url = get("INTEGRATIONS_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(bytes) = get("INTEGRATIONS_TOOL_RESPONSE_BUDGET_BYTES") {
            config.tool_response_budget_bytes = positive(bytes, "INTEGRATIONS_TOOL_RESPONSE_BUDGET_BYTES", "bytes")?;
        }
        if let Some(bytes) = get("INTEGRATIONS_TOOL_RESPONSE_BUDGET_MAX_BYTES") {
            config.tool_response_budget_max_bytes =
                positive(bytes, "INTEGRATIONS_TOOL_RESPONSE_BUDGET_MAX_BYTES", "bytes")?;
        }
        if let Some(secs) = get("INTEGRATIONS_TOOL_DEADLINE_SECS") {
            config.tool_deadline = seconds(secs, "INTEGRATIONS_TOOL_DEADLINE_SECS")?;
        }
        if let Some(pages) = get("INTEGRATIONS_TOOL_MAX_PAGES") {
            config.tool_max_pages = positive(pages, "INTEGRATIONS_TOOL_MAX_PAGES", "pages")?;
        }
        if let Some(url) = get("NATS_URL") {
            let mut nats = NatsConfig::new(url);
            if let Some(stream) = get("INTEGRATIONS_NATS_STREAM") {
                if !nats_token(stream) {
                    return Err(invalid("INTEGRATIONS_NATS_STREAM", "use letters, digits, '-' and '_'"));
                }
                nats.stream = stream.to_owned();
            }
            if let Some(prefix) = get("INTEGRATIONS_NATS_SUBJECT_PREFIX") {
                if !prefix.split('.').all(nats_token) {
                    return Err(invalid(
                        "INTEGRATIONS_NATS_SUBJECT_PREFIX",
                        "use dot-separated words of letters, digits, '-' and '_'",
                    ));
                }
                nats.subject_prefix = prefix.to_owned();
            }
            if let Some(subject) = get("INTEGRATIONS_NATS_JOBS_SUBJECT") {
                if !subject.split('.').all(nats_token) {
                    return Err(invalid(
                        "INTEGRATIONS_NATS_JOBS_SUBJECT",
                        "use dot-separated words of letters, digits, '-' and '_'",
                    ));
                }
                nats.jobs_subject = subject.to_owned();
            }
            config.nats = Some(nats);
        }
        if let Some(attempts) = get("INTEGRATIONS_JOB_MAX_ATTEMPTS") {
            config.job_max_attempts = positive(attempts, "INTEGRATIONS_JOB_MAX_ATTEMPTS", "attempts")? as i64;
        }
        if let Some(millis) = get("INTEGRATIONS_JOB_BACKOFF_BASE_MS") {
            let millis = positive(millis, "INTEGRATIONS_JOB_BACKOFF_BASE_MS", "milliseconds")?;
            config.job_backoff_base = Duration::from_millis(millis as u64);
        }
        if let Some(secs) = get("INTEGRATIONS_JOB_RETENTION_SECS") {
            config.job_retention = seconds(secs, "INTEGRATIONS_JOB_RETENTION_SECS")?;
        }
        if let Some(count) = get("INTEGRATIONS_MAX_RUNNING_JOBS_PER_TENANT") {
            config.max_running_jobs_per_tenant =
                positive(count, "INTEGRATIONS_MAX_RUNNING_JOBS_PER_TENANT", "a number of jobs")?;
        }
        if let Some(secs) = get("INTEGRATIONS_EVENT_RETENTION_SECS") {
            config.event_retention = seconds(secs, "INTEGRATIONS_EVENT_RETENTION_SECS")?;
        }
        if let Some(schedule) = get("INTEGRATIONS_WEBHOOK_RETRY_SCHEDULE") {
            config.webhook_retry_schedule = schedule
                .parse()
                .map_err(|e: InvalidSchedule| invalid("INTEGRATIONS_WEBHOOK_RETRY_SCHEDULE", &e.to_string()))?;
        }
        if let Some(bytes) = get("INTEGRATIONS_DISPATCH_MEMORY_BYTES") {
            config.dispatch_memory_bytes = positive(bytes, "INTEGRATIONS_DISPATCH_MEMORY_BYTES", "bytes")?;
        }
        if let Some(secs) = get("INTEGRATIONS_WRITE_STALL_TIMEOUT_SECS") {
            config.write_stall_timeout = seconds(secs, "INTEGRATIONS_WRITE_STALL_TIMEOUT_SECS")?;
        }
        if let Some(secs) = get("INTEGRATIONS_HEADER_READ_TIMEOUT_SECS") {
            config.header_read_timeout = seconds(secs, "INTEGRATIONS_HEADER_READ_TIMEOUT_SECS")?;
        }
        if let Some(secs) = get("INTEGRATIONS_REQUEST_TIMEOUT_SECS") {
            config.request_timeout = seconds(secs, "INTEGRATIONS_REQUEST_TIMEOUT_SECS")?;
        }
        if let Some(count) = get("INTEGRATIONS_MAX_CONNECTIONS") {
            config.max_connections = positive(count, "INTEGRATIONS_MAX_CONNECTIONS", "a number of connections")?;
        }
        if let Some(hosts) = get("INTEGRATIONS_MCP_ALLOWED_HOSTS") {
            config.mcp_allowed_hosts = allowed_hosts(hosts)?;
        }
        if let Some(count) = get("INTEGRATIONS_MCP_MAX_SESSIONS_PER_TENANT") {
            config.mcp_max_sessions_per_tenant = positive(
                count,
                "INTEGRATIONS_MCP_MAX_SESSIONS_PER_TENANT",
                "a number of sessions",
            )?;
        }
        config.tenant_limits = tenant_limits(&get)?;
        if let Some(attempts) = get("INTEGRATIONS_UPSTREAM_MAX_ATTEMPTS") {
            config.upstream_retry.max_attempts =
                positive(attempts, "INTEGRATIONS_UPSTREAM_MAX_ATTEMPTS", "a number of attempts")?
                    .try_into()
                    .map_err(|_| invalid("INTEGRATIONS_UPSTREAM_MAX_ATTEMPTS", "too many attempts"))?;
        }
        config.breakers = breaker_settings(&get)?;
        if let Some(secs) = get("INTEGRATIONS_IDEMPOTENCY_TTL_SECS") {
            config.idempotency_ttl = seconds(secs, "INTEGRATIONS_IDEMPOTENCY_TTL_SECS")?;
        }
        config.flags = match (
            get("FLAGSMITH_ENVIRONMENT_DOCUMENT"),
            get("FLAGSMITH_API_URL"),
            get("FLAGSMITH_SERVER_KEY"),
        ) {
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    "FLAGSMITH_ENVIRONMENT_DOCUMENT",
                    "set either a document file or FLAGSMITH_API_URL, not both",
                ))
            }
            (Some(path), None, _) => FlagsSource::File(PathBuf::from(path)),
            (None, Some(api_url), Some(key)) => {
                let secs = match get("FLAGSMITH_POLL_INTERVAL_SECS") {
                    Some(s) => s
                        .parse()
                        .map_err(|_| invalid("FLAGSMITH_POLL_INTERVAL_SECS", "expected seconds"))?,
                    None => 60u64,
                };
                FlagsSource::Server {
                    api_url: api_url.to_owned(),
                    server_key: Secret::new(key),
                    poll_interval: Duration::from_secs(secs.max(1)),
                }
            }
            (None, Some(_), None) => return Err(invalid("FLAGSMITH_SERVER_KEY", "required with FLAGSMITH_API_URL")),
            (None, None, _) => FlagsSource::None,
        };
        Ok(config)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("integrations.db").display()),
        }
    }

    /// Whether the database is the embedded SQLite default.
    pub fn is_embedded(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    /// The limits the server enforces on connections and requests.
    pub fn server_limits(&self) -> crate::server::ServerLimits {
        crate::server::ServerLimits {
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
            write_stall_timeout: self.write_stall_timeout,
        }
    }

    /// The base URL webhooks are addressed to.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_password(&self.database_url()))
            .field("master_key", &self.master_key)
            .field("previous_master_keys", &self.previous_master_keys)
            .field("admin_token", &self.admin_token)
            .field("trust_tenant_header", &self.trust_tenant_header)
            .field("outbound_allow_cidrs", &self.outbound_allow_cidrs)
            .field("outbound_timeout", &self.outbound_timeout)
            .field("public_url", &self.public_url)
            .field("tool_response_budget_bytes", &self.tool_response_budget_bytes)
            .field("tool_max_pages", &self.tool_max_pages)
            .field("tool_response_budget_max_bytes", &self.tool_response_budget_max_bytes)
            .field("tool_deadline", &self.tool_deadline)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("write_stall_timeout", &self.write_stall_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("mcp_allowed_hosts", &self.mcp_allowed_hosts)
            .field("event_retention", &self.event_retention)
            .field("webhook_retry_schedule", &self.webhook_retry_schedule)
            .field("dispatch_memory_bytes", &self.dispatch_memory_bytes)
            .field("flags", &self.flags)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:[redacted]@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:[redacted]{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
