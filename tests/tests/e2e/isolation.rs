//! A tenant never sees or touches another tenant's installations, secrets, tools, webhooks or
//! events: everything of another tenant answers exactly as if it did not exist.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_myself, jira_signature, TestApp};

#[tokio::test]
async fn another_tenant_sees_and_touches_nothing() {
    let app = TestApp::start().await;
    let jira = MockServer::start().await;
    // The credential checks of acme's and evil's installs, and nothing more: any other request
    // reaching the vendor here would be a leak of acme's installation.
    jira_myself().expect(2).mount(&jira).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&jira)
        .await;
    let acme = app.tenant("acme", json!({})).await;
    let evil = app.tenant("evil", json!({})).await;
    assert_eq!(
        app.install_jira(&acme, &jira.uri(), "acme-token", Some("acme-hook"))
            .await
            .status,
        201
    );

    let details = app.get("/v1/plugins/jira", &evil).await.json();
    assert_eq!(details["state"], "not_installed");
    assert_eq!(details["config"], json!(null));
    assert_eq!(details["webhook_url"], json!(null));
    assert!(app.get("/v1/plugins", &evil).await.json()["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["state"] == "not_installed"));
    assert_eq!(app.get("/v1/tools", &evil).await.json()["tools"], json!([]));
    app.post("/v1/tools/jira_get_issue", &evil, json!({"issue_key": "ABC-1"}))
        .await
        .assert_problem(404, "tool-not-found");
    app.put(
        "/v1/plugins/jira/configure",
        &evil,
        json!({"host": jira.uri(), "email": "e@x.y", "api_token": "t"}),
    )
    .await
    .assert_problem(404, "plugin-not-installed");
    app.post("/v1/plugins/jira/disable", &evil, json!({}))
        .await
        .assert_problem(404, "plugin-not-installed");
    app.post("/v1/plugins/jira/enable", &evil, json!({}))
        .await
        .assert_problem(404, "plugin-not-installed");
    app.delete("/v1/plugins/jira", &evil)
        .await
        .assert_problem(404, "plugin-not-installed");

    // evil installing its own Jira changes nothing for acme, and the reverse.
    assert_eq!(
        app.install_jira(&evil, &jira.uri(), "evil-token", Some("evil-hook"))
            .await
            .status,
        201
    );
    assert_eq!(app.delete("/v1/plugins/jira", &evil).await.status, 204);
    assert_eq!(app.get("/v1/plugins/jira", &acme).await.json()["state"], "enabled");
    assert_eq!(
        app.get("/v1/tools", &acme).await.json()["tools"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A webhook for acme signed with evil's secret is refused; acme's events are acme's alone.
    let body = br#"{"webhookEvent":"jira:issue_created"}"#.to_vec();
    let forged = http::Request::post("/v1/webhooks/jira/acme")
        .header("x-hub-signature", jira_signature("evil-hook", &body))
        .body(axum::body::Body::from(body.clone()))
        .unwrap();
    app.send(forged).await.assert_problem(404, "webhook-rejected");
    let genuine = http::Request::post("/v1/webhooks/jira/acme")
        .header("x-hub-signature", jira_signature("acme-hook", &body))
        .header("x-atlassian-webhook-identifier", "d-1")
        .body(axum::body::Body::from(body))
        .unwrap();
    assert_eq!(app.send(genuine).await.status, 202);
    assert_eq!(
        app.get("/v1/webhook-events", &acme).await.json()["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.get("/v1/webhook-events", &evil).await.json()["events"], json!([]));
    // evil's own webhook URL has no installation behind it.
    let to_evil = http::Request::post("/v1/webhooks/jira/evil")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    app.send(to_evil).await.assert_problem(404, "webhook-rejected");
}

#[tokio::test]
async fn tenant_keys_only_open_their_own_tenant() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme", json!({})).await;
    let evil = app.tenant("evil", json!({})).await;
    // The key id of one tenant combined with the secret of another is not a key.
    let (acme_id, _) = acme.split_once('.').unwrap();
    let (_, evil_secret) = evil.split_once('.').unwrap();
    app.get("/v1/plugins", &format!("{acme_id}.{evil_secret}"))
        .await
        .assert_problem(401, "unauthorized");
    // Revoking acme's key with evil's tenant path does nothing.
    let acme_key_id = acme_id.trim_start_matches("itk_");
    app.delete(
        &format!("/v1/admin/tenants/evil/keys/{acme_key_id}"),
        crate::harness::ADMIN_TOKEN,
    )
    .await
    .assert_problem(404, "api-key-not-found");
    assert_eq!(app.get("/v1/plugins", &acme).await.status, 200);
}
