//! Every Bitbucket Cloud tool, both credential forms, the install-time credential check and signed
//! webhooks, against a wiremock REST 2.0 API that expects exactly the documented request.

use axum::body::Body;
use base64::Engine;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{TestApp, TestResponse};

const ACCESS_TOKEN: &str = "bb-access-token";
const EMAIL: &str = "bot@example.com";
const API_TOKEN: &str = "ATATT-api-token";
const WEBHOOK_SECRET: &str = "bitbucket-webhook-secret";
const BEARER: &str = "Bearer bb-access-token";

/// Which of the two credential forms an installation uses.
enum Auth<'a> {
    AccessToken(&'a str),
    EmailAndApiToken(&'a str),
}

fn basic(token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{token}"))
    )
}

/// The mock's base, with REST 2.0's `/2.0` path like the real one.
fn base(vendor: &MockServer) -> String {
    format!("{}/2.0", vendor.uri())
}

async fn install(app: &TestApp, key: &str, vendor: &MockServer, auth: Auth<'_>) -> TestResponse {
    let mut config = json!({"workspace": "acme", "api_base_url": base(vendor), "webhook_secret": WEBHOOK_SECRET});
    match auth {
        Auth::AccessToken(token) => config["access_token"] = json!(token),
        Auth::EmailAndApiToken(token) => {
            config["email"] = json!(EMAIL);
            config["api_token"] = json!(token);
        }
    }
    app.post("/v1/plugins/bitbucket/install", key, config).await
}

/// An app with Bitbucket installed for tenant `acme`; install's credential check is asserted once.
async fn setup_with(auth: Auth<'_>, authorization: &str) -> (TestApp, MockServer, String) {
    let app = TestApp::start().await;
    let vendor = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme"))
        .and(query_param("pagelen", "1"))
        .and(header("authorization", authorization))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"pagelen": 1, "values": []})))
        .expect(1)
        .mount(&vendor)
        .await;
    let key = app.tenant("acme", json!({})).await;
    let installed = install(&app, &key, &vendor, auth).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, vendor, key)
}

async fn setup() -> (TestApp, MockServer, String) {
    setup_with(Auth::AccessToken(ACCESS_TOKEN), BEARER).await
}

#[tokio::test]
async fn get_repository_sends_a_bearer_get_to_the_repository() {
    let (app, vendor, key) = setup().await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web%20app"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"slug": "web-app", "full_name": "acme/web-app"})))
        .expect(1)
        .mount(&vendor)
        .await;
    let response = app
        .post(
            "/v1/tools/bitbucket_get_repository",
            &key,
            json!({"repo_slug": "web app"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["full_name"], "acme/web-app");
    let requests = vendor.received_requests().await.unwrap();
    let get = requests
        .iter()
        .find(|r| r.url.path() != "/2.0/repositories/acme")
        .unwrap();
    assert_eq!(get.url.query(), None);
}

#[tokio::test]
async fn email_and_api_token_are_sent_as_basic_auth() {
    let (app, vendor, key) = setup_with(Auth::EmailAndApiToken(API_TOKEN), &basic(API_TOKEN)).await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app"))
        .and(header("authorization", basic(API_TOKEN).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"slug": "web-app"})))
        .expect(1)
        .mount(&vendor)
        .await;
    let response = app
        .post(
            "/v1/tools/bitbucket_get_repository",
            &key,
            json!({"repo_slug": "web-app"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
}

#[tokio::test]
async fn list_pull_requests_follows_next_across_two_pages() {
    let (app, vendor, key) = setup().await;
    let next = format!(
        "{}/repositories/acme/web-app/pullrequests?state=OPEN&pagelen=50&page=2",
        base(&vendor)
    );
    let first: Vec<Value> = (1..=50)
        .map(|id| json!({"id": id, "title": format!("PR {id}")}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests"))
        .and(header("authorization", BEARER))
        .and(query_param("state", "OPEN"))
        .and(query_param("pagelen", "50"))
        .and(wiremock::matchers::query_param_is_missing("page"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"pagelen": 50, "values": first, "next": next})))
        .expect(1)
        .mount(&vendor)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests"))
        .and(header("authorization", BEARER))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pagelen": 50,
            "values": [{"id": 51, "title": "PR 51"}, {"id": 52, "title": "PR 52"}],
            "next": format!("{}/repositories/acme/web-app/pullrequests?page=3", base(&vendor))
        })))
        .expect(1)
        .mount(&vendor)
        .await;
    let response = app
        .post(
            "/v1/tools/bitbucket_list_pull_requests",
            &key,
            // Two pages at most: 51 pull requests need two pages of 50, and no third is asked for.
            json!({"repo_slug": "web-app", "state": "OPEN", "limit": 51}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = response.json()["result"].clone();
    let ids: Vec<u64> = result["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pr| pr["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=51).collect::<Vec<u64>>());
}

