//! Every SharePoint tool against a mock Graph: method, path, Authorization, query and body exactly
//! as sent; the download's redirect followed once without Authorization; the size cap; paths
//! encoded and `..` refused; nextLink paging; Graph errors, 429 and the one retry after a 401.

use std::collections::BTreeMap;
use std::sync::Arc;

use integrations_core::{
    HttpError, Lifecycle, Plugin, PluginConfig, PluginContext, PluginError, Secret, TokenGrant, ToolError,
    WebhookError, WebhookOutcome, WebhookRequest,
};
use integrations_msgraph::testing::{RecordingTokens, ReqwestHttpClient};
use integrations_plugin_sharepoint::SharePointPlugin;
use serde_json::{json, Map, Value};
use wiremock::matchers::{body_bytes, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SITE: &str = "contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE";
const DRIVE: &str =
    "/v1.0/sites/contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE/drive";
const BEARER: &str = "Bearer app-token-1";

fn context_with(graph: &MockServer, tokens: &Arc<RecordingTokens>, extra: Value) -> PluginContext {
    let mut values = Map::new();
    values.insert("tenant_id".into(), json!("84bd8158-6d4d-4958-8b9f-9d6445542f95"));
    values.insert("client_id".into(), json!("app-client-id"));
    values.insert("site_id".into(), json!(SITE));
    values.insert("graph_base_url".into(), json!(graph.uri()));
    values.insert("login_base_url".into(), json!("https://login.example"));
    if let Value::Object(extra) = extra {
        values.extend(extra);
    }
    let mut secrets = BTreeMap::new();
    secrets.insert("client_secret".to_owned(), Secret::new("app-secret"));
    secrets.insert("client_state".to_owned(), Secret::new("state-s3cret"));
    PluginContext {
        tenant_id: "tenant-1".into(),
        config: Arc::new(PluginConfig::new(values, secrets)),
        http: Arc::new(ReqwestHttpClient::new()),
        tokens: tokens.clone(),
        max_pages: PluginContext::DEFAULT_MAX_PAGES,
    }
}

fn context(graph: &MockServer, tokens: &Arc<RecordingTokens>) -> PluginContext {
    context_with(graph, tokens, json!({}))
}

async fn call(graph: &MockServer, tool: &str, args: Value) -> Result<Value, ToolError> {
    call_with_pages(graph, PluginContext::DEFAULT_MAX_PAGES, tool, args).await
}

/// Calls `tool` under a host page cap of `max_pages`.
async fn call_with_pages(graph: &MockServer, max_pages: usize, tool: &str, args: Value) -> Result<Value, ToolError> {
    let tokens = Arc::new(RecordingTokens::new());
    let ctx = PluginContext {
        max_pages,
        ..context(graph, &tokens)
    };
    SharePointPlugin::new().call_tool(&ctx, tool, args).await
}

fn drive_item(name: &str) -> Value {
    json!({
        "id": format!("01{name}"),
        "name": name,
        "size": 5,
        "file": {"mimeType": "text/plain"},
        "lastModifiedDateTime": "2024-05-01T10:00:00Z",
        "webUrl": format!("https://contoso.sharepoint.com/Shared%20Documents/{name}"),
        "@microsoft.graph.downloadUrl": "https://contoso.sharepoint.com/download?tempauth=secret"
    })
}

#[tokio::test]
async fn upload_puts_the_raw_text_bytes_at_the_encoded_path() {
    let graph = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(format!("{DRIVE}/root:/Reports/Q1%20plan%20%232.txt:/content")))
        .and(header("authorization", BEARER))
        .and(header("content-type", "application/octet-stream"))
        .and(body_bytes(b"hello".to_vec()))
        .respond_with(ResponseTemplate::new(201).set_body_json(drive_item("Q1 plan #2.txt")))
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let result = SharePointPlugin::new()
        .call_tool(
            &context(&graph, &tokens),
            "sharepoint_upload_file",
            json!({"path": "Reports/Q1 plan #2.txt", "content": "hello"}),
        )
        .await
        .unwrap();
    assert_eq!(result["name"], "Q1 plan #2.txt");
    assert_eq!(result["is_folder"], false);
    assert!(!result.to_string().contains("tempauth"), "{result}");
    assert_eq!(graph.received_requests().await.unwrap()[0].url.query(), None);
    let requests = tokens.requests();
    assert_eq!(requests[0].grant, TokenGrant::ClientCredentials);
    assert_eq!(requests[0].scope, "https://graph.microsoft.com/.default");
    assert_eq!(
        requests[0].token_url,
        "https://login.example/84bd8158-6d4d-4958-8b9f-9d6445542f95/oauth2/v2.0/token"
    );
}

