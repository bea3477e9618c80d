//! The service's logic without HTTP: a plugin's lifecycle (each step's hook, its event, what is
//! kept and refused) and the tool-call path up to the circuit breakers, on a real SQLite store
//! with a connector defined here and a vendor client that counts what it is asked.

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
use integrations_service::{PluginName, PluginState, Service, ServiceError, ServiceParts, TenantId, ToolName};
use integrations_store::Store;
use serde_json::{json, Map, Value};

/// What the test connector saw.
#[derive(Default)]
struct Seen {
    hooks: Mutex<Vec<Lifecycle>>,
    calls: AtomicUsize,
}

/// A connector whose config has a plain `site` and a secret `token`; its hook refuses the site
/// `refused.example`, and its one tool asks the vendor for `GET {site}/thing`.
struct Crm(Arc<Seen>);

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
        vec![ToolSpec {
            name: "crm_get_thing".into(),
            description: "Reads the thing.".into(),
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        }]
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

    async fn call_tool(&self, ctx: &PluginContext, _tool: &str, _arguments: Value) -> Result<Value, ToolError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let site = ctx.config.str("site").unwrap_or_default();
        let request = http::Request::get(format!("{site}/thing"))
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

/// A vendor that answers every request with `status`, counting them.
struct Vendor {
    status: u16,
    requests: AtomicUsize,
}

#[async_trait]
impl HttpClient for Vendor {
    async fn send(&self, _request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        http::Response::builder()
            .status(self.status)
            .body(b"{}".to_vec())
            .map_err(|error| HttpError::Transport(error.to_string()))
    }

    async fn check_destination(&self, _url: &str) -> Result<(), HttpError> {
        Ok(())
    }
}

/// Bind `_dir` where a test destructures this: the database lives in it.
struct Harness {
    service: Service,
    seen: Arc<Seen>,
    vendor: Arc<Vendor>,
    _dir: tempfile::TempDir,
}

async fn harness(vendor_status: u16) -> Harness {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("service.db").display());
    let store = Store::connect(&url).await.expect("store");
    store.migrate().await.expect("migrations");
    let (master, _) = MasterKey::generate().expect("master key");
    let seen = Arc::new(Seen::default());
    let registry = PluginRegistry::from_plugins(vec![Arc::new(Crm(seen.clone()))]).expect("registry");
    let vendor = Arc::new(Vendor {
        status: vendor_status,
        requests: AtomicUsize::new(0),
    });
    let http: Arc<dyn HttpClient> = vendor.clone();
    let service = Service::new(ServiceParts {
        store,
        keyring: Keyring::new(master, Vec::new()),
        keyring_reload: None,
        registry: Arc::new(registry),
        flags: Flags::allow_all(),
        http,
        tenant_http: Box::new(|_| Err("no tenant allowlists in these tests".into())),
        public_url: "https://integrations.example".into(),
        tool_limits: Default::default(),
        job_settings: Default::default(),
        limits: Default::default(),
        upstream_retry: Default::default(),
        breakers: Default::default(),
        idempotency_ttl: Duration::from_secs(60),
    })
    .expect("service");
    service
        .create_tenant(&acme(), Map::new(), &[], Default::default())
        .await
        .expect("tenant");
    Harness {
        service,
        seen,
        vendor,
        _dir: dir,
    }
}

fn acme() -> TenantId {
    TenantId::parse("acme").expect("a tenant id")
}

fn crm() -> PluginName {
    PluginName::parse("crm").expect("a plugin name")
}

fn get_thing() -> ToolName {
    ToolName::parse("crm_get_thing").expect("a tool name")
}

fn config(site: &str) -> Value {
    json!({"site": site, "token": "t0ken"})
}

async fn event_types(service: &Service) -> Vec<String> {
    let page = service
        .read_events(&acme(), None, 100, Duration::ZERO)
        .await
        .expect("events");
    page.events.into_iter().map(|event| event.event_type).collect()
}