#[tokio::test]
async fn list_pull_requests_does_not_follow_next_to_another_origin() {
    let (app, vendor, key) = setup().await;
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"values": [{"id": 99}]})))
        .expect(0)
        .mount(&elsewhere)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests"))
        .and(query_param("pagelen", "50"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"id": 1}],
            "next": format!("{}/2.0/repositories/acme/web-app/pullrequests?page=2", elsewhere.uri())
        })))
        .expect(1)
        .mount(&vendor)
        .await;
    let response = app
        .post(
            "/v1/tools/bitbucket_list_pull_requests",
            &key,
            json!({"repo_slug": "web-app", "limit": 500}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["values"], json!([{"id": 1}]));
}

#[tokio::test]
async fn create_pr_comment_posts_the_raw_content() {
    let (app, vendor, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests/42/comments"))
        .and(header("authorization", BEARER))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"content": {"raw": "Looks good"}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"id": 7, "content": {"raw": "Looks good", "html": "<p>Looks good</p>"}, "links": {}}),
        ))
        .expect(1)
        .mount(&vendor)
        .await;
    let response = app
        .post(
            "/v1/tools/bitbucket_create_pr_comment",
            &key,
            json!({"repo_slug": "web-app", "pull_request_id": 42, "text": "Looks good"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["id"], 7);
}

#[tokio::test]
async fn vendor_errors_are_upstream_errors_with_bitbuckets_message() {
    let (app, vendor, key) = setup().await;
    let body = json!({"type": "error", "error": {"message": "Repository acme/gone not found"}});
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(body.clone()))
        .expect(1)
        .mount(&vendor)
        .await;
    let response = app
        .post("/v1/tools/bitbucket_get_repository", &key, json!({"repo_slug": "gone"}))
        .await;
    let problem = response.assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 404);
    assert_eq!(problem["upstream_errors"]["body"], body);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Repository acme/gone not found"),
        "{problem}"
    );
}

#[tokio::test]
async fn rate_limits_are_reported_with_retry_after() {
    let (app, vendor, key) = setup().await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web-app/pullrequests"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .expect(1)
        .mount(&vendor)
        .await;
    let response = app
        .post(
            "/v1/tools/bitbucket_list_pull_requests",
            &key,
            json!({"repo_slug": "web-app"}),
        )
        .await;
    let problem = response.assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 429);
    assert_eq!(problem["upstream_errors"]["retry_after"], 120);
    // Longer than the call's deadline allows: not waited for, the call ends at once.
    assert_eq!(problem["retry_after"], 120);
}