#[tokio::test]
async fn upload_decodes_base64_content_and_refuses_bad_base64() {
    let graph = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(format!("{DRIVE}/root:/logo.png:/content")))
        .and(header("authorization", BEARER))
        .and(body_bytes(vec![0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]))
        .respond_with(ResponseTemplate::new(201).set_body_json(drive_item("logo.png")))
        .expect(1)
        .mount(&graph)
        .await;
    call(
        &graph,
        "sharepoint_upload_file",
        json!({"path": "logo.png", "content": "iVBORwD/", "encoding": "base64"}),
    )
    .await
    .unwrap();
    let error = call(
        &graph,
        "sharepoint_upload_file",
        json!({"path": "logo.png", "content": "not base64!", "encoding": "base64"}),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ToolError::InvalidArguments(_)), "{error:?}");
}

#[tokio::test]
async fn paths_that_climb_or_are_malformed_are_refused_before_any_request() {
    let graph = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&graph)
        .await;
    for bad in ["../secrets.txt", "a/../../b", "a/./b", "a//b", "a\\b", ".", ""] {
        for (tool, args) in [
            ("sharepoint_upload_file", json!({"path": bad, "content": "x"})),
            ("sharepoint_download_file", json!({"path": bad})),
        ] {
            let error = call(&graph, tool, args).await.unwrap_err();
            assert!(
                matches!(error, ToolError::InvalidArguments(_)),
                "{tool} {bad:?}: {error:?}"
            );
        }
    }
    let error = call(&graph, "sharepoint_list_files", json!({"folder": "a/../b"}))
        .await
        .unwrap_err();
    assert!(matches!(error, ToolError::InvalidArguments(_)), "{error:?}");
}

#[tokio::test]
async fn download_follows_the_redirect_once_without_authorization() {
    let graph = MockServer::start().await;
    let storage = MockServer::start().await;
    let location = format!("{}/personal/download.aspx?tempauth=abc123", storage.uri());
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/Reports/notes.txt:/content")))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(302).insert_header("location", location.as_str()))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/personal/download.aspx"))
        .and(query_param("tempauth", "abc123"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/plain")
                .set_body_bytes("héllo"),
        )
        .expect(1)
        .mount(&storage)
        .await;
    let result = call(&graph, "sharepoint_download_file", json!({"path": "Reports/notes.txt"}))
        .await
        .unwrap();
    assert_eq!(
        result,
        json!({"path": "Reports/notes.txt", "size": 6, "content_type": "text/plain", "encoding": "text", "content": "héllo"})
    );
    let fetched = storage.received_requests().await.unwrap();
    assert_eq!(fetched.len(), 1);
    assert!(
        !fetched[0].headers.contains_key("authorization"),
        "the pre-authenticated URL must not receive the Graph token"
    );
    assert_eq!(fetched[0].url.query(), Some("tempauth=abc123"));
}

