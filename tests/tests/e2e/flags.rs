//! Flagsmith decides which plugins a tenant may use: from a document file, and from a server.

use std::path::PathBuf;
use std::time::Duration;

use integrations::FlagsSource;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::TestApp;

fn document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/flags/testdata/environment.json")
}

#[tokio::test]
async fn document_segment_on_a_trait_gates_tools() {
    let app = TestApp::start_with(|c| c.flags = FlagsSource::File(document_path())).await;
    let pro = app.tenant("pro-co", json!({"plan": "pro"})).await;
    let free = app.tenant("free-co", json!({"plan": "free"})).await;
    for key in [&pro, &free] {
        assert_eq!(app.install_jira(key, "http://127.0.0.1:9", "t", None).await.status, 201);
    }
    assert_eq!(
        app.get("/v1/tools", &pro).await.json()["tools"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(app.get("/v1/tools", &free).await.json()["tools"], json!([]));
    assert_eq!(app.get("/v1/plugins/jira", &pro).await.json()["allowed"], true);
    assert_eq!(app.get("/v1/plugins/jira", &free).await.json()["allowed"], false);
    app.post("/v1/tools/jira_get_issue", &free, json!({"issue_key": "A-1"}))
        .await
        .assert_problem(404, "tool-not-found");

    // Upgrading the tenant's plan takes effect on the next request.
    let admin = Some(crate::harness::ADMIN_TOKEN);
    let patch = |traits: serde_json::Value| Some(json!({"traits": traits}).to_string().into_bytes());
    let upgraded = app
        .call(
            "PATCH",
            "/v1/admin/tenants/free-co",
            admin,
            patch(json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.text());
    assert_eq!(upgraded.json()["traits"], json!({"plan": "pro"}));
    assert_eq!(
        app.get("/v1/tools", &free).await.json()["tools"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        app.get("/v1/admin/tenants/free-co", crate::harness::ADMIN_TOKEN)
            .await
            .json()["traits"]["plan"],
        "pro"
    );
    app.get("/v1/admin/tenants/ghost", crate::harness::ADMIN_TOKEN)
        .await
        .assert_problem(404, "tenant-not-found");
    app.call("PATCH", "/v1/admin/tenants/ghost", admin, patch(json!({})))
        .await
        .assert_problem(404, "tenant-not-found");
    app.call("PATCH", "/v1/admin/tenants/free-co", admin, Some(b"{}".to_vec()))
        .await
        .assert_problem(422, "invalid-request");
}

#[tokio::test]
async fn flagsmith_server_document_gates_tools_and_lifecycle_sets_traits() {
    let flagsmith = MockServer::start().await;
    let document = std::fs::read_to_string(document_path()).unwrap();
    Mock::given(method("GET"))
        .and(path("/api/v1/environment-document/"))
        .and(header("X-Environment-Key", "ser.test-key"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(document, "application/json"))
        .mount(&flagsmith)
        .await;
    for enabled in [true, false] {
        Mock::given(method("POST"))
            .and(path("/api/v1/identities/"))
            .and(header("X-Environment-Key", "ser.test-key"))
            .and(body_json(
                json!({"identifier": "pro-co", "traits": [{"trait_key": "plugin.jira", "trait_value": enabled}]}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"flags": [], "traits": []})))
            .expect(if enabled { 2 } else { 1 })
            .mount(&flagsmith)
            .await;
    }
    let api_url = format!("{}/api/v1", flagsmith.uri());
    let app = TestApp::start_with(|c| {
        c.flags = FlagsSource::Server {
            api_url,
            server_key: integrations_core::Secret::new("ser.test-key"),
            poll_interval: Duration::from_secs(60),
        }
    })
    .await;
    let pro = app.tenant("pro-co", json!({"plan": "pro"})).await;
    let free = app.tenant("free-co", json!({}));
    let free = free.await;
    assert_eq!(
        app.install_jira(&pro, "http://127.0.0.1:9", "t", None).await.status,
        201
    );
    assert_eq!(
        app.get("/v1/tools", &pro).await.json()["tools"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(app.post("/v1/plugins/jira/disable", &pro, json!({})).await.status, 200);
    assert_eq!(app.post("/v1/plugins/jira/enable", &pro, json!({})).await.status, 200);
    assert_eq!(app.get("/v1/plugins/jira", &free).await.json()["allowed"], false);
}
