//! Limits a tenant's input or a tenant-chosen vendor cannot push past: the response budget, page
//! cap and deadline of a tool call, and the size of validation problems.

use std::time::Duration;

use integrations_service::MAX_REPORTED_ERRORS;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_server, TestApp};

async fn install(app: &TestApp) -> (MockServer, String) {
    let jira = jira_server().await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_jira(&key, &jira.uri(), "jira-api-token", None).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (jira, key)
}

/// A search page with one issue of `description_bytes` and, always, more to come.
fn endless_page(description_bytes: usize) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "issues": [{"key": "ABC-1", "fields": {"description": "x".repeat(description_bytes)}}],
        "nextPageToken": "more",
        "isLast": false
    }))
}

async fn search_requests(jira: &MockServer) -> usize {
    let requests = jira.received_requests().await.expect("requests are recorded");
    requests
        .iter()
        .filter(|r| r.url.path() == "/rest/api/3/search/jql")
        .count()
}

/// Searches with `max_results` against a Jira whose every page brings an issue of `padding`
/// bytes and says more will follow.
async fn search_endless_pages(
    app: &TestApp,
    jira: &MockServer,
    key: &str,
    padding: usize,
    max_results: u32,
) -> crate::harness::TestResponse {
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(endless_page(padding))
        .mount(jira)
        .await;
    app.post(
        "/v1/tools/jira_search_issues",
        key,
        json!({"jql": "order by created", "max_results": max_results}),
    )
    .await
}

#[tokio::test]
async fn search_against_a_hostile_jira_stops_at_the_response_budget() {
    let budget = 256 * 1024;
    let app = TestApp::start_with(|config| config.tool_response_budget_bytes = budget).await;
    let (jira, key) = install(&app).await;
    let response = search_endless_pages(&app, &jira, &key, 100 * 1024, 1000).await;
    let problem = response.assert_problem(502, "upstream-response-too-large");
    assert_eq!(problem["limit_bytes"], json!(budget));
    assert!(
        problem["detail"].as_str().unwrap().contains(&budget.to_string()),
        "{problem}"
    );
    // Two pages fit in the budget; the third passes it and ends the call.
    assert_eq!(search_requests(&jira).await, 3);
}

#[tokio::test]
async fn endless_short_pages_stop_at_the_operators_page_cap() {
    let app = TestApp::start_with(|config| config.tool_max_pages = 5).await;
    let (jira, key) = install(&app).await;
    let response = search_endless_pages(&app, &jira, &key, 10, 150).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = &response.json()["result"];
    assert_eq!(result["is_last"], false);
    assert_eq!(result["next_page_token"], "more");
    // Short pages with a token are followed while issues are still wanted, up to the cap.
    assert_eq!(search_requests(&jira).await, 5);
}

#[tokio::test]
async fn a_tool_call_past_its_deadline_is_a_504() {
    let app = TestApp::start_with(|config| config.tool_deadline = Duration::from_secs(1)).await;
    let (jira, key) = install(&app).await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&jira)
        .await;
    let response = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
        .await;
    let problem = response.assert_problem(504, "tool-deadline-exceeded");
    assert!(problem["detail"].as_str().unwrap().contains("1 seconds"), "{problem}");
}

#[tokio::test]
async fn a_huge_wrong_argument_array_gets_a_small_422() {
    let app = TestApp::start().await;
    let (_jira, key) = install(&app).await;
    let items = 100_000;
    let response = app
        .post(
            "/v1/tools/jira_get_issue",
            &key,
            json!({"issue_key": "ABC-1", "fields": vec![1; items]}),
        )
        .await;
    assert!(response.body.len() < 8 * 1024, "{} bytes", response.body.len());
    let problem = response.assert_problem(422, "invalid-arguments");
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
    assert!(
        errors.iter().all(|e| e["message"] == "must be of type string"),
        "{problem}"
    );
    assert_eq!(problem["errors_omitted"], json!(items - MAX_REPORTED_ERRORS));
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .ends_with(&format!("and {} more", items - 3)),
        "{problem}"
    );
}

#[tokio::test]
async fn a_config_with_many_unknown_fields_gets_a_small_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let mut config = json!({"host": "http://127.0.0.1:1", "email": "bot@example.com", "api_token": "t"});
    for n in 0..1000 {
        config[format!("unknown_{n}")] = Value::Bool(true);
    }
    let response = app.post("/v1/plugins/jira/install", &key, config).await;
    let problem = response.assert_problem(422, "invalid-config");
    assert_eq!(problem["errors"].as_array().unwrap().len(), MAX_REPORTED_ERRORS);
    assert_eq!(problem["errors_omitted"], json!(1000 - MAX_REPORTED_ERRORS));
}
