use axum::body::Body;
use integrations::FlagsSource;
use serde_json::json;

use crate::harness::{jira_server, jira_signature, TestApp};

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
    // Webhooks never call Jira; only install's credential check does.
    let jira = jira_server().await;
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", secret).await.status, 201);
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
    let stored = app
        .store()
        .list_webhook_deliveries("acme", Some("jira"), 10)
        .await
        .unwrap();
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
        app.store()
            .list_webhook_deliveries("acme", None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let events = app.get("/v1/webhook-events?plugin=jira", &key).await.json();
    assert_eq!(events["events"][0]["payload"]["issue"]["key"], "ABC-1");
}

#[tokio::test]
async fn invalid_or_missing_signatures_are_rejected_and_store_nothing() {
    let (app, _) = app_with_jira(Some("hook-secret")).await;
    app.send(delivery("acme", Some(jira_signature("wrong", BODY)), "d-1", BODY))
        .await
        .assert_problem(404, "webhook-rejected");
    app.send(delivery("acme", None, "d-2", BODY))
        .await
        .assert_problem(404, "webhook-rejected");
    app.send(delivery("acme", Some("sha256=nothex".into()), "d-3", BODY))
        .await
        .assert_problem(404, "webhook-rejected");
    let tampered = br#"{"webhookEvent":"jira:issue_deleted"}"#;
    app.send(delivery(
        "acme",
        Some(jira_signature("hook-secret", BODY)),
        "d-4",
        tampered,
    ))
    .await
    .assert_problem(404, "webhook-rejected");
    assert!(app
        .store()
        .list_webhook_deliveries("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn without_a_webhook_secret_nothing_is_accepted() {
    let (app, _) = app_with_jira(None).await;
    app.send(delivery("acme", Some(jira_signature("", BODY)), "d-1", BODY))
        .await
        .assert_problem(404, "webhook-rejected");
}

#[tokio::test]
async fn every_refusal_answers_the_same_status_and_bytes() {
    let flags = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/flags/testdata/environment.json");
    let app = TestApp::start_with(|c| c.flags = FlagsSource::File(flags)).await;
    // The flag document allows Jira for tenants whose plan is "pro" only.
    let pro = app.tenant("pro-co", json!({"plan": "pro"})).await;
    let off = app.tenant("off-co", json!({"plan": "pro"})).await;
    let free = app.tenant("free-co", json!({"plan": "pro"})).await;
    app.tenant("bare-co", json!({"plan": "pro"})).await;
    let jira = jira_server().await;
    for key in [&pro, &off, &free] {
        let installed = app.install_jira(key, &jira.uri(), "t", Some("hook-secret")).await;
        assert_eq!(installed.status, 201, "{}", installed.text());
    }
    // Installed while allowed, then downgraded: flags now deny it.
    let downgrade = json!({"traits": {"plan": "free"}}).to_string().into_bytes();
    let downgraded = app
        .call(
            "PATCH",
            "/v1/admin/tenants/free-co",
            Some(crate::harness::ADMIN_TOKEN),
            Some(downgrade),
        )
        .await;
    assert_eq!(downgraded.status, 200);
    assert_eq!(app.post("/v1/plugins/jira/disable", &off, json!({})).await.status, 200);
    let signed = || Some(jira_signature("hook-secret", BODY));
    let not_json = b"not json";
    let refusals = [
        ("unknown tenant", delivery("ghost-co", signed(), "d-1", BODY)),
        (
            "unknown plugin",
            http::Request::post("/v1/webhooks/nope/pro-co")
                .header("x-hub-signature", jira_signature("hook-secret", BODY))
                .body(Body::from(BODY))
                .unwrap(),
        ),
        ("not installed", delivery("bare-co", signed(), "d-1", BODY)),
        ("disabled", delivery("off-co", signed(), "d-1", BODY)),
        ("not allowed by flags", delivery("free-co", signed(), "d-1", BODY)),
        ("missing signature", delivery("pro-co", None, "d-1", BODY)),
        (
            "bad signature",
            delivery("pro-co", Some(jira_signature("wrong", BODY)), "d-1", BODY),
        ),
        (
            "malformed",
            delivery("pro-co", Some(jira_signature("hook-secret", not_json)), "d-1", not_json),
        ),
    ];
    let mut answers = Vec::new();
    for (case, request) in refusals {
        let response = app.send(request).await;
        response.assert_problem(404, "webhook-rejected");
        let content_type = response.headers.get("content-type").cloned();
        answers.push((case, response.status, content_type, response.body));
    }
    let (_, status, content_type, body) = &answers[0];
    for (case, other_status, other_type, other_body) in &answers {
        assert_eq!(
            (other_status, other_type, other_body),
            (status, content_type, body),
            "{case} answers differently: {}",
            String::from_utf8_lossy(other_body)
        );
    }
    let body = String::from_utf8_lossy(body);
    for name in ["jira", "nope", "-co"] {
        assert!(!body.contains(name), "refusal names {name}: {body}");
    }
    // The same delivery is accepted where everything is in order.
    assert_eq!(app.send(delivery("pro-co", signed(), "d-1", BODY)).await.status, 202);
}

#[tokio::test]
async fn a_signed_body_replayed_without_a_delivery_id_is_a_duplicate() {
    let (app, key) = app_with_jira(Some("hook-secret")).await;
    let without_id = || {
        http::Request::post("/v1/webhooks/jira/acme")
            .header("content-type", "application/json")
            .header("x-hub-signature", jira_signature("hook-secret", BODY))
            .body(Body::from(BODY))
            .unwrap()
    };
    let first = app.send(without_id()).await;
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(first.json()["duplicate"], false);
    let replay = app.send(without_id()).await;
    assert_eq!(replay.status, 202, "{}", replay.text());
    assert_eq!(replay.json(), json!({"id": first.json()["id"], "duplicate": true}));
    let events = app.get("/v1/webhook-events", &key).await.json();
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, BODY).as_ref());
    assert_eq!(events["events"][0]["delivery_id"], format!("sha256:{digest}"));
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
