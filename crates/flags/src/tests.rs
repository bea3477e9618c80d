use std::time::Duration;

use serde_json::{json, Map, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const DOCUMENT: &str = include_str!("../testdata/environment.json");

fn traits(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[test]
fn segment_on_a_trait_decides_the_plugin() {
    let flags = Flags::from_document(DOCUMENT).unwrap();
    assert!(flags.plugin_allowed("acme", &traits(json!({"plan": "pro"})), "jira"));
    assert!(!flags.plugin_allowed("acme", &traits(json!({"plan": "free"})), "jira"));
    assert!(!flags.plugin_allowed("acme", &Map::new(), "jira"));
    // A plugin with no feature in the document is allowed.
    assert!(flags.plugin_allowed("acme", &Map::new(), "slack"));
}

#[test]
fn no_document_allows_everything_and_bad_document_is_an_error() {
    assert!(Flags::allow_all().plugin_allowed("acme", &Map::new(), "jira"));
    assert!(matches!(
        Flags::from_document("{\"not\": \"a document\"}"),
        Err(FlagsError::InvalidDocument(_))
    ));
}

#[tokio::test]
async fn polls_the_server_and_keeps_the_last_good_document() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/environment-document/"))
        .and(header("X-Environment-Key", "ser.test"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(DOCUMENT, "application/json"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/environment-document/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{broken", "application/json"))
        .mount(&server)
        .await;
    let config = FlagsmithServer::new(
        &format!("{}/api/v1", server.uri()),
        "ser.test",
        Duration::from_millis(50),
    )
    .unwrap();
    let flags = Flags::from_server(config).await;
    let pro = traits(json!({"plan": "pro"}));
    assert!(flags.plugin_allowed("acme", &pro, "jira"));
    assert!(!flags.plugin_allowed("acme", &Map::new(), "jira"));
    // Let several polls answer with a broken document; the good one stays.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.received_requests().await.unwrap_or_default().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server was not polled again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(flags.plugin_allowed("acme", &pro, "jira"));
    assert!(!flags.plugin_allowed("acme", &Map::new(), "jira"));
}

#[tokio::test]
async fn unreachable_server_denies_until_a_document_arrives() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let config = FlagsmithServer::new(&server.uri(), "ser.test", Duration::from_secs(60)).unwrap();
    let flags = Flags::from_server(config).await;
    assert!(!flags.plugin_allowed("acme", &Map::new(), "slack"));
}

#[tokio::test]
async fn records_plugin_state_as_an_identity_trait() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(DOCUMENT, "application/json"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/identities/"))
        .and(header("X-Environment-Key", "ser.test"))
        .and(body_json(
            json!({"identifier": "acme", "traits": [{"trait_key": "plugin.jira", "trait_value": false}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"flags": [], "traits": []})))
        .expect(1)
        .mount(&server)
        .await;
    let config = FlagsmithServer::new(
        &format!("{}/api/v1/", server.uri()),
        "ser.test",
        Duration::from_secs(60),
    )
    .unwrap();
    let flags = Flags::from_server(config).await;
    flags.record_plugin_state("acme", "jira", false).await.unwrap();
    // Without a server there is nothing to record.
    Flags::allow_all()
        .record_plugin_state("acme", "jira", true)
        .await
        .unwrap();
}

#[test]
fn malformed_documents_are_errors_not_panics() {
    let mut document: Value = serde_json::from_str(DOCUMENT).unwrap();
    document["identity_overrides"] =
        json!([{"identifier": "x", "environment_api_key": "k", "created_date": "not a date"}]);
    assert!(Flags::from_document(&document.to_string()).is_err());
}

#[test]
fn huge_integer_traits_do_not_panic() {
    let flags = Flags::from_document(DOCUMENT).unwrap();
    // Evaluation runs the trait through every segment; a panic would deny, so expect an allow.
    assert!(flags.plugin_allowed("acme", &traits(json!({"plan": u64::MAX})), "slack"));
    assert!(!flags.plugin_allowed("acme", &traits(json!({"plan": u64::MAX})), "jira"));
}
