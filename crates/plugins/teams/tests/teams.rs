//! Every Teams tool against a mock Graph: method, path, Authorization, query and body exactly as
//! sent; which credential each tool uses; Graph errors, 429, and the one retry after a 401.

use std::collections::BTreeMap;
use std::sync::Arc;

use integrations_core::{
    Lifecycle, Plugin, PluginConfig, PluginContext, PluginError, Secret, TokenGrant, ToolError, WebhookError,
    WebhookOutcome, WebhookRequest,
};
use integrations_msgraph::testing::{RecordingTokens, ReqwestHttpClient};
use integrations_plugin_teams::TeamsPlugin;
use serde_json::{json, Map, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TEAM: &str = "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b";
const CHANNEL: &str = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2";
const MESSAGES: &str =
    "/v1.0/teams/fbe2bf47-16c8-47cf-b4a5-4b9b187c508b/channels/19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2/messages";
const CHANNELS: &str = "/v1.0/teams/fbe2bf47-16c8-47cf-b4a5-4b9b187c508b/channels";

fn context(graph: &MockServer, tokens: &Arc<RecordingTokens>, refresh_token: bool) -> PluginContext {
    let mut values = Map::new();
    values.insert("tenant_id".into(), json!("contoso.onmicrosoft.com"));
    values.insert("client_id".into(), json!("app-client-id"));
    values.insert("team_id".into(), json!(TEAM));
    values.insert("graph_base_url".into(), json!(graph.uri()));
    values.insert("login_base_url".into(), json!("https://login.example"));
    let mut secrets = BTreeMap::new();
    secrets.insert("client_secret".to_owned(), Secret::new("app-secret"));
    secrets.insert("client_state".to_owned(), Secret::new("state-s3cret"));
    if refresh_token {
        secrets.insert("refresh_token".to_owned(), Secret::new("refresh-1"));
    }
    PluginContext {
        tenant_id: "tenant-1".into(),
        config: Arc::new(PluginConfig::new(values, secrets)),
        http: Arc::new(ReqwestHttpClient::new()),
        tokens: tokens.clone(),
        max_pages: PluginContext::DEFAULT_MAX_PAGES,
    }
}

async fn call(ctx: &PluginContext, tool: &str, args: Value) -> Result<Value, ToolError> {
    TeamsPlugin::new().call_tool(ctx, tool, args).await
}

#[tokio::test]
async fn send_message_posts_the_body_with_the_delegated_token() {
    let graph = MockServer::start().await;
    let answer = json!({"id": "1616990032035", "webUrl": "https://teams.microsoft.com/l/message/1"});
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(header("authorization", "Bearer user-token-1"))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"body": {"contentType": "text", "content": "Hello, team"}}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(&answer))
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let result = call(
        &context(&graph, &tokens, true),
        "teams_send_message",
        json!({"channel_id": CHANNEL, "content": "Hello, team"}),
    )
    .await
    .unwrap();
    assert_eq!(result, answer);
    let sent = graph.received_requests().await.unwrap();
    assert_eq!(sent[0].url.query(), None);
    let requests = tokens.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].token_url,
        "https://login.example/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(requests[0].client_id, "app-client-id");
    assert_eq!(requests[0].client_secret.expose(), "app-secret");
    assert_eq!(
        requests[0].scope,
        "https://graph.microsoft.com/ChannelMessage.Send offline_access"
    );
    assert_eq!(
        requests[0].grant,
        TokenGrant::RefreshToken {
            secret_field: "refresh_token".into()
        }
    );
}

