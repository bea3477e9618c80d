//! Teams through the real host and its token manager: the identity platform and Graph are wiremock
//! servers expecting exactly the documented token forms and Graph requests.

use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{TestApp, TestResponse};
use crate::microsoft::{
    app_config, app_form, mount_token_endpoint, notification_request, refresh_form, token_answer, token_refusal,
    validation_request, CLIENT_SECRET, CLIENT_STATE,
};

const TEAM: &str = "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b";
const CHANNEL: &str = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2";
const CHANNELS: &str = "/v1.0/teams/fbe2bf47-16c8-47cf-b4a5-4b9b187c508b/channels";
const SEND_SCOPE: &str = "https://graph.microsoft.com/ChannelMessage.Send offline_access";
const REFRESH_TOKEN: &str = "refresh-token-1";

fn messages_path() -> String {
    format!("{CHANNELS}/{CHANNEL}/messages")
}

async fn install(
    app: &TestApp,
    key: &str,
    login: &MockServer,
    graph: &MockServer,
    client_secret: &str,
) -> TestResponse {
    let mut config = app_config(login, graph);
    config["client_secret"] = json!(client_secret);
    config["team_id"] = json!(TEAM);
    config["refresh_token"] = json!(REFRESH_TOKEN);
    app.post("/v1/plugins/teams/install", key, config).await
}

/// Teams installed for tenant `acme`; install's client-credentials token (`app-access-1`) is
/// granted by the mocked token endpoint.
async fn setup() -> (TestApp, MockServer, MockServer, String) {
    let app = TestApp::start().await;
    let login = MockServer::start().await;
    let graph = MockServer::start().await;
    mount_token_endpoint(&login, app_form(CLIENT_SECRET), token_answer("app-access-1"), Some(1)).await;
    let key = app.tenant("acme", json!({})).await;
    let installed = install(&app, &key, &login, &graph, CLIENT_SECRET).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, login, graph, key)
}

fn token_requests(requests: &[wiremock::Request], grant_type: &str) -> usize {
    requests
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(&format!("grant_type={grant_type}")))
        .count()
}