#[tokio::test]
async fn binary_downloads_are_base64() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/logo.png:/content")))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/blob/logo", graph.uri()).as_str()),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/blob/logo"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/png")
                .set_body_bytes(vec![0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let result = call(&graph, "sharepoint_download_file", json!({"path": "logo.png"}))
        .await
        .unwrap();
    assert_eq!(result["encoding"], "base64");
    assert_eq!(result["content"], "iVBORwD/");
    assert_eq!(result["size"], 6);
    assert_eq!(result["content_type"], "image/png");
}

#[tokio::test]
async fn downloads_larger_than_max_download_bytes_are_refused() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/big.bin:/content")))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/blob/big", graph.uri()).as_str()),
        )
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/blob/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; 1025]))
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    let ctx = context_with(&graph, &tokens, json!({"max_download_bytes": 1024}));
    let error = SharePointPlugin::new()
        .call_tool(&ctx, "sharepoint_download_file", json!({"path": "big.bin"}))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ToolError::Http(HttpError::BodyTooLarge(1024))),
        "{error:?}"
    );
    let ctx = context_with(&graph, &tokens, json!({"max_download_bytes": 1025}));
    let result = SharePointPlugin::new()
        .call_tool(&ctx, "sharepoint_download_file", json!({"path": "big.bin"}))
        .await
        .unwrap();
    assert_eq!(result["size"], 1025);
}

#[tokio::test]
async fn a_download_url_that_redirects_again_is_not_followed() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/a.txt:/content")))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/hop1"))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/hop1"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/hop2"))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/hop2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("never"))
        .expect(0)
        .mount(&graph)
        .await;
    let error = call(&graph, "sharepoint_download_file", json!({"path": "a.txt"}))
        .await
        .unwrap_err();
    assert!(matches!(error, ToolError::Upstream { status: 302, .. }), "{error:?}");
}

#[tokio::test]
async fn a_missing_file_is_graphs_item_not_found() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/gone.txt:/content")))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(
                json!({"error": {"code": "itemNotFound", "message": "The resource could not be found."}}),
            ),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let error = call(&graph, "sharepoint_download_file", json!({"path": "gone.txt"}))
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
    assert_eq!(status, 404);
    assert_eq!(message, "itemNotFound: The resource could not be found.");
    assert_eq!(details["code"], "itemNotFound");
}

#[tokio::test]
async fn list_files_of_the_root_follows_next_link_across_two_pages() {
    let graph = MockServer::start().await;
    let next = format!("{}{DRIVE}/root/children?$top=200&$skiptoken=page2", graph.uri());
    let first: Vec<Value> = (0..200).map(|i| drive_item(&format!("f{i}.txt"))).collect();
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$top", "200"))
        .and(wiremock::matchers::query_param_is_missing("$skiptoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": first, "@odata.nextLink": next})))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$skiptoken", "page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [drive_item("f200.txt"), {"id": "01dir", "name": "Archive", "folder": {"childCount": 3}}],
            "@odata.nextLink": format!("{}{DRIVE}/root/children?$skiptoken=page3", graph.uri())
        })))
        .expect(1)
        .mount(&graph)
        .await;
    // Two pages at most: 201 items need two pages of 200, and no third is asked for.
    let result = call(&graph, "sharepoint_list_files", json!({"limit": 201}))
        .await
        .unwrap();
    let items = result["items"].as_array().unwrap();
    assert_eq!(items.len(), 201);
    assert_eq!(items[0]["name"], "f0.txt");
    assert_eq!(items[200]["name"], "f200.txt");
    assert_eq!(
        items[0],
        json!({
            "id": "01f0.txt", "name": "f0.txt", "size": 5, "is_folder": false, "mime_type": "text/plain",
            "last_modified": "2024-05-01T10:00:00Z", "web_url": "https://contoso.sharepoint.com/Shared%20Documents/f0.txt"
        })
    );
    let first_request = &graph.received_requests().await.unwrap()[0];
    assert_eq!(first_request.url.query(), Some("$top=200"));
}

