use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{jira_basic, jira_server, TestApp, ADMIN_TOKEN};

fn state_of(list: &Value, plugin: &str) -> Value {
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == plugin)
        .map(|p| p["state"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn walks_every_lifecycle_transition() {
    let app = TestApp::start().await;
    let jira = jira_server().await;
    let key = app.tenant("acme", json!({})).await;

    let list = app.get("/v1/plugins", &key).await;
    assert_eq!(list.status, 200);
    assert_eq!(state_of(&list.json(), "jira"), json!("not_installed"));

    let installed = app
        .install_jira(&key, &jira.uri(), "token-one", Some("hook-secret"))
        .await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    let details = installed.json();
    assert_eq!(details["state"], "enabled");
    assert_eq!(
        details["config"],
        json!({"host": jira.uri(), "email": "bot@example.com"})
    );
    assert_eq!(details["secrets_set"], json!(["api_token", "webhook_secret"]));
    assert_eq!(
        details["webhook_url"],
        "https://integrations.example/v1/webhooks/jira/acme"
    );
    assert_eq!(details["tools"].as_array().unwrap().len(), 3);
    assert_eq!(details["config_schema"]["properties"]["api_token"]["writeOnly"], true);
    assert_eq!(
        app.get("/v1/tools", &key).await.json()["tools"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    app.install_jira(&key, &jira.uri(), "token-one", None)
        .await
        .assert_problem(409, "plugin-already-installed");

    // Configure without api_token: the stored token is kept and used.
    let configured = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": jira.uri(), "email": "bot@example.com"}),
        )
        .await;
    assert_eq!(configured.status, 200, "{}", configured.text());
    assert_eq!(configured.json()["secrets_set"], json!(["api_token", "webhook_secret"]));
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .and(header("authorization", jira_basic("token-one").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "key": "ABC-1", "fields": {}})))
        .expect(1)
        .mount(&jira)
        .await;
    assert_eq!(
        app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
            .await
            .status,
        200
    );

    // A secret set to null is removed.
    let removed = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": jira.uri(), "email": "bot@example.com", "webhook_secret": null}),
        )
        .await;
    assert_eq!(removed.json()["secrets_set"], json!(["api_token"]));

    let disabled = app.post("/v1/plugins/jira/disable", &key, json!({})).await;
    assert_eq!(disabled.json()["state"], "disabled");
    assert_eq!(app.get("/v1/tools", &key).await.json()["tools"], json!([]));
    app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
        .await
        .assert_problem(404, "tool-not-found");
    assert_eq!(
        state_of(&app.get("/v1/plugins", &key).await.json(), "jira"),
        json!("disabled")
    );

    let enabled = app.post("/v1/plugins/jira/enable", &key, json!({})).await;
    assert_eq!(enabled.json()["state"], "enabled");

    assert_eq!(app.delete("/v1/plugins/jira", &key).await.status, 204);
    assert_eq!(app.get("/v1/plugins/jira", &key).await.json()["state"], "not_installed");
    assert!(app.store().get_secrets("acme", "jira").await.unwrap().is_empty());
    assert_eq!(app.get("/v1/tools", &key).await.json()["tools"], json!([]));
}

#[tokio::test]
async fn steps_on_a_plugin_not_installed_are_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let body = json!({"host": "http://127.0.0.1:9", "email": "a@b.c", "api_token": "t"});
    app.put("/v1/plugins/jira/configure", &key, body)
        .await
        .assert_problem(404, "plugin-not-installed");
    app.post("/v1/plugins/jira/enable", &key, json!({}))
        .await
        .assert_problem(404, "plugin-not-installed");
    app.post("/v1/plugins/jira/disable", &key, json!({}))
        .await
        .assert_problem(404, "plugin-not-installed");
    app.delete("/v1/plugins/jira", &key)
        .await
        .assert_problem(404, "plugin-not-installed");
}

#[tokio::test]
async fn unknown_plugin_is_404_on_every_endpoint() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    app.get("/v1/plugins/nope", &key)
        .await
        .assert_problem(404, "plugin-not-found");
    app.post("/v1/plugins/nope/install", &key, json!({}))
        .await
        .assert_problem(404, "plugin-not-found");
    app.put("/v1/plugins/nope/configure", &key, json!({}))
        .await
        .assert_problem(404, "plugin-not-found");
    app.post("/v1/plugins/nope/enable", &key, json!({}))
        .await
        .assert_problem(404, "plugin-not-found");
    app.post("/v1/plugins/nope/disable", &key, json!({}))
        .await
        .assert_problem(404, "plugin-not-found");
    app.delete("/v1/plugins/nope", &key)
        .await
        .assert_problem(404, "plugin-not-found");
    app.post("/v1/tools/nope_tool", &key, json!({}))
        .await
        .assert_problem(404, "tool-not-found");
}

