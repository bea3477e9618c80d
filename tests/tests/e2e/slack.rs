//! Every Slack tool, the install-time credential check and the Events API webhook, against a
//! wiremock Web API that expects exactly the documented request.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{slack_signature, TestApp};

const TOKEN: &str = "fake-bot-token";
const SIGNING_SECRET: &str = "slack-signing-secret";

/// An app with Slack installed for tenant `acme`; install's `auth.test` is asserted exactly once.
async fn setup() -> (TestApp, MockServer, String) {
    setup_with(|_| {}).await
}

/// Slack installed for tenant `acme` on a host whose config `adjust` changed.
async fn setup_with(adjust: impl FnOnce(&mut integrations::Config)) -> (TestApp, MockServer, String) {
    let app = TestApp::start_with(adjust).await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "team_id": "T1", "user_id": "U1", "bot_id": "B1"}),
        ))
        .expect(1)
        .mount(&slack)
        .await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_slack(&key, &slack.uri(), TOKEN, Some(SIGNING_SECRET)).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, slack, key)
}

#[tokio::test]
async fn send_message_posts_exactly_channel_and_text_with_the_bearer_token() {
    let (app, slack, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json; charset=utf-8"))
        .and(body_json(json!({"channel": "C123", "text": "Printer on fire"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "channel": "C123", "ts": "1503435956.000247", "message": {"text": "Printer on fire"}}),
        ))
        .expect(1)
        .mount(&slack)
        .await;
    let response = app
        .post(
            "/v1/tools/slack_send_message",
            &key,
            json!({"channel": "C123", "text": "Printer on fire"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["ts"], "1503435956.000247");
    let requests = slack.received_requests().await.unwrap();
    let post = requests.iter().find(|r| r.url.path() == "/chat.postMessage").unwrap();
    assert_eq!(post.url.query(), None);
}

#[tokio::test]
async fn list_channels_follows_next_cursor_across_pages() {
    let (app, slack, key) = setup().await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("types", "public_channel,private_channel"))
        .and(query_param("limit", "200"))
        .and(query_param("exclude_archived", "true"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [
                {"id": "C1", "name": "general", "is_private": false, "is_archived": false, "is_channel": true, "created": 1449252889},
                {"id": "C2", "name": "secret", "is_private": true, "is_archived": false}
            ],
            "response_metadata": {"next_cursor": "dGVhbTpDMDYxRkE1UEI="}
        })))
        .expect(1)
        .mount(&slack)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("types", "public_channel,private_channel"))
        .and(query_param("limit", "199"))
        .and(query_param("exclude_archived", "true"))
        .and(query_param("cursor", "dGVhbTpDMDYxRkE1UEI="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "C3", "name": "random", "is_private": false, "is_archived": false}],
            "response_metadata": {"next_cursor": ""}
        })))
        .expect(1)
        .mount(&slack)
        .await;
    let response = app
        .post(
            "/v1/tools/slack_list_channels",
            &key,
            // Two pages at most: the first brings 2 channels, the second is asked for the other 199.
            json!({"types": "public_channel,private_channel", "limit": 201, "exclude_archived": true}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["result"],
        json!({
            "channels": [
                {"id": "C1", "name": "general", "is_private": false, "is_archived": false},
                {"id": "C2", "name": "secret", "is_private": true, "is_archived": false},
                {"id": "C3", "name": "random", "is_private": false, "is_archived": false}
            ],
            "next_cursor": null
        })
    );
}

#[tokio::test]
async fn list_channels_asks_for_the_default_limit_and_invents_no_filter() {
    let (app, slack, key) = setup().await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "C1", "name": "general", "is_private": false, "is_archived": false}],
            "response_metadata": {"next_cursor": ""}
        })))
        .expect(1)
        .mount(&slack)
        .await;
    let response = app.post("/v1/tools/slack_list_channels", &key, json!({})).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["next_cursor"], json!(null));
    let requests = slack.received_requests().await.unwrap();
    let list = requests.iter().find(|r| r.url.path() == "/conversations.list").unwrap();
    // One page of up to 100 covers the default limit; no types or archive filter is invented.
    assert_eq!(list.url.query(), Some("limit=100"));
}