fn item_names(result: &Value) -> Vec<&str> {
    result["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().expect("name"))
        .collect()
}

#[tokio::test]
async fn list_files_follows_short_and_empty_pages_until_limit() {
    let graph = MockServer::start().await;
    let link = |page: u32| format!("{}{DRIVE}/root/children?$top=12&$skiptoken=p{page}", graph.uri());
    // Asked for 12, Graph answers one item a page, none on page 3, always with a nextLink: 13
    // requests bring the 12 items, and the link after them is handed back, not followed.
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$top", "12"))
        .and(wiremock::matchers::query_param_is_missing("$skiptoken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [drive_item("f1.txt")], "@odata.nextLink": link(2)})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    for page in 2..=13 {
        let value = match page {
            3 => json!([]),
            _ => json!([drive_item(&format!("f{}.txt", if page < 3 { page } else { page - 1 }))]),
        };
        Mock::given(method("GET"))
            .and(path(format!("{DRIVE}/root/children")))
            .and(header("authorization", BEARER))
            .and(query_param("$top", "12"))
            .and(query_param("$skiptoken", format!("p{page}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"value": value, "@odata.nextLink": link(page + 1)})),
            )
            .expect(1)
            .mount(&graph)
            .await;
    }
    let result = call(&graph, "sharepoint_list_files", json!({"limit": 12}))
        .await
        .unwrap();
    let expected: Vec<String> = (1..=12).map(|n| format!("f{n}.txt")).collect();
    assert_eq!(item_names(&result), expected);
    assert_eq!(result["next_link"], json!(link(14)));
}

#[tokio::test]
async fn list_files_stops_at_the_hosts_page_cap_with_the_next_link() {
    let graph = MockServer::start().await;
    let more = format!("{}{DRIVE}/root/children?$top=200&$skiptoken=more", graph.uri());
    // Every page holds one item and points to the next, forever.
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$top", "200"))
        .and(wiremock::matchers::query_param_is_missing("$skiptoken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [drive_item("first.txt")], "@odata.nextLink": more})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$skiptoken", "more"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [drive_item("one.txt")], "@odata.nextLink": more})),
        )
        .expect(3)
        .mount(&graph)
        .await;
    let result = call_with_pages(&graph, 4, "sharepoint_list_files", json!({"limit": 1000}))
        .await
        .unwrap();
    assert_eq!(item_names(&result), ["first.txt", "one.txt", "one.txt", "one.txt"]);
    assert_eq!(result["next_link"], json!(more));
}

#[tokio::test]
async fn list_files_of_a_folder_uses_the_path_form_and_stays_on_graphs_origin() {
    let graph = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [drive_item("x")]})))
        .expect(0)
        .mount(&elsewhere)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/Shared%20Stuff/2024:/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$top", "50"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"id": "01dir", "name": "Q1", "folder": {"childCount": 0}}],
            "@odata.nextLink": format!("{}/v1.0/next", elsewhere.uri())
        })))
        .expect(1)
        .mount(&graph)
        .await;
    let result = call(
        &graph,
        "sharepoint_list_files",
        json!({"folder": "/Shared Stuff/2024/", "limit": 50}),
    )
    .await
    .unwrap();
    assert_eq!(result["items"][0]["is_folder"], true);
    assert_eq!(result["next_link"], Value::Null);
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root/children")))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3"))
        .expect(1)
        .mount(&graph)
        .await;
    let error = call(&graph, "sharepoint_list_files", json!({})).await.unwrap_err();
    let ToolError::Upstream { status, details, .. } = error else {
        panic!("{error:?}")
    };
    assert_eq!(status, 429);
    assert_eq!(details["retry_after"], 3);
}