#[tokio::test]
async fn an_id_that_cannot_be_one_is_the_same_404_as_one_that_does_not_exist() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    app.get("/v1/plugins/Jira", &key)
        .await
        .assert_problem(404, "plugin-not-found");
    app.post("/v1/plugins/j%20ira/enable", &key, json!({}))
        .await
        .assert_problem(404, "plugin-not-found");
    app.post("/v1/tools/Jira_get_issue", &key, json!({}))
        .await
        .assert_problem(404, "tool-not-found");
    app.get("/v1/jobs/job_1", &key)
        .await
        .assert_problem(404, "job-not-found");
    app.get("/v1/webhook-endpoints/ep_x", &key)
        .await
        .assert_problem(404, "webhook-endpoint-not-found");
    app.get("/v1/admin/tenants/ACME", ADMIN_TOKEN)
        .await
        .assert_problem(404, "tenant-not-found");
    app.delete("/v1/admin/tenants/acme/keys/not-a-key-id", ADMIN_TOKEN)
        .await
        .assert_problem(404, "api-key-not-found");
}

#[tokio::test]
async fn config_violating_the_schema_is_422_naming_each_field_without_values() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let response = app
        .post(
            "/v1/plugins/jira/install",
            &key,
            json!({"host": "ftp-nope", "api_token": 12345678, "surprise": true}),
        )
        .await;
    let problem = response.assert_problem(422, "invalid-config");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["api_token", "email", "host", "surprise"]);
    assert!(!response.text().contains("12345678"));
    app.post("/v1/plugins/jira/install", &key, json!(["not", "an", "object"]))
        .await
        .assert_problem(422, "invalid-config");
}

#[tokio::test]
async fn bad_input_gets_the_documented_status() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    app.call(
        "POST",
        "/v1/plugins/jira/install",
        Some(&key),
        Some(b"{not json".to_vec()),
    )
    .await
    .assert_problem(400, "malformed-json");
    app.call("POST", "/v1/plugins/jira/install", Some(&key), Some(Vec::new()))
        .await
        .assert_problem(400, "malformed-json");
    let huge = format!("{{\"host\":\"{}\"}}", "a".repeat(1024 * 1024 + 1));
    app.call("POST", "/v1/plugins/jira/install", Some(&key), Some(huge.into_bytes()))
        .await
        .assert_problem(413, "payload-too-large");
    app.call("GET", "/v1/plugins", None, None)
        .await
        .assert_problem(401, "unauthorized");
    app.call("GET", "/v1/plugins", Some("itk_0000000000000000.wrong"), None)
        .await
        .assert_problem(401, "unauthorized");
    let forged = format!("{}x", &key[..key.len() - 1]);
    app.call("GET", "/v1/plugins", Some(&forged), None)
        .await
        .assert_problem(401, "unauthorized");
    app.call("GET", "/v1/nowhere", Some(&key), None)
        .await
        .assert_problem(404, "route-not-found");
    app.call("PATCH", "/v1/plugins", Some(&key), None)
        .await
        .assert_problem(405, "method-not-allowed");
}