/// A `conversations.list` page with `channels` ids and `next_cursor`, for the request with `limit`
/// and `cursor` (none on the first request), answered exactly once.
async fn mount_channels_page(slack: &MockServer, limit: &str, cursor: Option<&str>, ids: &[&str], next_cursor: &str) {
    let channels: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "name": id.to_lowercase(), "is_private": false, "is_archived": false}))
        .collect();
    let mock = Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("limit", limit));
    let mock = match cursor {
        Some(cursor) => mock.and(query_param("cursor", cursor)),
        None => mock.and(query_param_is_missing("cursor")),
    };
    mock.respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "channels": channels, "response_metadata": {"next_cursor": next_cursor}
    })))
    .expect(1)
    .mount(slack)
    .await;
}

fn channel_ids(result: &serde_json::Value) -> Vec<&str> {
    result["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|channel| channel["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test]
async fn list_channels_follows_short_and_empty_pages_until_limit() {
    let (app, slack, key) = setup().await;
    // Slack may answer fewer channels than asked, none even, with a cursor for more.
    mount_channels_page(&slack, "3", None, &[], "c2").await;
    mount_channels_page(&slack, "3", Some("c2"), &["C1", "C2"], "c3").await;
    mount_channels_page(&slack, "1", Some("c3"), &["C3"], "c4").await;
    let response = app
        .post("/v1/tools/slack_list_channels", &key, json!({"limit": 3}))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = &response.json()["result"];
    assert_eq!(channel_ids(result), ["C1", "C2", "C3"]);
    assert_eq!(result["next_cursor"], "c4");
    let requests = slack.received_requests().await.unwrap();
    let lists: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == "/conversations.list")
        .collect();
    assert_eq!(lists.len(), 3);
    assert_eq!(lists[0].url.query(), Some("limit=3"));
}

#[tokio::test]
async fn list_channels_stops_at_the_operators_page_cap_with_the_cursor() {
    let (app, slack, key) = setup_with(|config| config.tool_max_pages = 2).await;
    // One channel a page and always a cursor: a chain without end.
    mount_channels_page(&slack, "200", None, &["C1"], "c2").await;
    mount_channels_page(&slack, "200", Some("c2"), &["C2"], "c3").await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(query_param("cursor", "c3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channels": [{"id": "C3"}]})))
        .expect(0)
        .mount(&slack)
        .await;
    let response = app
        .post("/v1/tools/slack_list_channels", &key, json!({"limit": 1000}))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = &response.json()["result"];
    assert_eq!(channel_ids(result), ["C1", "C2"]);
    assert_eq!(result["next_cursor"], "c3");
}

#[tokio::test]
async fn ok_false_is_an_upstream_error_carrying_slacks_code() {
    let (app, slack, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "channel_not_found"})))
        .mount(&slack)
        .await;
    let response = app
        .post(
            "/v1/tools/slack_send_message",
            &key,
            json!({"channel": "C404", "text": "hi"}),
        )
        .await;
    let problem = response.assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 200);
    assert_eq!(problem["upstream_errors"]["error"], "channel_not_found");
    assert!(problem["detail"].as_str().unwrap().contains("channel_not_found"));
}

#[tokio::test]
async fn rate_limits_are_reported_with_retry_after() {
    let (app, slack, key) = setup().await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .expect(1)
        .mount(&slack)
        .await;
    let response = app.post("/v1/tools/slack_list_channels", &key, json!({})).await;
    let problem = response.assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 429);
    assert_eq!(problem["upstream_errors"]["retry_after"], 120);
    // Longer than the call's deadline allows: not waited for, the call ends at once.
    assert_eq!(problem["retry_after"], 120);
    assert_eq!(problem["upstream_errors"]["error"], "ratelimited");
}

