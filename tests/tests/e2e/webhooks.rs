use axum::body::Body;
use serde_json::json;

use crate::harness::{jira_signature, TestApp};

const BODY: &[u8] = br#"{"webhookEvent":"jira:issue_created","issue":{"key":"ABC-1"}}"#;

fn delivery(tenant: &str, signature: Option<String>, delivery_id: &str, body: &[u8]) -> http::Request<Body> {
    let mut builder = http::Request::post(format!("/v1/webhooks/jira/{tenant}"))
        .header("content-type", "application/json")
        .header("x-atlassian-webhook-identifier", delivery_id);
    if let Some(signature) = signature {
        builder = builder.header("x-hub-signature", signature);
    }
    builder.body(Body::from(body.to_vec())).unwrap()
}

async fn app_with_jira(secret: Option<&str>) -> (TestApp, String) {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(
        app.install_jira(&key, "http://127.0.0.1:9", "t", secret).await.status,
        201
    );
    (app, key)
}

#[tokio::test]
async fn valid_delivery_is_stored_before_202_and_duplicates_are_stored_once() {
    let (app, key) = app_with_jira(Some("hook-secret")).await;
    let first = app
        .send(delivery("acme", Some(jira_signature("hook-secret", BODY)), "d-1", BODY))
        .await;
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(first.json()["duplicate"], false);
    let stored = app.store().list_webhook_events("acme", Some("jira"), 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].payload, BODY);
    assert_eq!(stored[0].event_type.as_deref(), Some("jira:issue_created"));
    assert_eq!(stored[0].delivery_id, "d-1");

    let retry = app
        .send(delivery("acme", Some(jira_signature("hook-secret", BODY)), "d-1", BODY))
        .await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.json(), json!({"id": first.json()["id"], "duplicate": true}));
    assert_eq!(
        app.store().list_webhook_events("acme", None, 10).await.unwrap().len(),
        1
    );

    let events = app.get("/v1/webhook-events?plugin=jira", &key).await.json();
    assert_eq!(events["events"][0]["payload"]["issue"]["key"], "ABC-1");
}

#[tokio::test]
async fn invalid_or_missing_signatures_are_401_and_store_nothing() {
    let (app, _) = app_with_jira(Some("hook-secret")).await;
    app.send(delivery("acme", Some(jira_signature("wrong", BODY)), "d-1", BODY))
        .await
        .assert_problem(401, "webhook-rejected");
    app.send(delivery("acme", None, "d-2", BODY))
        .await
        .assert_problem(401, "webhook-rejected");
    app.send(delivery("acme", Some("sha256=nothex".into()), "d-3", BODY))
        .await
        .assert_problem(401, "webhook-rejected");
    let tampered = br#"{"webhookEvent":"jira:issue_deleted"}"#;
    app.send(delivery(
        "acme",
        Some(jira_signature("hook-secret", BODY)),
        "d-4",
        tampered,
    ))
    .await
    .assert_problem(401, "webhook-rejected");
    assert!(app
        .store()
        .list_webhook_events("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn without_a_webhook_secret_nothing_is_accepted() {
    let (app, _) = app_with_jira(None).await;
    app.send(delivery("acme", Some(jira_signature("", BODY)), "d-1", BODY))
        .await
        .assert_problem(401, "webhook-rejected");
}

#[tokio::test]
async fn disabled_uninstalled_or_unknown_targets_are_404() {
    let (app, key) = app_with_jira(Some("hook-secret")).await;
    let signed = || Some(jira_signature("hook-secret", BODY));
    app.send(delivery("ghost", signed(), "d-1", BODY))
        .await
        .assert_problem(404, "plugin-not-installed");
    let unknown_plugin = http::Request::post("/v1/webhooks/nope/acme")
        .body(Body::from("{}"))
        .unwrap();
    app.send(unknown_plugin)
        .await
        .assert_problem(404, "plugin-not-installed");
    app.post("/v1/plugins/jira/disable", &key, json!({})).await;
    app.send(delivery("acme", signed(), "d-2", BODY))
        .await
        .assert_problem(404, "plugin-not-installed");
    app.post("/v1/plugins/jira/enable", &key, json!({})).await;
    assert_eq!(app.send(delivery("acme", signed(), "d-3", BODY)).await.status, 202);
    app.delete("/v1/plugins/jira", &key).await;
    app.send(delivery("acme", signed(), "d-4", BODY))
        .await
        .assert_problem(404, "plugin-not-installed");
}

#[tokio::test]
async fn oversized_webhook_is_413() {
    let (app, _) = app_with_jira(Some("hook-secret")).await;
    let body = vec![b' '; 1024 * 1024 + 1];
    app.send(delivery(
        "acme",
        Some(jira_signature("hook-secret", &body)),
        "d-1",
        &body,
    ))
    .await
    .assert_problem(413, "payload-too-large");
}