#[tokio::test]
async fn admin_api_manages_tenants_and_keys() {
    let app = TestApp::start().await;
    use crate::harness::ADMIN_TOKEN;
    let first = app.tenant("acme", json!({"plan": "pro"})).await;
    app.post("/v1/admin/tenants", ADMIN_TOKEN, json!({"id": "acme"}))
        .await
        .assert_problem(409, "tenant-exists");
    app.post("/v1/admin/tenants", ADMIN_TOKEN, json!({"id": "Not Valid"}))
        .await
        .assert_problem(422, "invalid-tenant-id");
    app.post(
        "/v1/admin/tenants",
        ADMIN_TOKEN,
        json!({"id": "sneaky", "traits": {"plugin.jira": true}}),
    )
    .await
    .assert_problem(422, "invalid-request");
    app.post("/v1/admin/tenants", ADMIN_TOKEN, json!({"traits": {}}))
        .await
        .assert_problem(422, "invalid-request");
    let listed = app.get("/v1/admin/tenants", ADMIN_TOKEN).await.json();
    assert_eq!(listed["tenants"][0]["id"], "acme");
    assert_eq!(listed["tenants"][0]["traits"], json!({"plan": "pro"}));
    assert!(!listed.to_string().contains("itk_"), "keys are never listed");

    let second = app.post("/v1/admin/tenants/acme/keys", ADMIN_TOKEN, json!({})).await;
    assert_eq!(second.status, 201);
    let second = second.json();
    let second_key = second["api_key"].as_str().unwrap();
    assert_eq!(app.get("/v1/plugins", second_key).await.status, 200);
    assert_eq!(app.get("/v1/plugins", &first).await.status, 200);

    let revoke = format!("/v1/admin/tenants/acme/keys/{}", second["key_id"].as_str().unwrap());
    assert_eq!(app.delete(&revoke, ADMIN_TOKEN).await.status, 204);
    app.get("/v1/plugins", second_key)
        .await
        .assert_problem(401, "unauthorized");
    app.delete(&revoke, ADMIN_TOKEN)
        .await
        .assert_problem(404, "api-key-not-found");
    app.post("/v1/admin/tenants/ghost/keys", ADMIN_TOKEN, json!({}))
        .await
        .assert_problem(404, "tenant-not-found");

    // Tenant keys and wrong tokens never reach the admin API.
    app.get("/v1/admin/tenants", &first)
        .await
        .assert_problem(401, "unauthorized");
    app.call("GET", "/v1/admin/tenants", None, None)
        .await
        .assert_problem(401, "unauthorized");

    assert_eq!(app.delete("/v1/admin/tenants/acme", ADMIN_TOKEN).await.status, 204);
    app.get("/v1/plugins", &first).await.assert_problem(401, "unauthorized");
    app.delete("/v1/admin/tenants/acme", ADMIN_TOKEN)
        .await
        .assert_problem(404, "tenant-not-found");
}

#[tokio::test]
async fn admin_api_is_absent_without_an_admin_token() {
    let app = TestApp::start_with(|c| c.admin_token = None).await;
    app.get("/v1/admin/tenants", "anything")
        .await
        .assert_problem(404, "route-not-found");
}

#[tokio::test]
async fn trusted_gateway_mode_takes_the_tenant_from_the_header() {
    let app = TestApp::start_with(|c| c.trust_tenant_header = true).await;
    app.tenant("acme", json!({})).await;
    let request = |tenant: Option<&str>| {
        let mut builder = http::Request::builder().uri("/v1/plugins");
        if let Some(t) = tenant {
            builder = builder.header("x-tenant-id", t);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    };
    assert_eq!(app.send(request(Some("acme"))).await.status, 200);
    app.send(request(Some("ghost")))
        .await
        .assert_problem(401, "unauthorized");
    app.send(request(None)).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn trusted_gateway_mode_refuses_repeated_empty_or_malformed_tenant_headers() {
    let app = TestApp::start_with(|c| c.trust_tenant_header = true).await;
    app.tenant("acme", json!({})).await;
    app.tenant("evil", json!({})).await;
    let request = |values: &[&str]| {
        let mut builder = http::Request::builder().uri("/v1/plugins");
        for value in values {
            builder = builder.header("x-tenant-id", *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    };
    assert_eq!(app.send(request(&["acme"])).await.status, 200);
    // A gateway that appends its header after the client's must not let the client's through.
    for values in [
        &["evil", "acme"][..],
        &["acme", "evil"],
        &["acme", "acme"],
        &[""],
        &["ACME"],
        &["evil, acme"],
    ] {
        app.send(request(values))
            .await
            .assert_problem(400, "invalid-tenant-header");
    }
}

#[tokio::test]
async fn a_kept_token_never_follows_a_new_host() {
    let app = TestApp::start().await;
    let (first, second) = (jira_server().await, jira_server().await);
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(
        app.install_jira(&key, &first.uri(), "token-one", Some("hook"))
            .await
            .status,
        201
    );
    let moved = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": second.uri(), "email": "bot@example.com"}),
        )
        .await;
    let problem = moved.assert_problem(422, "invalid-config");
    assert_eq!(problem["errors"][0]["field"], "api_token");
    let renamed = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": first.uri(), "email": "other@example.com"}),
        )
        .await;
    renamed.assert_problem(422, "invalid-config");
    // Sending the token again with the new host is fine, and the webhook secret is kept.
    let resent = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": second.uri(), "email": "bot@example.com", "api_token": "token-two"}),
        )
        .await;
    assert_eq!(resent.status, 200, "{}", resent.text());
    assert_eq!(resent.json()["secrets_set"], json!(["api_token", "webhook_secret"]));
}
