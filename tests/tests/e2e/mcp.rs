//! The MCP endpoint over a real socket, spoken as raw JSON-RPC the way any Streamable HTTP client
//! speaks it: authentication, the tool list against `GET /v1/tools`, tool calls against a
//! wiremock Slack, problem documents in error results, session binding and the Host allowlist.
//! The last test hands the same server to the official Python SDK, as an agent would use it.

use std::path::PathBuf;
use std::time::Duration;

use integrations::FlagsSource;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_server, Served, TestApp, ADMIN_TOKEN};

const SLACK_TOKEN: &str = "fake-bot-token";
const PROTOCOL_VERSION: &str = "2025-06-18";

/// One MCP client: a key, a session once initialized, and the Host it claims to talk to.
struct Client {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
    host: Option<String>,
    tenant_header: Option<String>,
    session: Option<String>,
    next_id: u64,
}

/// An answer: status, headers and the JSON-RPC messages of its body (JSON or event stream).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn messages(&self) -> Vec<Value> {
        let json_body = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if json_body {
            return vec![serde_json::from_str(&self.text).expect("JSON body")];
        }
        // Server-sent events: each event's `data:` lines joined; priming events carry none.
        self.text
            .split("\n\n")
            .filter_map(|event| {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|data| data.strip_prefix(' ').unwrap_or(data))
                    .collect();
                let data = data.join("\n");
                (!data.trim().is_empty()).then(|| serde_json::from_str(&data).expect("JSON event"))
            })
            .collect()
    }

    /// The problem document of a refusal the guard answered.
    fn problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.headers["content-type"], "application/problem+json");
        let problem: Value = serde_json::from_str(&self.text).expect("problem JSON");
        assert_eq!(problem["type"], format!("https://integrations.dev/problems/{slug}"));
        problem
    }
}

impl Client {
    fn new(served: &Served, key: &str) -> Self {
        Self {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            url: format!("{}/mcp", served.base),
            key: Some(key.to_owned()),
            host: None,
            tenant_header: None,
            session: None,
            next_id: 1,
        }
    }

    fn with_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }

    async fn send(&self, method: reqwest::Method, body: Option<&Value>) -> Answer {
        let mut request = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .timeout(Duration::from_secs(30));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(host) = &self.host {
            request = request.header("host", host);
        }
        if let Some(tenant) = &self.tenant_header {
            request = request.header("x-tenant-id", tenant);
        }
        if let Some(session) = &self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("MCP endpoint answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer { status, headers, text }
    }

    async fn post(&self, body: Value) -> Answer {
        self.send(reqwest::Method::POST, Some(&body)).await
    }

    /// Sends a request and returns the answer to it (HTTP 200 asserted).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let answer = self.try_request(method, params).await;
        assert_eq!(answer.status, 200, "{method}: {}", answer.text);
        let id = self.next_id - 1;
        answer
            .messages()
            .into_iter()
            .find(|message| message["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {method} in {}", answer.text))
    }

    async fn try_request(&mut self, method: &str, params: Value) -> Answer {
        let id = self.next_id;
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// `initialize` and `notifications/initialized`; returns the initialize result.
    async fn initialize(&mut self) -> Value {
        let answer = self.try_request("initialize", initialize_params()).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let session = answer.headers["mcp-session-id"].to_str().unwrap().to_owned();
        self.session = Some(session);
        let result = answer.messages().remove(0);
        let initialized = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(initialized.status, 202, "{}", initialized.text);
        result["result"].clone()
    }

    async fn list_tools(&mut self) -> Value {
        self.request("tools/list", json!({})).await["result"]["tools"].clone()
    }

    async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await["result"]
            .clone()
    }

    /// Calls a tool this tenant does not have: a protocol error, `Invalid params`; returns the
    /// problem document it carries.
    async fn unknown_tool(&mut self, name: &str, arguments: Value) -> Value {
        let answer = self
            .try_request("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let message = answer.messages().pop().unwrap();
        assert!(
            message.get("result").is_none(),
            "an unknown tool is no result: {message}"
        );
        assert_eq!(message["error"]["code"], -32602, "{message}");
        assert_eq!(
            message["error"]["message"],
            format!("unknown tool: {name}"),
            "{message}"
        );
        message["error"]["data"].clone()
    }
}