#[tokio::test]
async fn create_channel_uses_the_app_token_install_obtained() {
    let (app, login, graph, key) = setup().await;
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .and(header("authorization", "Bearer app-access-1"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "displayName": "Architecture",
            "description": "Design discussions",
            "membershipType": "standard"
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "19:8a9b@thread.tacv2", "displayName": "Architecture", "membershipType": "standard"
        })))
        .expect(1)
        .mount(&graph)
        .await;
    let response = app
        .post(
            "/v1/tools/teams_create_channel",
            &key,
            json!({"display_name": "Architecture", "description": "Design discussions"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["id"], "19:8a9b@thread.tacv2");
    let sent = graph.received_requests().await.unwrap();
    assert_eq!(sent[0].url.query(), None);
    // The token fetched at install is still good: the call used it without asking again.
    let token_calls = login.received_requests().await.unwrap();
    assert_eq!(token_requests(&token_calls, "client_credentials"), 1);
}

#[tokio::test]
async fn send_message_refreshes_the_delegated_token_and_keeps_the_rotated_refresh_token() {
    let (app, login, graph, key) = setup().await;
    mount_token_endpoint(
        &login,
        refresh_form(SEND_SCOPE, REFRESH_TOKEN),
        ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "scope": "https://graph.microsoft.com/ChannelMessage.Send",
            "expires_in": 3599, "access_token": "user-access-1", "refresh_token": "refresh-token-2"
        })),
        None,
    )
    .await;
    mount_token_endpoint(
        &login,
        refresh_form(SEND_SCOPE, "refresh-token-2"),
        token_answer("user-access-2"),
        None,
    )
    .await;
    for (bearer, content) in [("Bearer user-access-1", "first"), ("Bearer user-access-2", "second")] {
        Mock::given(method("POST"))
            .and(path(messages_path()))
            .and(header("authorization", bearer))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({"body": {"contentType": "text", "content": content}})))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": content})))
            .expect(1)
            .mount(&graph)
            .await;
    }
    let response = app
        .post(
            "/v1/tools/teams_send_message",
            &key,
            json!({"channel_id": CHANNEL, "content": "first"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["id"], "first");
    // A new host has no cached token: it must refresh with the rotated token the first one stored.
    let restarted = app.restart_with(|_| {}).await;
    let response = restarted
        .post(
            "/v1/tools/teams_send_message",
            &key,
            json!({"channel_id": CHANNEL, "content": "second"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let token_calls = login.received_requests().await.unwrap();
    assert_eq!(token_requests(&token_calls, "refresh_token"), 2);
}

#[tokio::test]
async fn fifty_concurrent_tool_calls_make_one_token_request() {
    let (app, login, graph, key) = setup().await;
    mount_token_endpoint(
        &login,
        refresh_form(SEND_SCOPE, REFRESH_TOKEN),
        token_answer("user-access-1").set_delay(std::time::Duration::from_millis(300)),
        None,
    )
    .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(header("authorization", "Bearer user-access-1"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "m"})))
        .expect(50)
        .mount(&graph)
        .await;
    let app = std::sync::Arc::new(app);
    let calls: Vec<_> = (0..50)
        .map(|n| {
            let (app, key) = (app.clone(), key.clone());
            tokio::spawn(async move {
                app.post(
                    "/v1/tools/teams_send_message",
                    &key,
                    json!({"channel_id": CHANNEL, "content": format!("message {n}")}),
                )
                .await
                .status
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let token_calls = login.received_requests().await.unwrap();
    assert_eq!(token_requests(&token_calls, "refresh_token"), 1);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    let (app, login, graph, key) = setup().await;
    mount_token_endpoint(
        &login,
        refresh_form(SEND_SCOPE, REFRESH_TOKEN),
        ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 2, "access_token": "short-lived"
        })),
        None,
    )
    .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(header("authorization", "Bearer short-lived"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "m"})))
        .expect(3)
        .mount(&graph)
        .await;
    let send = || {
        app.post(
            "/v1/tools/teams_send_message",
            &key,
            json!({"channel_id": CHANNEL, "content": "hi"}),
        )
    };
    assert_eq!(send().await.status, 200);
    assert_eq!(send().await.status, 200);
    assert_eq!(
        token_requests(&login.received_requests().await.unwrap(), "refresh_token"),
        1
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(send().await.status, 200);
    assert_eq!(
        token_requests(&login.received_requests().await.unwrap(), "refresh_token"),
        2
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_asks_for_reauthorization() {
    let (app, login, graph, key) = setup().await;
    mount_token_endpoint(
        &login,
        refresh_form(SEND_SCOPE, REFRESH_TOKEN),
        token_refusal(
            400,
            "invalid_grant",
            "AADSTS700082: The refresh token has expired due to inactivity.",
        ),
        None,
    )
    .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&graph)
        .await;
    app.post(
        "/v1/tools/teams_send_message",
        &key,
        json!({"channel_id": CHANNEL, "content": "x"}),
    )
    .await
    .assert_problem(409, "reauthorization-required");
    let details = app.get("/v1/plugins/teams", &key).await.json();
    assert_eq!(details["needs_reauthorization"], true, "{details}");
}

#[tokio::test]
async fn html_content_is_sent_as_html() {
    let (app, login, graph, key) = setup().await;
    mount_token_endpoint(
        &login,
        refresh_form(SEND_SCOPE, REFRESH_TOKEN),
        token_answer("user-access-1"),
        None,
    )
    .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(header("authorization", "Bearer user-access-1"))
        .and(body_json(
            json!({"body": {"contentType": "html", "content": "<b>Deploy done</b>"}}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "1"})))
        .expect(1)
        .mount(&graph)
        .await;
    let response = app
        .post(
            "/v1/tools/teams_send_message",
            &key,
            json!({"channel_id": CHANNEL, "content": "<b>Deploy done</b>", "content_type": "html"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
}

#[tokio::test]
async fn a_401_from_graph_gets_a_fresh_token_and_one_retry() {
    let (app, login, graph, key) = setup().await;
    mount_token_endpoint(&login, app_form(CLIENT_SECRET), token_answer("app-access-2"), None).await;
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .and(header("authorization", "Bearer app-access-1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, the token is expired."}}),
        ))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .and(header("authorization", "Bearer app-access-2"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "19:new@thread.tacv2"})))
        .expect(1)
        .mount(&graph)
        .await;
    let response = app
        .post("/v1/tools/teams_create_channel", &key, json!({"display_name": "Ops"}))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        token_requests(&login.received_requests().await.unwrap(), "client_credentials"),
        2
    );
}

