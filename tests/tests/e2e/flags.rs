//! Flagsmith decides which plugins a tenant may use: from a document file, and from a server.

use std::path::PathBuf;
use std::time::Duration;

use integrations::FlagsSource;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_server, TestApp};

fn document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/flags/testdata/environment.json")
}

#[tokio::test]
async fn document_segment_on_a_trait_gates_tools() {
    let app = TestApp::start_with(|c| c.flags = FlagsSource::File(document_path())).await;
    let jira = jira_server().await;
    let pro = app.tenant("pro-co", json!({"plan": "pro"})).await;
    let free = app.tenant("free-co", json!({"plan": "free"})).await;
    assert_eq!(app.install_jira(&pro, &jira.uri(), "t", None).await.status, 201);
    // Flags deny the plugin to this tenant, so it cannot even be installed.
    app.install_jira(&free, &jira.uri(), "t", None)
        .await
        .assert_problem(403, "plugin-not-allowed");
    assert_eq!(
        app.get("/v1/plugins/jira", &free).await.json()["state"],
        "not_installed"
    );
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
    assert_eq!(app.install_jira(&free, &jira.uri(), "t", None).await.status, 201);
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
    app.call("PATCH", "/v1/admin/tenants/free-co", admin, patch(json!(5)))
        .await
        .assert_problem(422, "invalid-request");
    // A PATCH that leaves the traits out keeps them.
    let kept = app
        .call("PATCH", "/v1/admin/tenants/free-co", admin, Some(b"{}".to_vec()))
        .await;
    assert_eq!(kept.json()["traits"], json!({"plan": "pro"}));

    // A downgrade hides the installed plugin's tools again, and it cannot be re-enabled.
    app.call(
        "PATCH",
        "/v1/admin/tenants/free-co",
        admin,
        patch(json!({"plan": "free"})),
    )
    .await;
    assert_eq!(app.get("/v1/tools", &free).await.json()["tools"], json!([]));
    assert_eq!(app.post("/v1/plugins/jira/disable", &free, json!({})).await.status, 200);
    app.post("/v1/plugins/jira/enable", &free, json!({}))
        .await
        .assert_problem(403, "plugin-not-allowed");
    assert_eq!(app.get("/v1/plugins/jira", &free).await.json()["state"], "disabled");
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
    let jira = jira_server().await;
    let pro = app.tenant("pro-co", json!({"plan": "pro"})).await;
    let free = app.tenant("free-co", json!({}));
    let free = free.await;
    assert_eq!(app.install_jira(&pro, &jira.uri(), "t", None).await.status, 201);
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
    app.install_jira(&free, &jira.uri(), "t", None)
        .await
        .assert_problem(403, "plugin-not-allowed");
    // The refused install recorded no `plugin.jira` trait for the tenant.
    let requests = flagsmith.received_requests().await.unwrap();
    assert!(requests
        .iter()
        .filter(|r| r.url.path() == "/api/v1/identities/")
        .all(|r| !String::from_utf8_lossy(&r.body).contains("free-co")));
}
