//! A tool against a mock Bitbucket: method, percent-encoded path and Authorization exactly as sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use integrations_core::{Plugin, PluginConfig, PluginContext, Secret, ToolError};
use integrations_plugin_bitbucket::BitbucketPlugin;
use serde_json::{json, Map};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn context(api_base_url: &str) -> PluginContext {
    context_with_pages(api_base_url, PluginContext::DEFAULT_MAX_PAGES)
}

/// The installation's context under a host page cap of `max_pages`.
fn context_with_pages(api_base_url: &str, max_pages: usize) -> PluginContext {
    let mut values = Map::new();
    values.insert("api_base_url".into(), json!(api_base_url));
    values.insert("workspace".into(), json!("acme team"));
    let mut secrets = BTreeMap::new();
    secrets.insert("access_token".to_owned(), Secret::new("t0ken"));
    PluginContext {
        tenant_id: "tenant-1".into(),
        config: Arc::new(PluginConfig::new(values, secrets)),
        http: Arc::new(integrations_testing::ReqwestHttpClient::new()),
        tokens: Arc::new(integrations_core::NoTokenProvider),
        max_pages,
    }
}

#[tokio::test]
async fn get_repository_sends_a_bearer_get_with_percent_encoded_segments() {
    let vendor = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme%20team/web%2Fapp"))
        .and(header("authorization", "Bearer t0ken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"slug": "web-app"})))
        .expect(1)
        .mount(&vendor)
        .await;

    let result = BitbucketPlugin::new()
        .call_tool(
            &context(&format!("{}/2.0", vendor.uri())),
            "bitbucket_get_repository",
            json!({"repo_slug": "web/app"}),
        )
        .await
        .expect("tool succeeds");

    assert_eq!(result, json!({"slug": "web-app"}));
}

#[tokio::test]
async fn a_vendor_error_carries_its_status_and_bitbucket_message() {
    let vendor = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({"type": "error", "error": {"message": "down for maintenance"}})),
        )
        .mount(&vendor)
        .await;

    let error = BitbucketPlugin::new()
        .call_tool(
            &context(&vendor.uri()),
            "bitbucket_get_repository",
            json!({"repo_slug": "r"}),
        )
        .await
        .expect_err("a 503 is a failure");

    assert!(
        matches!(&error, ToolError::Upstream { status: 503, message, .. } if message == "down for maintenance"),
        "{error:?}"
    );
}

/// A page of pull requests with `ids` and, when given, a `next` URL.
fn pull_requests_page(ids: &[u64], next: Option<String>) -> ResponseTemplate {
    let values: Vec<_> = ids.iter().map(|id| json!({"id": id})).collect();
    let mut page = json!({"values": values});
    if let Some(next) = next {
        page["next"] = json!(next);
    }
    ResponseTemplate::new(200).set_body_json(page)
}

fn pull_request_ids(result: &serde_json::Value) -> Vec<u64> {
    result["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|pr| pr["id"].as_u64().expect("id"))
        .collect()
}

const PULL_REQUESTS: &str = "/2.0/repositories/acme%20team/web/pullrequests";

#[tokio::test]
async fn list_pull_requests_follows_short_pages_until_limit() {
    let vendor = MockServer::start().await;
    let page = |n: u32| format!("{}{PULL_REQUESTS}?state=OPEN&pagelen=3&page={n}", vendor.uri());
    // Asked for 3 a page, Bitbucket answers 2 and `next`: the third comes from the next page.
    Mock::given(method("GET"))
        .and(path(PULL_REQUESTS))
        .and(header("authorization", "Bearer t0ken"))
        .and(query_param("state", "OPEN"))
        .and(query_param("pagelen", "3"))
        .and(query_param_is_missing("page"))
        .respond_with(pull_requests_page(&[1, 2], Some(page(2))))
        .expect(1)
        .mount(&vendor)
        .await;
    Mock::given(method("GET"))
        .and(path(PULL_REQUESTS))
        .and(header("authorization", "Bearer t0ken"))
        .and(query_param("page", "2"))
        .respond_with(pull_requests_page(&[3], Some(page(3))))
        .expect(1)
        .mount(&vendor)
        .await;

    let result = BitbucketPlugin::new()
        .call_tool(
            &context(&format!("{}/2.0", vendor.uri())),
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "web", "state": "OPEN", "limit": 3}),
        )
        .await
        .expect("tool succeeds");

    assert_eq!(pull_request_ids(&result), [1, 2, 3]);
    assert_eq!(result["next"], json!(page(3)));
    let requests = vendor.received_requests().await.expect("recorded");
    assert_eq!(requests[0].url.query(), Some("state=OPEN&pagelen=3"));
}

#[tokio::test]
async fn list_pull_requests_stops_at_the_hosts_page_cap_with_next() {
    let vendor = MockServer::start().await;
    let more = format!("{}{PULL_REQUESTS}?pagelen=50&page=more", vendor.uri());
    // One pull request a page and always a `next`: a chain without end.
    Mock::given(method("GET"))
        .and(path(PULL_REQUESTS))
        .and(query_param("pagelen", "50"))
        .and(query_param_is_missing("page"))
        .respond_with(pull_requests_page(&[1], Some(more.clone())))
        .expect(1)
        .mount(&vendor)
        .await;
    Mock::given(method("GET"))
        .and(path(PULL_REQUESTS))
        .and(query_param("page", "more"))
        .respond_with(pull_requests_page(&[2], Some(more.clone())))
        .expect(2)
        .mount(&vendor)
        .await;

    let result = BitbucketPlugin::new()
        .call_tool(
            &context_with_pages(&format!("{}/2.0", vendor.uri()), 3),
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "web", "limit": 500}),
        )
        .await
        .expect("tool succeeds");

    assert_eq!(pull_request_ids(&result), [1, 2, 2]);
    assert_eq!(result["next"], json!(more));
}

#[test]
fn registers_itself_with_the_host() {
    let registry = integrations_core::PluginRegistry::linked().expect("valid registry");
    assert!(registry.get("bitbucket").is_some());
    assert!(registry.find_tool("bitbucket_list_pull_requests").is_some());
}