#[tokio::test]
async fn install_is_refused_naming_bot_token_when_slack_rejects_it() {
    let app = TestApp::start().await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .and(header("authorization", "Bearer fake-revoked-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})))
        .expect(1)
        .mount(&slack)
        .await;
    let key = app.tenant("acme", json!({})).await;
    let problem = app
        .install_slack(&key, &slack.uri(), "fake-revoked-token", None)
        .await
        .assert_problem(422, "invalid-config");
    assert_eq!(problem["errors"][0]["field"], "bot_token");
    assert!(problem.to_string().contains("invalid_auth"), "{problem}");
    // Nothing was installed.
    assert_eq!(
        app.get("/v1/plugins/slack", &key).await.json()["state"],
        "not_installed"
    );
}

#[tokio::test]
async fn configure_checks_the_new_token_and_keeps_the_old_one_when_refused() {
    let (app, slack, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .and(header("authorization", "Bearer fake-revoked-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "token_revoked"})))
        .expect(1)
        .mount(&slack)
        .await;
    let problem = app
        .put(
            "/v1/plugins/slack/configure",
            &key,
            json!({"api_base_url": slack.uri(), "bot_token": "fake-revoked-token"}),
        )
        .await
        .assert_problem(422, "invalid-config");
    assert_eq!(problem["errors"][0]["field"], "bot_token");
    assert!(problem.to_string().contains("token_revoked"), "{problem}");
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "C1", "ts": "1.2"})))
        .expect(1)
        .mount(&slack)
        .await;
    let sent = app
        .post(
            "/v1/tools/slack_send_message",
            &key,
            json!({"channel": "C1", "text": "hi"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
}

#[tokio::test]
async fn refuses_api_base_urls_outside_the_allowlist_without_sending() {
    let app = TestApp::start().await;
    let slack = MockServer::start().await;
    let port = slack.address().port();
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&slack)
        .await;
    let key = app.tenant("acme", json!({})).await;
    for base in [format!("http://127.0.0.2:{port}"), format!("https://[::1]:{port}")] {
        let problem = app
            .install_slack(&key, &base, TOKEN, None)
            .await
            .assert_problem(422, "invalid-config");
        assert_eq!(problem["errors"][0]["field"], "api_base_url", "{base}");
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn delivery(signature: &str, timestamp: &str, body: &[u8]) -> http::Request<Body> {
    http::Request::post("/v1/webhooks/slack/acme")
        .header("content-type", "application/json")
        .header("x-slack-signature", signature)
        .header("x-slack-request-timestamp", timestamp)
        .body(Body::from(body.to_vec()))
        .unwrap()
}

const EVENT: &[u8] =
    br#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention","text":"<@U1> hi"}}"#;

#[tokio::test]
async fn signed_events_are_stored_once_per_event_id() {
    let (app, _slack, key) = setup().await;
    let timestamp = unix_now().to_string();
    let signature = slack_signature(SIGNING_SECRET, &timestamp, EVENT);
    let first = app.send(delivery(&signature, &timestamp, EVENT)).await;
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(first.json()["duplicate"], false);
    let retry = app.send(delivery(&signature, &timestamp, EVENT)).await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.json()["duplicate"], true);
    let stored = app
        .store()
        .list_webhook_deliveries("acme", Some("slack"), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].delivery_id, "Ev08MFMKH6");
    assert_eq!(stored[0].event_type.as_deref(), Some("app_mention"));
    assert_eq!(stored[0].payload, EVENT);
    let events = app.get("/v1/webhook-events?plugin=slack", &key).await.json();
    assert_eq!(events["events"][0]["payload"]["event"]["text"], "<@U1> hi");
}

#[tokio::test]
async fn bad_signatures_and_stale_timestamps_are_the_uniform_refusal() {
    let (app, _slack, _key) = setup().await;
    let now = unix_now();
    let timestamp = now.to_string();
    let wrong = slack_signature("not-the-secret", &timestamp, EVENT);
    app.send(delivery(&wrong, &timestamp, EVENT))
        .await
        .assert_problem(404, "webhook-rejected");
    // Correctly signed, but ten minutes old: a replay.
    let stale = (now - 600).to_string();
    let replayed = slack_signature(SIGNING_SECRET, &stale, EVENT);
    app.send(delivery(&replayed, &stale, EVENT))
        .await
        .assert_problem(404, "webhook-rejected");
    // The signature covers the timestamp: a fresh timestamp on an old signature fails too.
    app.send(delivery(&replayed, &timestamp, EVENT))
        .await
        .assert_problem(404, "webhook-rejected");
    assert!(app
        .store()
        .list_webhook_deliveries("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn url_verification_is_answered_with_the_challenge_once_signed() {
    let (app, _slack, _key) = setup().await;
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let timestamp = unix_now().to_string();
    let forged = slack_signature("not-the-secret", &timestamp, body);
    app.send(delivery(&forged, &timestamp, body))
        .await
        .assert_problem(404, "webhook-rejected");
    let signature = slack_signature(SIGNING_SECRET, &timestamp, body);
    let answer = app.send(delivery(&signature, &timestamp, body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "text/plain");
    assert_eq!(answer.text(), "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    // A handshake is answered, not stored.
    assert!(app
        .store()
        .list_webhook_deliveries("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
}
