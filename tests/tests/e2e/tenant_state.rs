//! What the hot path keeps in memory follows every change at once, per-tenant outbound
//! allowlists, and installations of connectors a build no longer has.

use integrations_core::PluginRegistry;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_server, TestApp, ADMIN_TOKEN};

async fn jira_answering_get_issue() -> MockServer {
    let jira = jira_server().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"key": "ABC-1"})))
        .mount(&jira)
        .await;
    jira
}

/// How many `jira_get_issue` calls reached `jira` (install's credential check aside).
async fn get_issue_calls(jira: &MockServer) -> usize {
    let requests = jira.received_requests().await.expect("recording");
    requests
        .iter()
        .filter(|r| r.url.path() == "/rest/api/3/issue/ABC-1")
        .count()
}

fn tool_count(response: &crate::harness::TestResponse) -> usize {
    response.json()["tools"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn cached_state_follows_revocation_reconfiguration_disable_and_deletion() {
    let app = TestApp::start().await;
    let jira = jira_answering_get_issue().await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", None).await.status, 201);
    let call = || app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}));
    // Warm every cache: key, gate, decrypted config.
    assert_eq!(call().await.status, 200);
    assert_eq!(call().await.status, 200);

    // A new host is followed by the next call, not a cached config.
    let moved = jira_server().await;
    let reconfigured = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": moved.uri(), "email": "bot@example.com", "api_token": "t2"}),
        )
        .await;
    assert_eq!(reconfigured.status, 200, "{}", reconfigured.text());
    call().await.assert_problem(502, "upstream-error");
    assert_eq!(get_issue_calls(&moved).await, 1);

    assert_eq!(app.post("/v1/plugins/jira/disable", &key, json!({})).await.status, 200);
    assert_eq!(tool_count(&app.get("/v1/tools", &key).await), 0);
    call().await.assert_problem(404, "tool-not-found");

    // A second key, used once, then revoked: refused on the very next request.
    let second = app
        .post("/v1/admin/tenants/acme/keys", ADMIN_TOKEN, json!({}))
        .await
        .json();
    let second_key = second["api_key"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/tools", &second_key).await.status, 200);
    let revoke = format!("/v1/admin/tenants/acme/keys/{}", second["key_id"].as_str().unwrap());
    assert_eq!(app.delete(&revoke, ADMIN_TOKEN).await.status, 204);
    app.get("/v1/tools", &second_key)
        .await
        .assert_problem(401, "unauthorized");

    assert_eq!(app.delete("/v1/admin/tenants/acme", ADMIN_TOKEN).await.status, 204);
    app.get("/v1/tools", &key).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn a_tenant_allowlist_admits_its_own_internal_networks_and_no_one_elses() {
    // No global allowlist: loopback is internal and refused unless a tenant is given it.
    let app = TestApp::start_with(|c| c.outbound_allow_cidrs = String::new()).await;
    let jira = jira_answering_get_issue().await;
    let created = app
        .post(
            "/v1/admin/tenants",
            ADMIN_TOKEN,
            json!({"id": "onprem", "outbound_allow_cidrs": ["127.0.0.1/32"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let onprem = created.json()["api_key"].as_str().unwrap().to_owned();
    let other = app.tenant("other", json!({})).await;

    assert_eq!(app.install_jira(&onprem, &jira.uri(), "t", None).await.status, 201);
    app.install_jira(&other, &jira.uri(), "t", None)
        .await
        .assert_problem(422, "invalid-config");
    let call = |key: String| {
        let app = &app;
        async move {
            app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
                .await
        }
    };
    assert_eq!(call(onprem.clone()).await.status, 200);

    let shown = app.get("/v1/admin/tenants/onprem", ADMIN_TOKEN).await.json();
    assert_eq!(shown["outbound_allow_cidrs"], json!(["127.0.0.1/32"]));
    // A PATCH that leaves the field out keeps it.
    let patched = app
        .call(
            "PATCH",
            "/v1/admin/tenants/onprem",
            Some(ADMIN_TOKEN),
            Some(json!({"traits": {"plan": "pro"}}).to_string().into_bytes()),
        )
        .await
        .json();
    assert_eq!(patched["outbound_allow_cidrs"], json!(["127.0.0.1/32"]));
    assert_eq!(patched["traits"], json!({"plan": "pro"}));
    assert_eq!(call(onprem.clone()).await.status, 200);

    // Taking the range away takes effect on the next call.
    let emptied = app
        .call(
            "PATCH",
            "/v1/admin/tenants/onprem",
            Some(ADMIN_TOKEN),
            Some(json!({"outbound_allow_cidrs": []}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(emptied.json()["outbound_allow_cidrs"], json!([]));
    call(onprem).await.assert_problem(422, "destination-refused");
    assert_eq!(get_issue_calls(&jira).await, 2);

    app.call(
        "PATCH",
        "/v1/admin/tenants/onprem",
        Some(ADMIN_TOKEN),
        Some(
            json!({"outbound_allow_cidrs": ["10.0.0.0/33"]})
                .to_string()
                .into_bytes(),
        ),
    )
    .await
    .assert_problem(422, "invalid-request");
}

#[tokio::test]
async fn uninstall_removes_a_connector_missing_from_the_build() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let jira = jira_server().await;
    assert_eq!(
        app.install_jira(&key, &jira.uri(), "t", Some("hook-secret"))
            .await
            .status,
        201
    );
    let rebuilt = app.rebuilt_with(PluginRegistry::from_plugins(vec![]).unwrap()).await;

    let listed = rebuilt.get("/v1/plugins", &key).await.json();
    assert_eq!(
        listed["plugins"],
        json!([{
            "name": "jira", "version": "", "state": "unavailable", "allowed": false, "needs_reauthorization": false,
            "description": "not included in this build; uninstall removes its configuration and secrets"
        }])
    );
    assert_eq!(tool_count(&rebuilt.get("/v1/tools", &key).await), 0);

    assert_eq!(rebuilt.delete("/v1/plugins/jira", &key).await.status, 204);
    assert!(rebuilt.store().get_secrets("acme", "jira").await.unwrap().is_empty());
    assert!(rebuilt
        .store()
        .get_installation("acme", "jira")
        .await
        .unwrap()
        .is_none());
    assert_eq!(rebuilt.get("/v1/plugins", &key).await.json()["plugins"], json!([]));
    rebuilt
        .delete("/v1/plugins/jira", &key)
        .await
        .assert_problem(404, "plugin-not-found");
}