#[tokio::test]
async fn html_messages_say_so_and_odd_channel_ids_are_encoded() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{CHANNELS}/19:odd%20id%3Fx%23y@thread.tacv2/messages")))
        .and(header("authorization", "Bearer user-token-1"))
        .and(body_json(
            json!({"body": {"contentType": "html", "content": "<b>Hi</b>"}}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "2"})))
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    call(
        &context(&graph, &tokens, true),
        "teams_send_message",
        json!({"channel_id": "19:odd id?x#y@thread.tacv2", "content": "<b>Hi</b>", "content_type": "html"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn channel_ids_that_would_leave_their_segment_are_refused_before_any_request() {
    let graph = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    for channel in ["..", ".", "a/b", "a\\b"] {
        let error = call(
            &context(&graph, &tokens, true),
            "teams_send_message",
            json!({"channel_id": channel, "content": "x"}),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ToolError::InvalidArguments(_)), "{channel}: {error:?}");
    }
}

#[tokio::test]
async fn send_message_without_a_refresh_token_is_misconfigured_and_sends_nothing() {
    let graph = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let error = call(
        &context(&graph, &tokens, false),
        "teams_send_message",
        json!({"channel_id": CHANNEL, "content": "Hello"}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ToolError::Misconfigured(m) if m.contains("refresh_token")),
        "{error:?}"
    );
    assert!(tokens.requests().is_empty());
}

#[tokio::test]
async fn create_channel_posts_a_standard_channel_with_the_app_token() {
    let graph = MockServer::start().await;
    let answer = json!({"id": "19:new@thread.tacv2", "displayName": "Architecture", "membershipType": "standard"});
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .and(header("authorization", "Bearer app-token-1"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "displayName": "Architecture",
            "description": "Design discussions",
            "membershipType": "standard"
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(&answer))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .and(header("authorization", "Bearer app-token-1"))
        .and(body_json(json!({"displayName": "Bare", "membershipType": "standard"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "19:bare@thread.tacv2"})))
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let ctx = context(&graph, &tokens, true);
    let result = call(
        &ctx,
        "teams_create_channel",
        json!({"display_name": "Architecture", "description": "Design discussions"}),
    )
    .await
    .unwrap();
    assert_eq!(result, answer);
    call(&ctx, "teams_create_channel", json!({"display_name": "Bare"}))
        .await
        .unwrap();
    let requests = tokens.requests();
    assert!(requests.iter().all(|r| r.grant == TokenGrant::ClientCredentials));
    assert!(requests
        .iter()
        .all(|r| r.scope == "https://graph.microsoft.com/.default"));
}

#[tokio::test]
async fn graph_errors_are_upstream_errors_with_graphs_code() {
    let graph = MockServer::start().await;
    let body = json!({"error": {"code": "Forbidden", "message": "Missing role permissions on the request."}});
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .respond_with(ResponseTemplate::new(403).set_body_json(&body))
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let error = call(
        &context(&graph, &tokens, true),
        "teams_create_channel",
        json!({"display_name": "X"}),
    )
    .await
    .unwrap_err();
    let ToolError::Upstream {
        status,
        message,
        details,
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(status, 403);
    assert_eq!(message, "Forbidden: Missing role permissions on the request.");
    assert_eq!(details["code"], "Forbidden");
    assert_eq!(details["body"], body);
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "12")
                .set_body_json(json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let error = call(
        &context(&graph, &tokens, true),
        "teams_send_message",
        json!({"channel_id": CHANNEL, "content": "x"}),
    )
    .await
    .unwrap_err();
    let ToolError::Upstream { status, details, .. } = error else {
        panic!("{error:?}")
    };
    assert_eq!(status, 429);
    assert_eq!(details["retry_after"], 12);
    assert_eq!(details["code"], "TooManyRequests");
}

#[tokio::test]
async fn a_401_invalidates_the_token_and_retries_once_with_a_fresh_one() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(header("authorization", "Bearer user-token-1"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"code": "InvalidAuthenticationToken", "message": "Token expired"}})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(header("authorization", "Bearer user-token-2"))
        .and(body_json(json!({"body": {"contentType": "text", "content": "again"}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "3"})))
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let result = call(
        &context(&graph, &tokens, true),
        "teams_send_message",
        json!({"channel_id": CHANNEL, "content": "again"}),
    )
    .await
    .unwrap();
    assert_eq!(result["id"], "3");
    assert_eq!(
        tokens.invalidated(),
        vec![(
            TokenGrant::RefreshToken {
                secret_field: "refresh_token".into()
            },
            "user-token-1".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_second_401_is_reported_without_a_third_attempt() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHANNELS))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}),
        ))
        .expect(2)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let error = call(
        &context(&graph, &tokens, true),
        "teams_create_channel",
        json!({"display_name": "X"}),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ToolError::Upstream { status: 401, .. }), "{error:?}");
    assert_eq!(tokens.invalidated().len(), 1);
    assert_eq!(tokens.requests().len(), 2);
}