#[tokio::test]
async fn a_401_invalidates_the_app_token_and_retries_once() {
    let graph = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(format!("{DRIVE}/root:/a.txt:/content")))
        .and(header("authorization", "Bearer app-token-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{DRIVE}/root:/a.txt:/content")))
        .and(header("authorization", "Bearer app-token-2"))
        .and(body_bytes(b"x".to_vec()))
        .respond_with(ResponseTemplate::new(201).set_body_json(drive_item("a.txt")))
        .expect(1)
        .mount(&graph)
        .await;
    let tokens = Arc::new(RecordingTokens::new());
    SharePointPlugin::new()
        .call_tool(
            &context(&graph, &tokens),
            "sharepoint_upload_file",
            json!({"path": "a.txt", "content": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(
        tokens.invalidated(),
        vec![(TokenGrant::ClientCredentials, "app-token-1".to_owned())]
    );
}

#[tokio::test]
async fn a_second_401_is_reported_without_a_third_attempt() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/a.txt:/content")))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&graph)
        .await;
    let error = call(&graph, "sharepoint_download_file", json!({"path": "a.txt"}))
        .await
        .unwrap_err();
    assert!(matches!(error, ToolError::Upstream { status: 401, .. }), "{error:?}");
}

#[tokio::test]
async fn a_refused_secret_is_named_at_install() {
    let graph = MockServer::start().await;
    let tokens = Arc::new(RecordingTokens::refusing(
        401,
        "invalid_client",
        "AADSTS7000215: Invalid client secret provided.",
    ));
    let error = SharePointPlugin::new()
        .on_lifecycle(&context(&graph, &tokens), Lifecycle::Install)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::InvalidConfig { field, .. } if field == "client_secret"),
        "{error:?}"
    );
    assert_eq!(tokens.requests()[0].grant, TokenGrant::ClientCredentials);
}

#[tokio::test]
async fn a_site_id_that_would_leave_its_segment_is_refused_at_install() {
    let graph = MockServer::start().await;
    let tokens = Arc::new(RecordingTokens::new());
    let error = SharePointPlugin::new()
        .on_lifecycle(
            &context_with(&graph, &tokens, json!({"site_id": ".."})),
            Lifecycle::Install,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::InvalidConfig { field, .. } if field == "site_id"),
        "{error:?}"
    );
    assert!(tokens.requests().is_empty());
}

#[tokio::test]
async fn change_notifications_answer_the_handshake_and_check_client_state() {
    let graph = MockServer::start().await;
    let tokens = Arc::new(RecordingTokens::new());
    let ctx = context(&graph, &tokens);
    let plugin = SharePointPlugin::new();
    let request = |query: Option<&str>, body: &[u8]| WebhookRequest {
        headers: http::HeaderMap::new(),
        query: query.map(str::to_owned),
        body: body.to_vec(),
    };
    assert_eq!(
        plugin
            .verify_webhook(&ctx.config, &request(Some("validationToken=token%2Bwith%20plus"), b""))
            .unwrap(),
        WebhookOutcome::Handshake {
            content_type: "text/plain".into(),
            body: b"token+with plus".to_vec()
        }
    );
    let good = br#"{"value":[{"subscriptionId":"s","clientState":"state-s3cret","changeType":"updated","resource":"drives/b!x/root"}]}"#;
    assert!(matches!(
        plugin.verify_webhook(&ctx.config, &request(None, good)),
        Ok(WebhookOutcome::Event(ref v)) if v.event_type.as_deref() == Some("updated") && v.delivery_id.is_none()
    ));
    let forged = br#"{"value":[{"subscriptionId":"s","clientState":"state-s3creT","changeType":"updated"}]}"#;
    assert!(matches!(
        plugin.verify_webhook(&ctx.config, &request(None, forged)),
        Err(WebhookError::InvalidSignature)
    ));
}

#[test]
fn registers_itself_with_the_host() {
    let registry = integrations_core::PluginRegistry::linked().expect("valid registry");
    assert!(registry.get("sharepoint").is_some());
    for tool in [
        "sharepoint_upload_file",
        "sharepoint_download_file",
        "sharepoint_list_files",
    ] {
        assert!(registry.find_tool(tool).is_some(), "{tool}");
    }
}