#[tokio::test]
async fn install_is_refused_naming_the_credential_field_when_bitbucket_rejects_it() {
    for (auth, authorization, field) in [
        (
            Auth::AccessToken("revoked"),
            "Bearer revoked".to_owned(),
            "access_token",
        ),
        (Auth::EmailAndApiToken("revoked"), basic("revoked"), "api_token"),
    ] {
        let app = TestApp::start().await;
        let vendor = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/2.0/repositories/acme"))
            .and(header("authorization", authorization.as_str()))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(json!({"type": "error", "error": {"message": "Token is invalid or expired"}})),
            )
            .expect(1)
            .mount(&vendor)
            .await;
        let key = app.tenant("acme", json!({})).await;
        let problem = install(&app, &key, &vendor, auth)
            .await
            .assert_problem(422, "invalid-config");
        assert_eq!(problem["errors"][0]["field"], field);
        assert!(problem.to_string().contains("Token is invalid or expired"), "{problem}");
        assert_eq!(
            app.get("/v1/plugins/bitbucket", &key).await.json()["state"],
            "not_installed"
        );
    }
}

#[tokio::test]
async fn install_is_refused_with_both_credential_forms() {
    let app = TestApp::start().await;
    let vendor = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&vendor)
        .await;
    let key = app.tenant("acme", json!({})).await;
    let config = json!({"workspace": "acme", "api_base_url": base(&vendor), "access_token": ACCESS_TOKEN, "email": EMAIL, "api_token": API_TOKEN});
    let problem = app
        .post("/v1/plugins/bitbucket/install", &key, config)
        .await
        .assert_problem(422, "invalid-config");
    assert_eq!(problem["errors"][0]["field"], "access_token");
}

fn delivery(signature: &str, request_uuid: &str, body: &[u8]) -> http::Request<Body> {
    http::Request::post("/v1/webhooks/bitbucket/acme")
        .header("content-type", "application/json")
        .header("x-hub-signature", signature)
        .header("x-event-key", "pullrequest:created")
        .header("x-request-uuid", request_uuid)
        .header("x-hook-uuid", "{0c3ff9b6-3b4e-4f36-9b2b-6c1b4c6f2c11}")
        .header("x-attempt-number", "1")
        .body(Body::from(body.to_vec()))
        .unwrap()
}

const EVENT: &[u8] =
    br#"{"pullrequest":{"id":42,"title":"Fix the printer"},"repository":{"full_name":"acme/web-app"}}"#;
const REQUEST_UUID: &str = "5b4c7a1e-2a9b-4a39-8c6e-6a1f0b7f1d22";

#[tokio::test]
async fn signed_webhooks_are_stored_once_per_request_uuid() {
    let (app, _vendor, key) = setup().await;
    let signed = integrations_hub_signature::sign(WEBHOOK_SECRET, EVENT);
    let first = app.send(delivery(&signed, REQUEST_UUID, EVENT)).await;
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(first.json()["duplicate"], false);
    let retry = app.send(delivery(&signed, REQUEST_UUID, EVENT)).await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.json()["duplicate"], true);
    let stored = app
        .store()
        .list_webhook_deliveries("acme", Some("bitbucket"), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].delivery_id, REQUEST_UUID);
    assert_eq!(stored[0].event_type.as_deref(), Some("pullrequest:created"));
    assert_eq!(stored[0].payload, EVENT);
    let events = app.get("/v1/webhook-events?plugin=bitbucket", &key).await.json();
    assert_eq!(events["events"][0]["payload"]["pullrequest"]["id"], 42);
}

#[tokio::test]
async fn bad_signatures_are_the_uniform_refusal() {
    let (app, _vendor, _key) = setup().await;
    let wrong = integrations_hub_signature::sign("not-the-secret", EVENT);
    app.send(delivery(&wrong, REQUEST_UUID, EVENT))
        .await
        .assert_problem(404, "webhook-rejected");
    // A signature over another body does not carry over.
    let other = integrations_hub_signature::sign(WEBHOOK_SECRET, br#"{"pullrequest":{"id":1}}"#);
    app.send(delivery(&other, REQUEST_UUID, EVENT))
        .await
        .assert_problem(404, "webhook-rejected");
    assert!(app
        .store()
        .list_webhook_deliveries("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
}
