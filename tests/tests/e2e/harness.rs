//! Builds the real host per test: its own data dir, and its own SQLite file or PostgreSQL database
//! (when `TEST_DATABASE_URL` names a PostgreSQL server), so tests share no data.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Request, StatusCode};
use integrations::{build_app, Config};
use integrations_secrets::MasterKey;
use integrations_service::Service;
use integrations_store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A test database: a SQLite file in the data dir, or a fresh PostgreSQL database dropped at the end.
pub struct TestDb {
    pub url: Option<String>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            return Self {
                url: None,
                postgres: None,
            };
        };
        let name = format!(
            "itest_{}",
            hex::encode(integrations_secrets::random_bytes::<8>().unwrap())
        );
        let admin = Store::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await
            .expect("create test database");
        admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').expect("database URL with a path");
        Self {
            url: Some(format!("{base}/{name}")),
            postgres: Some((admin_url, name)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop runs outside async; a private runtime on its own thread does the cleanup.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let admin = Store::connect(&admin_url).await.ok()?;
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(admin.pool())
                        .await;
                    admin.close().await;
                    Some(())
                })
            })
            .join();
        }
    }
}

/// The assembled host with its own storage.
pub struct TestApp {
    pub router: Router,
    pub service: Arc<Service>,
    pub mcp_sessions: integrations::McpSessions,
    pub config: Config,
    pub master_key: String,
    _db: Arc<TestDb>,
    _dir: Arc<tempfile::TempDir>,
}

/// A response, body read.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem response of the given status and type slug.
    pub fn assert_problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(
            body["type"],
            json!(format!("https://integrations.dev/problems/{slug}")),
            "body: {body}"
        );
        assert_eq!(body["status"], json!(status));
        body
    }
}

/// The host served over TCP on 127.0.0.1, exactly as the binary serves it; stops when dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestApp {
    /// Reads the tenant's events after `after` until `count` have arrived (each read waits up to
    /// 5 s for more), returning them and the cursor to read on from.
    pub async fn read_events(&self, key: &str, after: Option<&str>, count: usize) -> (Vec<Value>, String) {
        let mut events = Vec::new();
        let mut cursor = after.map(str::to_owned);
        for _ in 0..10 {
            let path = match &cursor {
                Some(cursor) => format!("/v1/events?wait=5&after={cursor}"),
                None => "/v1/events?wait=5".to_owned(),
            };
            let page = self.get(&path, key).await;
            assert_eq!(page.status, 200, "{}", page.text());
            let page = page.json();
            events.extend(page["events"].as_array().cloned().unwrap_or_default());
            if let Some(next) = page["next"].as_str() {
                cursor = Some(next.to_owned());
            }
            if events.len() >= count {
                break;
            }
        }
        (events, cursor.unwrap_or_default())
    }

    /// Serves this host on a free loopback port, limits included.
    pub async fn serve(&self) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(integrations::server::serve(
            listener,
            self.router.clone(),
            self.config.server_limits(),
            std::future::pending(),
        ));
        Served {
            base: format!("http://{address}"),
            task,
        }
    }

    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the default test config (mock servers on 127.0.0.1 allowlisted), adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDb::new().await;
        let mut config = Config::with_data_dir(dir.path());
        config.database_url = db.url.clone();
        let (_, master_key) = MasterKey::generate().unwrap();
        config.master_key = Some(integrations_core_secret(&master_key));
        config.admin_token = Some(integrations_core_secret(ADMIN_TOKEN));
        config.outbound_allow_cidrs = "127.0.0.1/32".into();
        config.public_url = Some("https://integrations.example".into());
        adjust(&mut config);
        Self::from_parts(config, master_key, Arc::new(db), Arc::new(dir)).await
    }

    async fn from_parts(config: Config, master_key: String, db: Arc<TestDb>, dir: Arc<tempfile::TempDir>) -> Self {
        let app = build_app(&config).await.expect("host builds");
        Self {
            router: app.router,
            service: app.service,
            mcp_sessions: app.mcp_sessions,
            config,
            master_key,
            _db: db,
            _dir: dir,
        }
    }

    /// Another host over the same storage and config, built with only `registry`'s plugins.
    pub async fn rebuilt_with(&self, registry: integrations_core::PluginRegistry) -> Self {
        let app = integrations::build_app_with(&self.config, registry)
            .await
            .expect("host builds");
        Self {
            router: app.router,
            service: app.service,
            mcp_sessions: app.mcp_sessions,
            config: self.config.clone(),
            master_key: self.master_key.clone(),
            _db: self._db.clone(),
            _dir: self._dir.clone(),
        }
    }

    /// Another host over the same storage with a changed config (e.g. after key rotation).
    pub async fn restart_with(&self, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.config.clone();
        adjust(&mut config);
        Self::from_parts(config, self.master_key.clone(), self._db.clone(), self._dir.clone()).await
    }

    pub fn store(&self) -> &Store {
        self.service.store()
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        TestResponse { status, headers, body }
    }

    /// A request with an optional bearer token and an optional raw body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body)),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call("POST", path, Some(token), Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call("PUT", path, Some(token), Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.call("DELETE", path, Some(token), None).await
    }

    /// Creates a tenant through the admin API and returns its API key.
    pub async fn tenant(&self, id: &str, traits: Value) -> String {
        let response = self
            .post("/v1/admin/tenants", ADMIN_TOKEN, json!({"id": id, "traits": traits}))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        response.json()["api_key"].as_str().expect("api_key").to_owned()
    }

    /// Installs Jira for a tenant against `host`; a mock Jira there needs [`mount_jira_myself`].
    pub async fn install_jira(&self, key: &str, host: &str, token: &str, webhook_secret: Option<&str>) -> TestResponse {
        let mut config = json!({"host": host, "email": JIRA_EMAIL, "api_token": token});
        if let Some(secret) = webhook_secret {
            config["webhook_secret"] = json!(secret);
        }
        self.post("/v1/plugins/jira/install", key, config).await
    }

    /// Installs Slack for a tenant against the Web API at `api_base_url`.
    pub async fn install_slack(
        &self,
        key: &str,
        api_base_url: &str,
        bot_token: &str,
        signing_secret: Option<&str>,
    ) -> TestResponse {
        let mut config = json!({"api_base_url": api_base_url, "bot_token": bot_token});
        if let Some(secret) = signing_secret {
            config["signing_secret"] = json!(secret);
        }
        self.post("/v1/plugins/slack/install", key, config).await
    }
}

