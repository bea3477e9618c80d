//! A tool against a mock Bitbucket: method, percent-encoded path and Authorization exactly as sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use integrations_core::{Plugin, PluginConfig, PluginContext, Secret, ToolError};
use integrations_plugin_bitbucket::BitbucketPlugin;
use serde_json::{json, Map};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn context(api_base_url: &str) -> PluginContext {
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

#[test]
fn registers_itself_with_the_host() {
    let registry = integrations_core::PluginRegistry::linked().expect("valid registry");
    assert!(registry.get("bitbucket").is_some());
    assert!(registry.find_tool("bitbucket_list_pull_requests").is_some());
}
