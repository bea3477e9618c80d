//! The requests the Jira connector sends, checked against Atlassian's own OpenAPI description
//! (`shared/vendor-specs/jira-cloud-platform-v3.json`): each must name a documented operation, use
//! only documented query parameters and a declared auth scheme, and carry a body valid under the
//! operation's request schema with no property the schema does not declare.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::contract::{self, Exceptions};
use crate::harness::{mount_jira_myself, TestApp};

#[tokio::test]
async fn every_request_matches_the_vendor_openapi_description() {
    let Some(spec) = contract::load_spec("jira-cloud-platform-v3.json", contract::json) else {
        return;
    };
    let app = TestApp::start().await;
    let jira = MockServer::start().await;
    mount_jira_myself(&jira).await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "1", "key": "ABC-1", "self": "x"})))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "key": "ABC-1"})))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(wiremock::matchers::body_partial_json(json!({"nextPageToken": "p2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": [{"key": "ABC-2"}], "isLast": true})))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issues": [{"key": "ABC-1"}], "nextPageToken": "p2", "isLast": false})),
        )
        .mount(&jira)
        .await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", None).await.status, 201);
    let calls = [
        (
            "jira_create_issue",
            json!({"project": "ABC", "summary": "S", "description": "one\ntwo\n\nthree", "issue_type": "Bug"}),
        ),
        (
            "jira_get_issue",
            json!({"issue_key": "ABC-1", "fields": ["summary", "status"]}),
        ),
        (
            "jira_search_issues",
            // More than one page's worth, so the request with a page token is made (and checked) too.
            json!({"jql": "project = ABC", "max_results": 101, "fields": ["summary"]}),
        ),
    ];
    for (tool, arguments) in calls {
        let response = app.post(&format!("/v1/tools/{tool}"), &key, arguments).await;
        assert_eq!(response.status, 200, "{tool}: {}", response.text());
    }
    let requests = jira.received_requests().await.expect("recording");
    // The credential check (`myself`) at install, then the four tool requests.
    assert_eq!(requests.len(), 5);
    for request in &requests {
        // Atlassian's description is followed without exception.
        contract::check_request(&spec, request, &Exceptions::default());
    }
}
