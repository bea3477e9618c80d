//! `Idempotency-Key` on tool calls: the vendor is called once per key, whoever retries, and the
//! first response is replayed.

use std::time::Duration;

use axum::body::Body;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_server, TestApp, TestResponse};

const CREATE: &str = "/v1/tools/jira_create_issue";

fn issue_body() -> Value {
    json!({"project": "ABC", "summary": "Printer on fire"})
}

async fn setup(configure: impl FnOnce(&mut integrations::Config)) -> (TestApp, MockServer, String) {
    let app = TestApp::start_with(configure).await;
    let jira = jira_server().await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", None).await.status, 201);
    (app, jira, key)
}

fn created(delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .set_body_json(json!({"id": "10000", "key": "ABC-24", "self": "https://jira.example/rest/api/3/issue/10000"}))
        .set_delay(delay)
}

async fn call_with_key(app: &TestApp, api_key: &str, path: &str, idempotency_key: &str, body: &Value) -> TestResponse {
    let request = http::Request::post(path)
        .header("authorization", format!("Bearer {api_key}"))
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency_key)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(request).await
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_response_and_calls_the_vendor_once() {
    let (app, jira, key) = setup(|_| {}).await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(created(Duration::ZERO))
        .expect(1)
        .mount(&jira)
        .await;
    let first = call_with_key(&app, &key, CREATE, "create-24", &issue_body()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = call_with_key(&app, &key, CREATE, "create-24", &issue_body()).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.headers["content-type"], "application/json");
    assert_eq!(again.body, first.body);

    // The same key with another body is refused; another tenant's same key is its own.
    let other = call_with_key(
        &app,
        &key,
        CREATE,
        "create-24",
        &json!({"project": "ABC", "summary": "Other"}),
    )
    .await;
    other.assert_problem(422, "idempotency-key-reused");
    let globex = app.tenant("globex", json!({})).await;
    assert_eq!(app.install_jira(&globex, &jira.uri(), "t", None).await.status, 201);
    jira.reset().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(created(Duration::ZERO))
        .expect(1)
        .mount(&jira)
        .await;
    let theirs = call_with_key(&app, &globex, CREATE, "create-24", &issue_body()).await;
    assert_eq!(theirs.status, 200, "{}", theirs.text());
    assert!(theirs.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn requests_arriving_while_the_first_runs_wait_for_its_response() {
    let (app, jira, key) = setup(|_| {}).await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(created(Duration::from_millis(800)))
        .expect(1)
        .mount(&jira)
        .await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (router, key) = (app.router.clone(), key.clone());
            tokio::spawn(async move {
                use tower::ServiceExt;
                let request = http::Request::post(CREATE)
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .header("idempotency-key", "burst")
                    .body(Body::from(issue_body().to_string()))
                    .unwrap();
                let response = router.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
                (status, bytes)
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]));
}

#[tokio::test]
async fn a_failure_of_ours_is_not_kept_so_the_client_may_retry() {
    let (app, jira, key) = setup(|config| config.tool_deadline = Duration::from_secs(1)).await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(created(Duration::from_secs(3)))
        .up_to_n_times(1)
        .mount(&jira)
        .await;
    let timed_out = call_with_key(&app, &key, CREATE, "slow", &issue_body()).await;
    timed_out.assert_problem(504, "tool-deadline-exceeded");
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(created(Duration::ZERO))
        .mount(&jira)
        .await;
    let retried = call_with_key(&app, &key, CREATE, "slow", &issue_body()).await;
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert!(retried.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_vendors_error_is_an_answer_and_is_replayed() {
    let (app, jira, key) = setup(|_| {}).await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&jira)
        .await;
    let failed = call_with_key(&app, &key, CREATE, "vendor-500", &issue_body()).await;
    failed.assert_problem(502, "upstream-error");
    let replayed = call_with_key(&app, &key, CREATE, "vendor-500", &issue_body()).await;
    replayed.assert_problem(502, "upstream-error");
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_queued_call_with_the_same_key_is_the_same_job() {
    let (app, jira, key) = setup(|_| {}).await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(created(Duration::ZERO))
        .mount(&jira)
        .await;
    let path = format!("{CREATE}?async=true");
    let first = call_with_key(&app, &key, &path, "job-1", &issue_body()).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let again = call_with_key(&app, &key, &path, "job-1", &issue_body()).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["job_id"], first.json()["job_id"]);
    assert_eq!(again.headers["location"], first.headers["location"]);
    // The synchronous call is another request.
    call_with_key(&app, &key, CREATE, "job-1", &issue_body())
        .await
        .assert_problem(422, "idempotency-key-reused");
}

#[tokio::test]
async fn malformed_keys_are_400() {
    let (app, _jira, key) = setup(|_| {}).await;
    for bad in ["x".repeat(256), "tab\there".to_owned(), String::new()] {
        call_with_key(&app, &key, CREATE, &bad, &issue_body())
            .await
            .assert_problem(400, "invalid-idempotency-key");
    }
    let twice = http::Request::post(CREATE)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(Body::from(issue_body().to_string()))
        .unwrap();
    app.send(twice).await.assert_problem(400, "invalid-idempotency-key");
    let longest = "k".repeat(255);
    assert_ne!(
        call_with_key(&app, &key, CREATE, &longest, &issue_body()).await.status,
        400
    );
}
