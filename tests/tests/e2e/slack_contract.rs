//! The requests the Slack connector sends, checked against Slack's own OpenAPI (Swagger 2.0)
//! description (`shared/vendor-specs/slack-web-api-v2.json`): each must name a documented
//! operation, use only documented query parameters, and send a JSON body only where the operation
//! consumes JSON, with only the operation's documented arguments and all its required ones.

use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::contract::{self, names_in};
use crate::harness::TestApp;

/// Calls the v2 description documents with another HTTP method than the one sent. `auth.test` is
/// documented there as GET only, while Slack's method reference (and `vendor-facts.md`) gives
/// `POST https://slack.com/api/auth.test`; the Web API accepts both.
const METHOD_EXCEPTIONS: &[(&str, &str)] = &[("POST", "/auth.test")];

/// The documented operation for a request path relative to the spec's `basePath` (`/api`).
fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let item = spec["paths"]
        .get(path)
        .unwrap_or_else(|| panic!("{path} is not a documented Web API method"));
    let documented = item.get(method.to_lowercase());
    match documented {
        Some(operation) => operation,
        None if METHOD_EXCEPTIONS.contains(&(method, path)) => item
            .as_object()
            .and_then(|methods| methods.values().next())
            .expect("an operation"),
        None => panic!("{method} {path} is not documented"),
    }
}

fn check_request(spec: &Value, request: &wiremock::Request) {
    let method = request.method.as_str();
    let path = request.url.path();
    let operation = operation(spec, method, path);
    assert!(
        operation.get("deprecated") != Some(&json!(true)),
        "{method} {path} is deprecated"
    );
    let parameters: Vec<&Value> = operation["parameters"].as_array().into_iter().flatten().collect();
    for (name, _) in request.url.query_pairs() {
        assert!(
            names_in(&parameters, "query").contains(&name.as_ref()),
            "{method} {path}: query parameter {name} is not documented"
        );
    }
    // The token is documented as a `token` argument; sent as a bearer header, as Slack recommends.
    assert!(
        contract::authorization(request).starts_with("Bearer "),
        "{method} {path}: no bearer token"
    );
    if request.body.is_empty() {
        return;
    }
    let consumes: Vec<&str> = operation["consumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        consumes.contains(&"application/json"),
        "{method} {path} does not take JSON"
    );
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    let arguments = body.as_object().expect("a JSON object body");
    let documented = names_in(&parameters, "formData");
    for name in arguments.keys() {
        assert!(
            documented.contains(&name.as_str()),
            "{method} {path}: argument {name} is not documented"
        );
    }
    for required in parameters
        .iter()
        .filter(|p| p["in"] == "formData" && p["required"] == true)
        .filter_map(|p| p["name"].as_str())
    {
        assert!(
            arguments.contains_key(required),
            "{method} {path}: required argument {required} is missing"
        );
    }
}

#[tokio::test]
async fn every_request_matches_the_vendor_openapi_description() {
    let Some(spec) = contract::load_spec("slack-web-api-v2.json", contract::json) else {
        return;
    };
    let app = TestApp::start().await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "team_id": "T1"})))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "C1", "ts": "1.2"})))
        .mount(&slack)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(query_param("cursor", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "channels": [{"id": "C2", "name": "b"}], "response_metadata": {"next_cursor": ""}}),
        ))
        .mount(&slack)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "channels": [{"id": "C1", "name": "a"}], "response_metadata": {"next_cursor": "p2"}}),
        ))
        .mount(&slack)
        .await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(
        app.install_slack(&key, &slack.uri(), "fake-token", None).await.status,
        201
    );
    let calls = [
        ("slack_send_message", json!({"channel": "C1", "text": "hi"})),
        (
            "slack_list_channels",
            // More than one page's worth, so the request with a cursor is made (and checked) too.
            json!({"types": "public_channel", "limit": 201, "exclude_archived": true}),
        ),
    ];
    for (tool, arguments) in calls {
        let response = app.post(&format!("/v1/tools/{tool}"), &key, arguments).await;
        assert_eq!(response.status, 200, "{tool}: {}", response.text());
    }
    let requests = slack.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 4);
    for request in &requests {
        check_request(&spec, request);
    }
}