#[tokio::test]
async fn each_lifecycle_step_runs_its_hook_and_records_its_event() {
    let Harness {
        service, seen, _dir, ..
    } = harness(200).await;
    let installed = service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    assert_eq!(installed.summary.state, PluginState::Enabled);
    assert_eq!(installed.secrets_set, Some(vec!["token".to_owned()]));
    service
        .configure(&acme(), &crm(), json!({"site": "https://two.example"}))
        .await
        .expect("configure keeps the token it was not given");
    let disabled = service.set_enabled(&acme(), &crm(), false).await.expect("disable");
    assert_eq!(disabled.summary.state, PluginState::Disabled);
    service.set_enabled(&acme(), &crm(), true).await.expect("enable");
    service.uninstall(&acme(), &crm()).await.expect("uninstall");

    assert_eq!(
        *seen.hooks.lock().unwrap(),
        vec![
            Lifecycle::Install,
            Lifecycle::Configure,
            Lifecycle::Disable,
            Lifecycle::Enable,
            Lifecycle::Uninstall
        ]
    );
    assert_eq!(
        event_types(&service).await,
        [
            "plugin.installed",
            "plugin.configured",
            "plugin.disabled",
            "plugin.enabled",
            "plugin.uninstalled"
        ]
    );
    let gone = service.plugin_details(&acme(), &crm()).await.expect("details");
    assert_eq!(gone.summary.state, PluginState::NotInstalled);
}

#[tokio::test]
async fn a_refused_step_changes_nothing_and_records_nothing() {
    let Harness { service, _dir, .. } = harness(200).await;
    let refused = service
        .install(&acme(), &crm(), config("https://refused.example"))
        .await
        .expect_err("the hook refuses the site");
    assert!(matches!(refused, ServiceError::InvalidConfig(_)), "{refused:?}");
    let invalid = service
        .install(&acme(), &crm(), json!({"site": "https://one.example"}))
        .await
        .expect_err("the schema wants a token");
    assert!(matches!(invalid, ServiceError::InvalidConfig(_)), "{invalid:?}");
    assert_eq!(
        service
            .plugin_details(&acme(), &crm())
            .await
            .expect("details")
            .summary
            .state,
        PluginState::NotInstalled
    );
    assert!(event_types(&service).await.is_empty());

    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    let again = service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect_err("installed twice");
    assert!(matches!(again, ServiceError::AlreadyInstalled(_)), "{again:?}");
    let moved = service
        .configure(&acme(), &crm(), json!({"site": "https://refused.example"}))
        .await
        .expect_err("the hook refuses the new site");
    assert!(matches!(moved, ServiceError::InvalidConfig(_)), "{moved:?}");
    let details = service.plugin_details(&acme(), &crm()).await.expect("details");
    let kept = details.config.map(Value::Object);
    assert_eq!(kept, Some(json!({"site": "https://one.example"})));
    assert_eq!(event_types(&service).await, ["plugin.installed"]);
    let missing = service
        .uninstall(&acme(), &PluginName::parse("nothing").expect("a name"))
        .await
        .expect_err("no such plugin");
    assert!(matches!(missing, ServiceError::PluginNotFound(_)), "{missing:?}");
}

#[tokio::test]
async fn open_breakers_answer_a_call_before_the_connector_runs() {
    let Harness {
        service,
        seen,
        vendor,
        _dir,
    } = harness(500).await;
    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    // Ten failed requests (a GET's 500 is not retried) open the breaker for the vendor's host.
    for _ in 0..10 {
        let failed = service
            .call_tool(&acme(), &get_thing(), json!({}))
            .await
            .expect("the vendor's 500 is the tool's answer");
        assert_eq!(failed, json!({"status": 500}));
    }
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 10);
    let refused = service
        .call_tool(&acme(), &get_thing(), json!({}))
        .await
        .expect_err("the breaker is open");
    assert!(
        matches!(refused, ServiceError::UpstreamCircuitOpen { retry_after } if retry_after > Duration::ZERO),
        "{refused:?}"
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 10, "the connector was not run");
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 10);
    assert_eq!(service.upstream_view(&acme(), &crm()).state, "open");

    // A new config may send calls elsewhere: the connector runs, and the host's breaker decides.
    service
        .configure(&acme(), &crm(), json!({"site": "https://two.example"}))
        .await
        .expect("configure");
    let elsewhere = service.call_tool(&acme(), &get_thing(), json!({})).await;
    assert_eq!(elsewhere.expect("another host"), json!({"status": 500}));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 11);
}