fn initialize_params() -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}
    })
}

/// `GET /v1/tools` as MCP lists tools: name, description, inputSchema.
async fn rest_catalog_as_mcp(app: &TestApp, key: &str) -> Value {
    let catalog = app.get("/v1/tools", key).await.json();
    catalog["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| {
            json!({
                "name": tool["name"],
                "description": tool["description"],
                "inputSchema": tool["input_schema"],
            })
        })
        .collect()
}

/// A Slack Web API that accepts the install-time `auth.test`.
async fn slack() -> MockServer {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .and(header("authorization", format!("Bearer {SLACK_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "team_id": "T1", "user_id": "U1", "bot_id": "B1"}),
        ))
        .mount(&slack)
        .await;
    slack
}

/// An app with tenant `acme` that has Slack installed against `slack`, served over TCP.
async fn acme_with_slack(slack: &MockServer) -> (TestApp, Served, String) {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_slack(&key, &slack.uri(), SLACK_TOKEN, None).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    let served = app.serve().await;
    (app, served, key)
}

#[tokio::test]
async fn initialize_and_tools_list_equal_the_rest_catalog() {
    let slack = slack().await;
    let (app, served, key) = acme_with_slack(&slack).await;
    let mut client = Client::new(&served, &key);
    let info = client.initialize().await;
    assert_eq!(info["protocolVersion"], PROTOCOL_VERSION);
    assert_eq!(info["serverInfo"]["name"], "integrations");
    assert!(info["capabilities"]["tools"].is_object(), "{info}");

    let tools = client.list_tools().await;
    let expected = rest_catalog_as_mcp(&app, &key).await;
    assert_eq!(tools, expected);
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"slack_send_message"), "{names:?}");
}

#[tokio::test]
async fn tools_call_runs_the_tool_against_the_vendor_and_returns_its_result() {
    let slack = slack().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .and(header("authorization", format!("Bearer {SLACK_TOKEN}").as_str()))
        .and(header("content-type", "application/json; charset=utf-8"))
        .and(body_json(json!({"channel": "C123", "text": "Printer on fire"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "channel": "C123", "ts": "1503435956.000247", "message": {"text": "Printer on fire"}}),
        ))
        .expect(2)
        .mount(&slack)
        .await;
    let (app, served, key) = acme_with_slack(&slack).await;
    let mut client = Client::new(&served, &key);
    client.initialize().await;

    let result = client
        .call_tool(
            "slack_send_message",
            json!({"channel": "C123", "text": "Printer on fire"}),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["ts"], "1503435956.000247");
    assert_eq!(result["structuredContent"], text);
    // The same call through the REST API answers the same result.
    let rest = app
        .post(
            "/v1/tools/slack_send_message",
            &key,
            json!({"channel": "C123", "text": "Printer on fire"}),
        )
        .await;
    assert_eq!(rest.json()["result"], text);
}

