//! The real binary against a hostile vendor: memory stays flat however much the vendor sends.

#![cfg(all(target_os = "linux", feature = "jira"))]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN_TOKEN: &str = "memory-test-admin-token";
/// Peak resident memory the server may reach; it idles at a few tens of MB.
const PEAK_RSS_BOUND_KB: u64 = 150 * 1024;
/// Size of each page the hostile Jira sends: just under the default response budget.
const PAGE_BYTES: usize = 4_000_000;

/// The server process, killed when the test ends however it ends.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ServerProcess {
    /// `VmHWM`, the process's peak resident set size, in kB.
    fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).expect("process status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let response = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_jira_cannot_grow_the_server_past_its_response_budget() {
    let dir = tempfile::tempdir().unwrap();
    let bind = format!("127.0.0.1:{}", free_port());
    let server = ServerProcess(
        Command::new(env!("CARGO_BIN_EXE_integrations"))
            .env_clear()
            .env("INTEGRATIONS_DATA_DIR", dir.path())
            .env("INTEGRATIONS_BIND", &bind)
            .env("INTEGRATIONS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("INTEGRATIONS_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32")
            .env("RUST_LOG", "warn")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary runs"),
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{bind}");
    wait_until_healthy(&client, &base).await;

    // Every page: one huge issue, and always more to come.
    let jira = MockServer::start().await;
    let page = json!({
        "issues": [{"key": "ABC-1", "fields": {"description": "x".repeat(PAGE_BYTES)}}],
        "nextPageToken": "more",
        "isLast": false
    });
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&jira)
        .await;
    // Install's credential check, for bot@example.com with token "t".
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .and(header("authorization", "Basic Ym90QGV4YW1wbGUuY29tOnQ="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accountId": "1"})))
        .expect(1)
        .mount(&jira)
        .await;
    let (status, tenant) = post(
        &client,
        format!("{base}/v1/admin/tenants"),
        ADMIN_TOKEN,
        json!({"id": "acme"}),
    )
    .await;
    assert_eq!(status, 201, "{tenant}");
    let key = tenant["api_key"].as_str().unwrap().to_owned();
    let config = json!({"host": jira.uri(), "email": "bot@example.com", "api_token": "t"});
    let (status, installed) = post(&client, format!("{base}/v1/plugins/jira/install"), &key, config).await;
    assert_eq!(status, 201, "{installed}");

    let search = json!({"jql": "order by created", "max_results": 1000});
    let url = format!("{base}/v1/tools/jira_search_issues");
    let call = tokio::spawn(async move { post(&client, url, &key, search).await });
    // Watch memory while the call runs, and stop at once if it passes the bound rather than let
    // an unbounded server take the machine down.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !call.is_finished() {
        let peak = server.peak_rss_kb();
        assert!(peak < PEAK_RSS_BOUND_KB, "server peak RSS {peak} kB during the call");
        assert!(Instant::now() < deadline, "the tool call did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, problem) = call.await.unwrap();
    assert_eq!(status, 502, "{problem}");
    assert_eq!(
        problem["type"],
        "https://integrations.dev/problems/upstream-response-too-large"
    );
    let peak = server.peak_rss_kb();
    assert!(peak < PEAK_RSS_BOUND_KB, "server peak RSS {peak} kB");
    let pages = jira
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/rest/api/3/search/jql")
        .count();
    assert!(pages <= 2, "{pages} pages fetched");
}