#[tokio::test]
async fn graph_errors_and_rate_limits_are_upstream_errors() {
    let (app, login, graph, key) = setup().await;
    mount_token_endpoint(
        &login,
        refresh_form(SEND_SCOPE, REFRESH_TOKEN),
        token_answer("user-access-1"),
        None,
    )
    .await;
    let forbidden = json!({"error": {"code": "Forbidden", "message": "Missing role permissions on the request."}});
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .respond_with(ResponseTemplate::new(403).set_body_json(&forbidden))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(
            // Longer than the call's deadline allows: not waited for, one request.
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let problem = app
        .post("/v1/tools/teams_create_channel", &key, json!({"display_name": "Ops"}))
        .await
        .assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 403);
    assert_eq!(problem["upstream_errors"]["code"], "Forbidden");
    assert_eq!(problem["upstream_errors"]["body"], forbidden);
    let problem = app
        .post(
            "/v1/tools/teams_send_message",
            &key,
            json!({"channel_id": CHANNEL, "content": "x"}),
        )
        .await
        .assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 429);
    assert_eq!(problem["upstream_errors"]["retry_after"], 120);
    assert_eq!(problem["retry_after"], 120);
}

#[tokio::test]
async fn install_is_refused_naming_the_field_the_identity_platform_blames() {
    let cases = [
        (401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.", "client_secret"),
        (400, "unauthorized_client", "AADSTS700016: Application with identifier '6731de76-14a6-49ae-97bc-6eba6914391e' was not found in the directory 'Contoso'.", "client_id"),
        (400, "invalid_request", "AADSTS90002: Tenant '84bd8158-6d4d-4958-8b9f-9d6445542f95' not found.", "tenant_id"),
    ];
    for (status, code, description, field) in cases {
        let app = TestApp::start().await;
        let login = MockServer::start().await;
        let graph = MockServer::start().await;
        mount_token_endpoint(
            &login,
            app_form("wrong-secret"),
            token_refusal(status, code, description),
            None,
        )
        .await;
        let key = app.tenant("acme", json!({})).await;
        let problem = install(&app, &key, &login, &graph, "wrong-secret")
            .await
            .assert_problem(422, "invalid-config");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(code) && message.contains(&description[..12]),
            "{problem}"
        );
        assert_eq!(
            app.get("/v1/plugins/teams", &key).await.json()["state"],
            "not_installed"
        );
        assert_eq!(login.received_requests().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn the_validation_handshake_is_answered_with_the_decoded_token() {
    let (app, _login, _graph, _key) = setup().await;
    let response = app
        .send(validation_request(
            "teams",
            "Validation%3a+Testing+client+application+reachability+for+subscription+Request-Id%3a+b8a9c6a0",
        ))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/plain")
    );
    assert_eq!(
        response.text(),
        "Validation: Testing client application reachability for subscription Request-Id: b8a9c6a0"
    );
    assert!(app
        .store()
        .list_webhook_deliveries("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
}

fn notification(client_state: &str) -> Value {
    json!({"value": [{
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": "2024-05-01T11:00:00+00:00",
        "clientState": client_state,
        "changeType": "created",
        "resource": "teams('fbe2bf47-16c8-47cf-b4a5-4b9b187c508b')/channels('19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2')/messages('1616990032035')",
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        "resourceData": {"id": "1616990032035", "@odata.type": "#Microsoft.Graph.chatMessage"}
    }]})
}

#[tokio::test]
async fn notifications_with_the_client_state_are_accepted_with_202_and_stored_once() {
    let (app, _login, _graph, _key) = setup().await;
    let body = notification(CLIENT_STATE);
    let first = app.send(notification_request("teams", &body)).await;
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(first.json()["duplicate"], false);
    let retry = app.send(notification_request("teams", &body)).await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.json()["duplicate"], true);
    let stored = app
        .store()
        .list_webhook_deliveries("acme", Some("teams"), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type.as_deref(), Some("created"));
}

#[tokio::test]
async fn each_notification_becomes_a_teams_change_notification_event_without_the_client_state() {
    let (app, _login, _graph, key) = setup().await;
    let mut body = notification(CLIENT_STATE);
    let second = json!({"clientState": CLIENT_STATE, "changeType": "deleted", "resource": "teams('x')/channels('y')"});
    body["value"].as_array_mut().unwrap().push(second);
    assert_eq!(app.send(notification_request("teams", &body)).await.status, 202);
    let (events, _) = app.read_events(&key, None, 3).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "plugin.installed",
            "teams.change_notification",
            "teams.change_notification"
        ]
    );
    assert_eq!(events[1]["data"]["changeType"], "created");
    assert_eq!(events[2]["data"]["changeType"], "deleted");
    assert!(!events.iter().any(|e| e.to_string().contains(CLIENT_STATE)));
}

#[tokio::test]
async fn notifications_with_another_client_state_are_the_uniform_refusal() {
    let (app, _login, _graph, _key) = setup().await;
    app.send(notification_request("teams", &notification("guessed-state")))
        .await
        .assert_problem(404, "webhook-rejected");
    assert!(app
        .store()
        .list_webhook_deliveries("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
}