fn integrations_core_secret(value: &str) -> integrations_core::Secret {
    integrations_core::Secret::new(value)
}

/// The account `install_jira` installs with.
pub const JIRA_EMAIL: &str = "bot@example.com";

/// Jira's credential check, `GET /rest/api/3/myself`, answering 200 to the harness's account
/// with any non-empty token (a test asserting the exact header mounts its own). Returned unmounted
/// so a test can add `.expect(n)`.
pub fn jira_myself() -> Mock {
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .and(BasicAuthOf(JIRA_EMAIL))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "accountId": "5b10a2844c20165700ede21g",
            "emailAddress": JIRA_EMAIL,
            "displayName": "Integrations Bot",
            "active": true
        })))
}

/// Mounts [`jira_myself`] on a mock Jira, so install and configure pass the credential check.
pub async fn mount_jira_myself(jira: &MockServer) {
    jira_myself().mount(jira).await;
}

/// A mock Jira that accepts the harness's credentials and nothing else yet.
pub async fn jira_server() -> MockServer {
    let jira = MockServer::start().await;
    mount_jira_myself(&jira).await;
    jira
}

/// Matches `Authorization: Basic base64(email:token)` for this email and any non-empty token.
struct BasicAuthOf(&'static str);

impl wiremock::Match for BasicAuthOf {
    fn matches(&self, request: &wiremock::Request) -> bool {
        use base64::Engine;
        let Some(encoded) = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        decoded
            .as_deref()
            .and_then(|credentials| credentials.strip_prefix(self.0))
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|token| !token.is_empty())
    }
}

/// `Authorization: Basic` for the test Jira credentials.
pub fn jira_basic(token: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{JIRA_EMAIL}:{token}"))
    )
}

/// `X-Hub-Signature` as Jira sends it.
pub use integrations_hub_signature::sign as jira_signature;

/// `X-Slack-Signature` (v0) over `v0:{timestamp}:{body}`, as Slack sends it.
pub fn slack_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut base = format!("v0:{timestamp}:").into_bytes();
    base.extend_from_slice(body);
    format!("v0={}", hex::encode(ring::hmac::sign(&key, &base).as_ref()))
}