#[tokio::test]
async fn a_failing_tool_is_an_error_result_carrying_the_rest_problem_document() {
    let slack = slack().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "channel_not_found"})))
        .mount(&slack)
        .await;
    let (app, served, key) = acme_with_slack(&slack).await;
    let mut client = Client::new(&served, &key);
    client.initialize().await;

    let arguments = json!({"channel": "C404", "text": "hi"});
    let answer = client
        .try_request(
            "tools/call",
            json!({"name": "slack_send_message", "arguments": arguments}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let message = answer.messages().pop().unwrap();
    assert!(
        message.get("error").is_none(),
        "a tool failure is no protocol error: {message}"
    );
    let result = &message["result"];
    assert_eq!(result["isError"], true, "{result}");
    let problem: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(problem["type"], "https://integrations.dev/problems/upstream-error");
    assert_eq!(problem["upstream_errors"]["error"], "channel_not_found");
    let rest = app.post("/v1/tools/slack_send_message", &key, arguments).await;
    assert_eq!(problem, rest.assert_problem(502, "upstream-error"));

    // Arguments the schema refuses, and a tool the tenant does not have: the same, no vendor call.
    let before = slack.received_requests().await.unwrap().len();
    let invalid = client.call_tool("slack_send_message", json!({"channel": 5})).await;
    assert_eq!(invalid["isError"], true);
    let problem: Value = serde_json::from_str(invalid["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(problem["type"], "https://integrations.dev/problems/invalid-arguments");
    assert_eq!(problem["status"], 422);
    let missing = client.unknown_tool("jira_get_issue", json!({"issue_key": "A-1"})).await;
    assert_eq!(missing["type"], "https://integrations.dev/problems/tool-not-found");
    assert_eq!(slack.received_requests().await.unwrap().len(), before);
}

#[tokio::test]
async fn requests_without_a_valid_key_are_refused_before_any_mcp_processing() {
    let slack = slack().await;
    let (_app, served, _key) = acme_with_slack(&slack).await;
    let mut anonymous = Client::new(&served, "unused");
    anonymous.key = None;
    let answer = anonymous.try_request("initialize", initialize_params()).await;
    answer.problem(401, "unauthorized");
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    assert!(answer.headers.get("mcp-session-id").is_none());

    let mut wrong = Client::new(&served, "not-a-key");
    let answer = wrong.try_request("initialize", initialize_params()).await;
    answer.problem(401, "unauthorized");
    assert!(answer.headers.get("mcp-session-id").is_none());
    // Even a request the protocol layer would refuse is refused for its credentials first.
    anonymous
        .send(reqwest::Method::GET, None)
        .await
        .problem(401, "unauthorized");
}

#[tokio::test]
async fn behind_a_trusted_gateway_the_tenant_comes_from_its_header() {
    let app = TestApp::start_with(|c| c.trust_tenant_header = true).await;
    app.tenant("acme", json!({})).await;
    let served = app.serve().await;
    let mut gateway = Client::new(&served, "unused");
    gateway.key = None;
    gateway
        .try_request("initialize", initialize_params())
        .await
        .problem(401, "unauthorized");
    gateway.tenant_header = Some("acme".into());
    gateway.initialize().await;
    assert_eq!(gateway.list_tools().await, json!([]));
}

#[tokio::test]
async fn another_tenants_key_cannot_use_a_session() {
    let slack = slack().await;
    let (app, served, acme_key) = acme_with_slack(&slack).await;
    let globex_key = app.tenant("globex", json!({})).await;
    let mut acme = Client::new(&served, &acme_key);
    acme.initialize().await;
    let session = acme.session.clone().unwrap();

    let mut intruder = Client::new(&served, &globex_key);
    intruder.session = Some(session.clone());
    let problem = intruder
        .try_request("tools/list", json!({}))
        .await
        .problem(404, "mcp-session-not-found");
    // Exactly what a session that does not exist looks like.
    let mut guesser = Client::new(&served, &globex_key);
    guesser.session = Some("00000000-0000-0000-0000-000000000000".into());
    assert_eq!(
        guesser
            .try_request("tools/list", json!({}))
            .await
            .problem(404, "mcp-session-not-found"),
        problem
    );
    intruder
        .send(reqwest::Method::GET, None)
        .await
        .problem(404, "mcp-session-not-found");
    intruder
        .send(reqwest::Method::DELETE, None)
        .await
        .problem(404, "mcp-session-not-found");

    // The owner's session is untouched, and the owner may close it; then it is gone.
    assert_eq!(acme.list_tools().await, rest_catalog_as_mcp(&app, &acme_key).await);
    let closed = acme.send(reqwest::Method::DELETE, None).await;
    assert!(closed.status < 300, "{} {}", closed.status, closed.text);
    acme.try_request("tools/list", json!({}))
        .await
        .problem(404, "mcp-session-not-found");
}

#[tokio::test]
async fn each_tenant_lists_only_its_own_tools() {
    let slack = slack().await;
    let (app, served, acme_key) = acme_with_slack(&slack).await;
    let globex_key = app.tenant("globex", json!({})).await;
    let jira = jira_server().await;
    assert_eq!(app.install_jira(&globex_key, &jira.uri(), "t", None).await.status, 201);
    let mut acme = Client::new(&served, &acme_key);
    acme.initialize().await;
    let mut globex = Client::new(&served, &globex_key);
    globex.initialize().await;

    let acme_tools = acme.list_tools().await;
    let globex_tools = globex.list_tools().await;
    assert_eq!(globex_tools, rest_catalog_as_mcp(&app, &globex_key).await);
    let prefixes = |tools: &Value, prefix: &str| {
        let tools = tools.as_array().unwrap();
        !tools.is_empty() && tools.iter().all(|t| t["name"].as_str().unwrap().starts_with(prefix))
    };
    assert!(prefixes(&acme_tools, "slack_"), "{acme_tools}");
    assert!(prefixes(&globex_tools, "jira_"), "{globex_tools}");
    // Nor can one call the other's tools.
    let refused = globex
        .unknown_tool("slack_send_message", json!({"channel": "C1", "text": "x"}))
        .await;
    assert_eq!(refused["status"], 404);
}

#[tokio::test]
async fn the_tool_list_follows_lifecycle_changes_without_reconnecting() {
    let slack = slack().await;
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let served = app.serve().await;
    let mut client = Client::new(&served, &key);
    client.initialize().await;
    assert_eq!(client.list_tools().await, json!([]));

    let installed = app.install_slack(&key, &slack.uri(), SLACK_TOKEN, None).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    let tools = client.list_tools().await;
    assert_eq!(tools, rest_catalog_as_mcp(&app, &key).await);
    assert!(!tools.as_array().unwrap().is_empty());

    assert_eq!(app.post("/v1/plugins/slack/disable", &key, json!({})).await.status, 200);
    assert_eq!(client.list_tools().await, json!([]));
    let disabled = client
        .unknown_tool("slack_send_message", json!({"channel": "C1", "text": "x"}))
        .await;
    assert_eq!(disabled["type"], "https://integrations.dev/problems/tool-not-found");

    assert_eq!(app.post("/v1/plugins/slack/enable", &key, json!({})).await.status, 200);
    assert_eq!(client.list_tools().await, tools);
}

#[tokio::test]
async fn the_tool_list_follows_flag_changes_without_reconnecting() {
    let document = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/flags/testdata/environment.json");
    let app = TestApp::start_with(|c| c.flags = FlagsSource::File(document)).await;
    let key = app.tenant("pro-co", json!({"plan": "pro"})).await;
    let jira = jira_server().await;
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", None).await.status, 201);
    let served = app.serve().await;
    let mut client = Client::new(&served, &key);
    client.initialize().await;
    assert_eq!(client.list_tools().await.as_array().unwrap().len(), 3);

    let downgrade = Some(json!({"traits": {"plan": "free"}}).to_string().into_bytes());
    let downgraded = app
        .call("PATCH", "/v1/admin/tenants/pro-co", Some(ADMIN_TOKEN), downgrade)
        .await;
    assert_eq!(downgraded.status, 200, "{}", downgraded.text());
    assert_eq!(client.list_tools().await, json!([]));
}

#[tokio::test]
async fn only_allowed_host_headers_are_served() {
    let slack = slack().await;
    let (app, served, key) = acme_with_slack(&slack).await;
    let port = served.base.rsplit(':').next().unwrap().to_owned();
    // Loopback names by default; the TCP connection goes to 127.0.0.1 whatever Host says.
    let mut local = Client::new(&served, &key).with_host(&format!("localhost:{port}"));
    local.initialize().await;
    let mut rebound = Client::new(&served, &key).with_host("attacker.example");
    let refused = rebound.try_request("initialize", initialize_params()).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.headers.get("mcp-session-id").is_none());

    // Configured names replace the default.
    let public = app
        .restart_with(|c| c.mcp_allowed_hosts = vec!["mcp.example.com".into()])
        .await;
    let served = public.serve().await;
    let mut named = Client::new(&served, &key).with_host("mcp.example.com");
    named.initialize().await;
    assert!(!named.list_tools().await.as_array().unwrap().is_empty());
    let mut loopback = Client::new(&served, &key).with_host(&format!("127.0.0.1:{port}"));
    assert_eq!(
        loopback.try_request("initialize", initialize_params()).await.status,
        403
    );
    // The REST API is not subject to the MCP endpoint's Host list.
    assert_eq!(public.get("/v1/tools", &key).await.status, 200);
}

#[tokio::test]
async fn shutdown_ends_the_sessions_open_streams_instead_of_waiting_for_them() {
    let app = TestApp::start_with(|c| c.request_timeout = Duration::from_secs(30)).await;
    let key = app.tenant("acme", json!({})).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sessions = app.mcp_sessions.clone();
    // As the binary's `serve` command does on Ctrl-C.
    let shutdown = async move {
        let _ = stopped.await;
        sessions.close();
    };
    let server = tokio::spawn(integrations::server::serve(
        listener,
        app.router.clone(),
        app.config.server_limits(),
        shutdown,
    ));
    let mut client = Client {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        url: format!("{base}/mcp"),
        key: Some(key),
        host: None,
        tenant_header: None,
        session: None,
        next_id: 1,
    };
    client.initialize().await;
    // The event stream an agent keeps open for server messages; its body never ends by itself.
    let stream = client
        .http
        .get(&client.url)
        .bearer_auth(client.key.as_deref().unwrap())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", client.session.as_deref().unwrap())
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    stop.send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(finished.is_ok(), "the server waited for the open MCP stream");
    drop(stream);
}

/// The official Python SDK (`mcp` from PyPI, pinned in tests/mcp/requirements.txt) drives the
/// endpoint as an agent would: `tests/mcp/agent.py` gets the URL and two tenants' keys. The
/// interpreter is `MCP_PYTHON` (.ci/run makes a venv); without it the test is skipped, except
/// under CI, where it fails.
#[tokio::test]
async fn the_official_python_sdk_lists_and_calls_tools() {
    let Some(python) = std::env::var_os("MCP_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "MCP_PYTHON is unset: CI must run the Python MCP agent test (see .ci/run)"
        );
        eprintln!("skipped: set MCP_PYTHON to a Python with tests/mcp/requirements.txt installed");
        return;
    };
    let slack = slack().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .and(header("authorization", format!("Bearer {SLACK_TOKEN}").as_str()))
        .and(body_json(json!({"channel": "C123", "text": "Deploy finished"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "channel": "C123", "ts": "1503435956.000247", "message": {"text": "Deploy finished"}}),
        ))
        .expect(1)
        .mount(&slack)
        .await;
    let (app, served, acme_key) = acme_with_slack(&slack).await;
    let globex_key = app.tenant("globex", json!({})).await;
    let jira = jira_server().await;
    assert_eq!(app.install_jira(&globex_key, &jira.uri(), "t", None).await.status, 201);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mcp/agent.py");
    let agent = std::process::Command::new(python)
        .arg(&script)
        .env("MCP_URL", format!("{}/mcp", served.base))
        .env("MCP_KEY", &acme_key)
        .env("MCP_OTHER_KEY", &globex_key)
        .env(
            "MCP_EXPECTED_TOOLS",
            rest_catalog_as_mcp(&app, &acme_key).await.to_string(),
        )
        .env(
            "MCP_OTHER_EXPECTED_TOOLS",
            rest_catalog_as_mcp(&app, &globex_key).await.to_string(),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the agent starts");
    // Waited for off the runtime, which goes on serving the agent; the script bounds its own time.
    let output = tokio::task::spawn_blocking(move || agent.wait_with_output())
        .await
        .unwrap()
        .expect("the agent's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "agent failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("agent: ok"), "stdout:\n{stdout}\nstderr:\n{stderr}");
}
