//! Vendor calls that survive their vendors: retries in the host's client (which requests, how
//! many, how long apart), and each tenant's circuit breaker per upstream host.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_server, mount_jira_myself, TestApp, JIRA_EMAIL};

async fn app_with_jira(configure: impl FnOnce(&mut integrations::Config)) -> (TestApp, MockServer, String) {
    let app = TestApp::start_with(configure).await;
    let jira = jira_server().await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", None).await.status, 201);
    (app, jira, key)
}

/// Times at which Jira received requests for `path`.
async fn requests_to(jira: &MockServer, wanted: &str) -> usize {
    jira.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path() == wanted)
        .count()
}

fn issue() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": "7", "key": "ABC-7", "fields": {}}))
}

#[tokio::test]
async fn a_get_is_retried_after_503s_until_it_succeeds() {
    let (app, jira, key) = app_with_jira(|_| {}).await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(issue())
        .expect(1)
        .mount(&jira)
        .await;
    let found = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
        .await;
    assert_eq!(found.status, 200, "{}", found.text());
    assert_eq!(found.json()["result"]["key"], "ABC-7");
}

#[tokio::test]
async fn a_post_is_one_request_after_a_500_or_502_and_retried_after_a_503() {
    let (app, jira, key) = app_with_jira(|_| {}).await;
    let create = json!({"project": "ABC", "summary": "Printer on fire"});
    for status in [500, 502, 504] {
        jira.reset().await;
        crate::harness::mount_jira_myself(&jira).await;
        Mock::given(method("POST"))
            .and(path("/rest/api/3/issue"))
            .respond_with(ResponseTemplate::new(status))
            .expect(1)
            .mount(&jira)
            .await;
        let failed = app.post("/v1/tools/jira_create_issue", &key, create.clone()).await;
        assert_eq!(failed.assert_problem(502, "upstream-error")["upstream_status"], status);
        jira.verify().await;
    }
    // A 503 says the request was not processed: retried whatever the method, three attempts in all.
    jira.reset().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&jira)
        .await;
    let failed = app.post("/v1/tools/jira_create_issue", &key, create).await;
    assert_eq!(failed.assert_problem(502, "upstream-error")["upstream_status"], 503);
}

#[tokio::test]
async fn retry_after_is_waited_for_when_the_deadline_allows() {
    let (app, jira, key) = app_with_jira(|_| {}).await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(issue())
        .mount(&jira)
        .await;
    let started = Instant::now();
    let found = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
        .await;
    assert_eq!(found.status, 200, "{}", found.text());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "did not wait the second Jira asked for"
    );
    assert_eq!(requests_to(&jira, "/rest/api/3/issue/ABC-7").await, 2);
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_ends_the_call_at_once_with_the_wait() {
    let (app, jira, key) = app_with_jira(|config| config.tool_deadline = Duration::from_secs(10)).await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .expect(1)
        .mount(&jira)
        .await;
    let started = Instant::now();
    let limited = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
        .await;
    let problem = limited.assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 429);
    assert_eq!(problem["retry_after"], 3600);
    assert_eq!(limited.headers["retry-after"], "3600");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failing_upstream_opens_the_tenants_breaker_and_not_another_tenants_on_the_same_host() {
    let (app, jira, acme) = app_with_jira(|config| config.breakers.open_for = Duration::from_secs(2)).await;
    let globex = app.tenant("globex", json!({})).await;
    assert_eq!(app.install_jira(&globex, &jira.uri(), "t", None).await.status, 201);
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&jira)
        .await;
    // Install's credential check was the first request to the host; nine failed calls make ten
    // requests in the window, nine failed: the breaker opens (a 500 is not retried).
    for _ in 0..9 {
        let failed = app
            .post("/v1/tools/jira_get_issue", &acme, json!({"issue_key": "ABC-7"}))
            .await;
        failed.assert_problem(502, "upstream-error");
    }
    assert_eq!(requests_to(&jira, "/rest/api/3/issue/ABC-7").await, 9);
    let refused = app
        .post("/v1/tools/jira_get_issue", &acme, json!({"issue_key": "ABC-7"}))
        .await;
    refused.assert_problem(503, "upstream-unavailable");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        requests_to(&jira, "/rest/api/3/issue/ABC-7").await,
        9,
        "an open breaker made a request"
    );
    let details = app.get("/v1/plugins/jira", &acme).await.json();
    assert_eq!(details["upstream"]["state"], "open");
    assert!(details["upstream"]["retry_at"].is_string(), "{details}");

    // Another tenant on the same host is not touched.
    let other = app
        .post("/v1/tools/jira_get_issue", &globex, json!({"issue_key": "ABC-7"}))
        .await;
    other.assert_problem(502, "upstream-error");
    assert_eq!(requests_to(&jira, "/rest/api/3/issue/ABC-7").await, 10);
    assert_eq!(
        app.get("/v1/plugins/jira", &globex).await.json()["upstream"]["state"],
        "closed"
    );

    // After the rest, one probe goes through; Jira has recovered, so the breaker closes.
    jira.reset().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(issue())
        .mount(&jira)
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let recovered = app
        .post("/v1/tools/jira_get_issue", &acme, json!({"issue_key": "ABC-7"}))
        .await;
    assert_eq!(recovered.status, 200, "{}", recovered.text());
    let details = app.get("/v1/plugins/jira", &acme).await.json();
    assert_eq!(details["upstream"], json!({"state": "closed", "retry_at": null}));
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let (app, jira, key) = app_with_jira(|config| {
        config.breakers.open_for = Duration::from_secs(1);
        // Install's credential check and two failed calls: three requests, two failed.
        config.breakers.min_requests = 3;
    })
    .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&jira)
        .await;
    for _ in 0..2 {
        app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
            .await
            .assert_problem(502, "upstream-error");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
        .await
        .assert_problem(502, "upstream-error");
    assert_eq!(requests_to(&jira, "/rest/api/3/issue/ABC-7").await, 3, "one probe");
    app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
        .await
        .assert_problem(503, "upstream-unavailable");
    assert_eq!(requests_to(&jira, "/rest/api/3/issue/ABC-7").await, 3);
}

#[tokio::test]
async fn a_tenant_that_moves_to_another_site_is_not_held_back_by_the_old_sites_breaker() {
    let (app, old_site, key) = app_with_jira(|config| {
        config.outbound_allow_cidrs = "127.0.0.1/32,127.0.0.3/32".into();
    })
    .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&old_site)
        .await;
    for _ in 0..9 {
        app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
            .await
            .assert_problem(502, "upstream-error");
    }
    app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
        .await
        .assert_problem(503, "upstream-unavailable");

    // Another host (breakers are per host, not per port).
    let listener = std::net::TcpListener::bind("127.0.0.3:0").expect("bind 127.0.0.3");
    let new_site = MockServer::builder().listener(listener).start().await;
    mount_jira_myself(&new_site).await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .respond_with(issue())
        .mount(&new_site)
        .await;
    let configured = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": new_site.uri(), "email": JIRA_EMAIL, "api_token": "t"}),
        )
        .await;
    assert_eq!(configured.status, 200, "{}", configured.text());
    let moved = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-7"}))
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(requests_to(&new_site, "/rest/api/3/issue/ABC-7").await, 1);
    assert_eq!(requests_to(&old_site, "/rest/api/3/issue/ABC-7").await, 9);
}
