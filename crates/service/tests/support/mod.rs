//! What the service's tests share: a real SQLite store in a temporary directory, a connector
//! defined here (`crm`), and a vendor that answers in-process, records what it is asked and never
//! touches the network.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::{
    HttpClient, HttpError, HttpRequest, HttpResponse, Lifecycle, Plugin, PluginConfig, PluginContext, PluginError,
    PluginManifest, PluginRegistry, ToolError, ToolSpec, WebhookError, WebhookOutcome, WebhookRequest,
};
use integrations_flags::Flags;
use integrations_secrets::{Keyring, MasterKey};
use integrations_service::{
    CreatedKey, DeploymentLimits, PluginName, Service, ServiceParts, TenantId, ToolLimits, ToolName,
};
use integrations_store::Store;
use serde_json::{json, Map, Value};
use tokio::sync::{Notify, Semaphore};

/// What the test connector saw.
#[derive(Default)]
pub struct Seen {
    /// Lifecycle hooks run, in order.
    pub hooks: Mutex<Vec<Lifecycle>>,
    /// Tool calls that reached the connector.
    pub calls: AtomicUsize,
    /// The tenant of each of those calls.
    pub tenants: Mutex<Vec<String>>,
}

/// A connector whose config has a plain `site` and a secret `token`; its hook refuses the site
/// `refused.example`. `crm_get_thing` asks the vendor for `GET {site}/thing`, `crm_find_things`
/// (a required `query`, an optional `limit` of 1 to 10) for `GET {site}/things?q={query}`, both
/// with the token as a bearer.
pub struct Crm(pub Arc<Seen>);

#[async_trait]
impl Plugin for Crm {
    fn manifest(&self) -> PluginManifest {
        PluginManifest {
            name: "crm",
            version: "0.1.0",
            description: "A connector for the service's own tests.",
        }
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "site": {"type": "string"},
                "token": {"type": "string", "writeOnly": true}
            },
            "required": ["site", "token"],
            "additionalProperties": false
        })
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "crm_get_thing".into(),
                description: "Reads the thing.".into(),
                input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
            ToolSpec {
                name: "crm_find_things".into(),
                description: "Searches the things.".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 1},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 10}
                    },
                    "required": ["query"],
                    "additionalProperties": false
                }),
            },
        ]
    }

    async fn on_lifecycle(&self, ctx: &PluginContext, step: Lifecycle) -> Result<(), PluginError> {
        self.0.hooks.lock().unwrap().push(step);
        if ctx.config.str("site") == Some("https://refused.example") {
            return Err(PluginError::InvalidConfig {
                field: "site".into(),
                message: "no such site".into(),
            });
        }
        Ok(())
    }

    async fn call_tool(&self, ctx: &PluginContext, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0.tenants.lock().unwrap().push(ctx.tenant_id.to_string());
        let site = ctx.config.str("site").unwrap_or_default();
        let token = ctx
            .config
            .secret("token")
            .map(|token| token.expose())
            .unwrap_or_default();
        let url = match tool {
            "crm_find_things" => format!("{site}/things?q={}", arguments["query"].as_str().unwrap_or_default()),
            _ => format!("{site}/thing"),
        };
        let request = http::Request::get(url)
            .header("authorization", format!("Bearer {token}"))
            .body(Vec::new())
            .map_err(|error| ToolError::InvalidArguments(error.to_string()))?;
        let response = ctx.http.send(request).await?;
        Ok(json!({"status": response.status().as_u16()}))
    }

    fn verify_webhook(
        &self,
        _config: &PluginConfig,
        _request: &WebhookRequest,
    ) -> Result<WebhookOutcome, WebhookError> {
        Err(WebhookError::InvalidSignature)
    }
}

/// A vendor that answers every request with `status` after `delay`, recording each request's URI
/// and `Authorization`. Requests to the held site wait until [`Vendor::release`]. As the shared
/// client it refuses loopback destinations, as the real policy does.
pub struct Vendor {
    pub status: u16,
    pub delay: Duration,
    pub requests: AtomicUsize,
    /// `(uri, authorization)` of each request, in order.
    pub seen: Mutex<Vec<(String, String)>>,
    held: Mutex<Option<String>>,
    /// Told each time a held request arrives.
    pub entered: Notify,
    release: Semaphore,
}

impl Vendor {
    fn new(status: u16, delay: Duration) -> Self {
        Self {
            status,
            delay,
            requests: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            held: Mutex::new(None),
            entered: Notify::new(),
            release: Semaphore::new(0),
        }
    }

    /// Holds every request to `site` (a URI prefix) until [`Vendor::release`].
    pub fn hold(&self, site: &str) {
        *self.held.lock().unwrap() = Some(site.to_owned());
    }

    /// Lets every held request, now and later, be answered.
    pub fn release(&self) {
        self.release.close();
    }

