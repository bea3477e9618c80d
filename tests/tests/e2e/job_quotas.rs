//! What one tenant's background jobs may hold: its limit of queued jobs, set by the operator.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{TestApp, ADMIN_TOKEN};

/// Slack installed for `acme` against a Slack that is down: a queued call fails its first attempt
/// and waits an hour for the next, so it stays queued.
async fn slack_down() -> (TestApp, MockServer, String) {
    let app = TestApp::start_with(|config| config.job_backoff_base = Duration::from_secs(3600)).await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "team_id": "T1"})))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&slack)
        .await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_slack(&key, &slack.uri(), "fake-bot-token", None).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, slack, key)
}

async fn set_max_queued_jobs(app: &TestApp, limit: u32) {
    let body = json!({"max_queued_jobs": limit}).to_string().into_bytes();
    let patched = app
        .call("PATCH", "/v1/admin/tenants/acme", Some(ADMIN_TOKEN), Some(body))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
}

async fn queue_call(app: &TestApp, key: &str) -> crate::harness::TestResponse {
    app.post(
        "/v1/tools/slack_send_message?async=true",
        key,
        json!({"channel": "C123", "text": "hi"}),
    )
    .await
}

#[tokio::test]
async fn a_tenant_at_its_limit_of_queued_jobs_is_answered_429_until_it_has_room() {
    let (app, _slack, key) = slack_down().await;
    set_max_queued_jobs(&app, 2).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let queued = queue_call(&app, &key).await;
        assert_eq!(queued.status, 202, "{}", queued.text());
        ids.push(queued.json()["job_id"].as_str().expect("job_id").to_owned());
    }
    let refused = queue_call(&app, &key).await;
    let problem = refused.assert_problem(429, "too-many-queued-jobs");
    assert_eq!(problem["limit"], 2);
    assert_eq!(
        refused.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let listed = app.get("/v1/jobs", &key).await.json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(2), "{listed}");

    // A higher limit makes room at once.
    set_max_queued_jobs(&app, 3).await;
    assert_eq!(queue_call(&app, &key).await.status, 202);
    queue_call(&app, &key).await.assert_problem(429, "too-many-queued-jobs");
}

#[tokio::test]
async fn a_page_of_jobs_holds_at_most_4_mib_and_the_next_continues() {
    let (app, _slack, key) = slack_down().await;
    let padding = "x".repeat(900 * 1024);
    let mut queued = Vec::new();
    for n in 0..6 {
        let request = json!({"tool": "no_such_tool", "arguments": {"n": n, "padding": padding}});
        let id = app
            .service
            .job_queue()
            .enqueue("acme", "tool_call", &request)
            .await
            .expect("queued");
        queued.push(id);
    }
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(before) => format!("/v1/jobs?limit=500&before={before}"),
            None => "/v1/jobs?limit=500".to_owned(),
        };
        let response = app.get(&path, &key).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(
            response.body.len() <= 4 * 1024 * 1024 + 64 * 1024,
            "a page of {} bytes",
            response.body.len()
        );
        let page = response.json();
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.is_empty() {
            break;
        }
        before = page["next"].as_str().map(str::to_owned);
        pages.push(jobs);
    }
    // Four requests of 900 KiB fit in 4 MiB; a fifth would not.
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [4, 2]);
    let listed: Vec<&str> = pages.iter().flatten().filter_map(|job| job["id"].as_str()).collect();
    queued.reverse();
    assert_eq!(listed, queued, "every job once, newest first");
    assert_eq!(
        pages[0][0]["request"]["arguments"]["padding"].as_str().map(str::len),
        Some(padding.len())
    );
}

#[tokio::test]
async fn a_jobs_request_is_written_out_as_it_was_stored() {
    let (app, _slack, key) = slack_down().await;
    // A number no f64 holds exactly: parsing the request to write it out again would round it.
    let job = integrations_store::NewJob {
        id: "job_0000000000000000000000000000e8ac".into(),
        tenant_id: "acme".into(),
        kind: "tool_call".into(),
        payload: r#"{"tool":"no_such_tool","arguments":{"n":123456789012345678901234567890}}"#.into(),
        max_attempts: 1,
    };
    assert!(app.store().enqueue_job(&job, 0, u32::MAX).await.expect("stored"));
    for path in ["/v1/jobs", "/v1/jobs/job_0000000000000000000000000000e8ac"] {
        let response = app.get(path, &key).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(
            response.text().contains(r#""n":123456789012345678901234567890"#),
            "{}",
            response.text()
        );
    }
}
