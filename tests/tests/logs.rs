//! Captured logs, at every level, carry no secret. A test binary of its own: tracing caches
//! per-callsite interest process-wide, so tests logging on other threads could race the capture.

#[path = "e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use harness::{jira_basic, jira_server, jira_signature, TestApp};

const TOKEN: &str = "plaintext-api-token-4f1c";
const HOOK: &str = "plaintext-hook-secret-9b2e";

#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_at_every_level_contain_no_secret() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::start().await;
    let jira = jira_server().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .and(header("authorization", jira_basic(TOKEN).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "key": "ABC-1"})))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"errorMessages": ["Unauthorized"], "errors": {}})),
        )
        .mount(&jira)
        .await;
    let key = app.tenant("acme", json!({})).await;
    app.install_jira(&key, &jira.uri(), TOKEN, Some(HOOK)).await;
    app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
        .await;
    app.post(
        "/v1/tools/jira_create_issue",
        &key,
        json!({"project": "ABC", "summary": "s"}),
    )
    .await;
    app.post(
        "/v1/plugins/jira/install",
        &key,
        json!({"host": "x", "api_token": 42, "email": TOKEN}),
    )
    .await;
    let body = br#"{"webhookEvent":"jira:issue_created"}"#;
    let webhook = http::Request::post("/v1/webhooks/jira/acme")
        .header("x-hub-signature", jira_signature("wrong", body))
        .body(axum::body::Body::from(body.to_vec()))
        .unwrap();
    app.send(webhook).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The capture works: the flow was logged.
    assert!(
        text.contains("plugin installed") && text.contains("tool call failed") && text.contains("webhook refused"),
        "{text}"
    );
    let basic = jira_basic(TOKEN);
    for secret in [
        TOKEN,
        HOOK,
        basic.as_str(),
        app.master_key.as_str(),
        harness::ADMIN_TOKEN,
    ] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
    assert!(!text.contains(&key), "an API key reached the logs");
}