#[tokio::test]
async fn install_asks_for_one_client_credentials_token() {
    let graph = MockServer::start().await;
    let tokens = Arc::new(RecordingTokens::new());
    TeamsPlugin::new()
        .on_lifecycle(&context(&graph, &tokens, true), Lifecycle::Install)
        .await
        .unwrap();
    let requests = tokens.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].grant, TokenGrant::ClientCredentials);
    assert_eq!(requests[0].scope, "https://graph.microsoft.com/.default");
}

#[tokio::test]
async fn a_refused_credential_names_the_field_its_aadsts_code_blames() {
    let graph = MockServer::start().await;
    let cases = [
        ("AADSTS7000215: Invalid client secret provided.", "client_secret"),
        (
            "AADSTS700016: Application with identifier 'app-client-id' was not found in the directory.",
            "client_id",
        ),
        ("AADSTS90002: Tenant 'contoso.onmicrosoft.com' not found.", "tenant_id"),
    ];
    for (description, expected) in cases {
        let tokens = Arc::new(RecordingTokens::refusing(401, "invalid_client", description));
        let error = TeamsPlugin::new()
            .on_lifecycle(&context(&graph, &tokens, true), Lifecycle::Configure)
            .await
            .unwrap_err();
        let PluginError::InvalidConfig { field, message } = error else {
            panic!("{error:?}")
        };
        assert_eq!(field, expected);
        assert_eq!(message, format!("invalid_client: {description}"));
    }
}

fn webhook(query: Option<&str>, body: &[u8]) -> WebhookRequest {
    WebhookRequest {
        headers: http::HeaderMap::new(),
        query: query.map(str::to_owned),
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn change_notifications_answer_the_handshake_and_check_client_state() {
    let graph = MockServer::start().await;
    let tokens = Arc::new(RecordingTokens::new());
    let ctx = context(&graph, &tokens, true);
    let plugin = TeamsPlugin::new();
    let handshake = plugin
        .verify_webhook(&ctx.config, &webhook(Some("validationToken=abc%3A+123"), b""))
        .unwrap();
    assert_eq!(
        handshake,
        WebhookOutcome::Handshake {
            content_type: "text/plain".into(),
            body: b"abc: 123".to_vec()
        }
    );
    let good = br#"{"value":[{"subscriptionId":"s","clientState":"state-s3cret","changeType":"created","resource":"teams('t')/channels('c')/messages('1')"}]}"#;
    assert!(matches!(
        plugin.verify_webhook(&ctx.config, &webhook(None, good)),
        Ok(WebhookOutcome::Event(ref v)) if v.event_type.as_deref() == Some("created")
    ));
    let forged = br#"{"value":[{"subscriptionId":"s","clientState":"guess","changeType":"created"}]}"#;
    assert!(matches!(
        plugin.verify_webhook(&ctx.config, &webhook(None, forged)),
        Err(WebhookError::InvalidSignature)
    ));
}

#[test]
fn registers_itself_with_the_host() {
    let registry = integrations_core::PluginRegistry::linked().expect("valid registry");
    assert!(registry.get("teams").is_some());
    assert!(registry.find_tool("teams_send_message").is_some());
    assert!(registry.find_tool("teams_create_channel").is_some());
}