    /// The `(uri, authorization)` of each request so far.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl HttpClient for Vendor {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let uri = request.uri().to_string();
        let authorization = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.seen.lock().unwrap().push((uri.clone(), authorization));
        let held = self.held.lock().unwrap().clone();
        if held.is_some_and(|site| uri.starts_with(&site)) {
            self.entered.notify_one();
            // Closed by `release`: nothing is ever acquired, the wait just ends.
            let _ = self.release.acquire().await;
        }
        tokio::time::sleep(self.delay).await;
        http::Response::builder()
            .status(self.status)
            .body(b"{}".to_vec())
            .map_err(|error| HttpError::Transport(error.to_string()))
    }

    async fn check_destination(&self, url: &str) -> Result<(), HttpError> {
        let host = host(url);
        if host.starts_with("127.") || host == "localhost" || host == "[::1]" {
            return Err(HttpError::Refused("loopback is not allowed".into()));
        }
        Ok(())
    }
}

/// The host of `scheme://host[:port]/…`, as written.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    }
}

/// A tenant's client, as the host's factory builds it: the shared vendor, but also admitting the
/// single addresses (`a.b.c.d/32`) on the tenant's allowlist.
struct Allowlisted {
    vendor: Arc<Vendor>,
    cidrs: Vec<String>,
}

#[async_trait]
impl HttpClient for Allowlisted {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.vendor.send(request).await
    }

    async fn check_destination(&self, url: &str) -> Result<(), HttpError> {
        let host = host(url);
        if self.cidrs.iter().any(|cidr| cidr == &format!("{host}/32")) {
            return Ok(());
        }
        self.vendor.check_destination(url).await
    }
}

/// How a test's service is assembled.
pub struct Setup {
    pub vendor_status: u16,
    pub vendor_delay: Duration,
    pub tool_limits: ToolLimits,
    pub limits: DeploymentLimits,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            vendor_status: 200,
            vendor_delay: Duration::ZERO,
            tool_limits: ToolLimits::default(),
            limits: DeploymentLimits::default(),
        }
    }
}

/// Bind `_dir` where a test destructures this: the database lives in it.
pub struct Harness {
    pub service: Service,
    pub seen: Arc<Seen>,
    pub vendor: Arc<Vendor>,
    /// The first API key of `acme`, created with the service.
    pub acme_key: CreatedKey,
    pub _dir: tempfile::TempDir,
}

/// A service whose vendor answers `vendor_status`, with the tenant `acme`.
pub async fn harness(vendor_status: u16) -> Harness {
    Setup {
        vendor_status,
        ..Setup::default()
    }
    .start()
    .await
}

impl Setup {
    /// The service on a fresh database in its own temporary directory, with the tenant `acme`.
    pub async fn start(self) -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("service.db").display());
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrations");
        let (master, _) = MasterKey::generate().expect("master key");
        let seen = Arc::new(Seen::default());
        let registry = PluginRegistry::from_plugins(vec![Arc::new(Crm(seen.clone()))]).expect("registry");
        let vendor = Arc::new(Vendor::new(self.vendor_status, self.vendor_delay));
        let http: Arc<dyn HttpClient> = vendor.clone();
        let for_tenants = vendor.clone();
        let service = Service::new(ServiceParts {
            store,
            keyring: Keyring::new(master, Vec::new()),
            keyring_reload: None,
            registry: Arc::new(registry),
            flags: Flags::allow_all(),
            http,
            tenant_http: Box::new(move |cidrs| {
                Ok(Arc::new(Allowlisted {
                    vendor: for_tenants.clone(),
                    cidrs: cidrs.to_vec(),
                }))
            }),
            public_url: "https://integrations.example".into(),
            tool_limits: self.tool_limits,
            job_settings: Default::default(),
            limits: self.limits,
            upstream_retry: Default::default(),
            breakers: Default::default(),
            idempotency_ttl: Duration::from_secs(60),
        })
        .expect("service");
        let acme_key = create_tenant(&service, &acme()).await;
        Harness {
            service,
            seen,
            vendor,
            acme_key,
            _dir: dir,
        }
    }
}

/// Creates a tenant with no traits, allowlist or limits of its own.
pub async fn create_tenant(service: &Service, id: &TenantId) -> CreatedKey {
    service
        .create_tenant(id, Map::new(), &[], Default::default())
        .await
        .expect("tenant")
}

pub fn acme() -> TenantId {
    TenantId::parse("acme").expect("a tenant id")
}

pub fn globex() -> TenantId {
    TenantId::parse("globex").expect("a tenant id")
}

pub fn crm() -> PluginName {
    PluginName::parse("crm").expect("a plugin name")
}

pub fn get_thing() -> ToolName {
    ToolName::parse("crm_get_thing").expect("a tool name")
}

pub fn find_things() -> ToolName {
    ToolName::parse("crm_find_things").expect("a tool name")
}

/// A complete config of `crm`.
pub fn config(site: &str) -> Value {
    json!({"site": site, "token": "t0ken"})
}

/// The types of `tenant`'s events, oldest first.
pub async fn event_types(service: &Service, tenant: &TenantId) -> Vec<String> {
    let page = service
        .read_events(tenant, None, 100, Duration::ZERO)
        .await
        .expect("events");
    page.events.into_iter().map(|event| event.event_type).collect()
}
