//! Tool calls as background jobs: `?async=true`, retries with backoff, dead letters, retry, and
//! the tenant's view of its jobs.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::TestApp;

const TOKEN: &str = "fake-bot-token";

/// Slack installed for `acme`, jobs retried after 50 ms, 100 ms, … and dead after 3 attempts.
async fn setup() -> (TestApp, MockServer, String) {
    let app = TestApp::start_with(|config| {
        config.job_max_attempts = 3;
        config.job_backoff_base = Duration::from_millis(50);
    })
    .await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "team_id": "T1"})))
        .mount(&slack)
        .await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_slack(&key, &slack.uri(), TOKEN, None).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, slack, key)
}

fn post_message() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"channel": "C123", "text": "hi"})))
}

fn posted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "C123", "ts": "1.2"}))
}

async fn queue(app: &TestApp, key: &str) -> String {
    let response = app
        .post(
            "/v1/tools/slack_send_message?async=true",
            key,
            json!({"channel": "C123", "text": "hi"}),
        )
        .await;
    assert_eq!(response.status, 202, "{}", response.text());
    let id = response.json()["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(
        response.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/v1/jobs/{id}").as_str())
    );
    id
}

async fn wait_for(app: &TestApp, key: &str, id: &str, state: &str) -> Value {
    let mut job = Value::Null;
    for _ in 0..200 {
        job = app.get(&format!("/v1/jobs/{id}"), key).await.json();
        if job["state"] == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job never became {state}: {job}");
}

#[tokio::test]
async fn an_async_tool_call_answers_202_and_its_job_holds_the_result() {
    let (app, slack, key) = setup().await;
    post_message().respond_with(posted()).expect(1).mount(&slack).await;
    let id = queue(&app, &key).await;
    let job = wait_for(&app, &key, &id, "succeeded").await;
    assert_eq!(job["kind"], "tool_call");
    assert_eq!(job["attempts"], 1);
    assert_eq!(
        job["request"],
        json!({"tool": "slack_send_message", "arguments": {"channel": "C123", "text": "hi"}})
    );
    assert_eq!(job["result"]["ts"], "1.2");
    assert_eq!(job["error"], Value::Null);
}

#[tokio::test]
async fn a_vendor_outage_is_retried_until_the_call_succeeds() {
    let (app, slack, key) = setup().await;
    // A 500 to a POST is not retried within the call (it may have been processed): the job
    // retries it, as a new attempt.
    post_message()
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&slack)
        .await;
    post_message().respond_with(posted()).expect(1).mount(&slack).await;
    let id = queue(&app, &key).await;
    let job = wait_for(&app, &key, &id, "succeeded").await;
    assert_eq!(job["attempts"], 3);
}

#[tokio::test]
async fn a_call_failing_every_attempt_is_dead_and_a_retry_runs_it_again() {
    let (app, slack, key) = setup().await;
    post_message()
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .mount(&slack)
        .await;
    let id = queue(&app, &key).await;
    let dead = wait_for(&app, &key, &id, "dead").await;
    assert_eq!(dead["attempts"], 3);
    assert_eq!(
        dead["error"]["type"],
        "https://integrations.dev/problems/upstream-error"
    );
    assert_eq!(dead["error"]["status"], 502);
    let listed = app.get("/v1/jobs?state=dead", &key).await.json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["jobs"][0]["id"], json!(id));

    post_message().respond_with(posted()).expect(1).mount(&slack).await;
    let retried = app.post(&format!("/v1/jobs/{id}/retry"), &key, json!({})).await;
    assert_eq!(retried.status, 202, "{}", retried.text());
    let job = wait_for(&app, &key, &id, "succeeded").await;
    assert_eq!(job["attempts"], 1);
    app.post(&format!("/v1/jobs/{id}/retry"), &key, json!({}))
        .await
        .assert_problem(409, "job-not-retryable");
}

#[tokio::test]
async fn a_refusal_no_retry_can_change_fails_after_one_attempt() {
    let (app, slack, key) = setup().await;
    post_message()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "channel_not_found"})))
        .expect(1)
        .mount(&slack)
        .await;
    let id = queue(&app, &key).await;
    let failed = wait_for(&app, &key, &id, "failed").await;
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["error"]["detail"], "channel_not_found");
}

#[tokio::test]
async fn a_call_the_synchronous_path_would_refuse_is_refused_before_it_is_queued() {
    let (app, _slack, key) = setup().await;
    app.post(
        "/v1/tools/slack_send_message?async=true",
        &key,
        json!({"channel": "C123"}),
    )
    .await
    .assert_problem(422, "invalid-arguments");
    app.post("/v1/tools/jira_get_issue?async=true", &key, json!({"issue": "A-1"}))
        .await
        .assert_problem(404, "tool-not-found");
    let listed = app.get("/v1/jobs", &key).await.json();
    assert_eq!(listed["jobs"], json!([]));
}

#[tokio::test]
async fn another_tenant_cannot_see_or_retry_a_job() {
    let (app, slack, key) = setup().await;
    post_message().respond_with(posted()).mount(&slack).await;
    let id = queue(&app, &key).await;
    wait_for(&app, &key, &id, "succeeded").await;
    let globex = app.tenant("globex", json!({})).await;
    app.get(&format!("/v1/jobs/{id}"), &globex)
        .await
        .assert_problem(404, "job-not-found");
    app.post(&format!("/v1/jobs/{id}/retry"), &globex, json!({}))
        .await
        .assert_problem(404, "job-not-found");
    assert_eq!(app.get("/v1/jobs", &globex).await.json()["jobs"], json!([]));
    app.get("/v1/jobs?state=zombie", &key)
        .await
        .assert_problem(422, "invalid-request");
}
