//! SharePoint through the real host and its token manager: the identity platform, Graph and the
//! download host are wiremock servers expecting exactly the documented requests.

use serde_json::{json, Value};
use wiremock::matchers::{body_bytes, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{TestApp, TestResponse};
use crate::microsoft::{
    app_config, app_form, mount_token_endpoint, notification_request, token_answer, token_refusal, validation_request,
    CLIENT_SECRET, CLIENT_STATE,
};

const SITE: &str = "contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE";
const DRIVE: &str =
    "/v1.0/sites/contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE/drive";
const BEARER: &str = "Bearer app-access-1";

async fn install(app: &TestApp, key: &str, login: &MockServer, graph: &MockServer, extra: Value) -> TestResponse {
    let mut config = app_config(login, graph);
    config["site_id"] = json!(SITE);
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
        config.extend(extra);
    }
    app.post("/v1/plugins/sharepoint/install", key, config).await
}

/// SharePoint installed for tenant `acme`; the token endpoint grants `app-access-1` once.
async fn setup_with(extra: Value) -> (TestApp, MockServer, String) {
    let app = TestApp::start().await;
    let login = MockServer::start().await;
    let graph = MockServer::start().await;
    mount_token_endpoint(&login, app_form(CLIENT_SECRET), token_answer("app-access-1"), Some(1)).await;
    let key = app.tenant("acme", json!({})).await;
    let installed = install(&app, &key, &login, &graph, extra).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, graph, key)
}

async fn setup() -> (TestApp, MockServer, String) {
    setup_with(json!({})).await
}

fn item(name: &str) -> Value {
    json!({"id": format!("01{name}"), "name": name, "size": 3, "file": {"mimeType": "text/plain"},
           "lastModifiedDateTime": "2024-05-01T10:00:00Z", "webUrl": format!("https://contoso.sharepoint.com/Shared%20Documents/{name}")})
}

#[tokio::test]
async fn upload_puts_raw_bytes_at_the_encoded_path() {
    let (app, graph, key) = setup().await;
    Mock::given(method("PUT"))
        .and(path(format!("{DRIVE}/root:/Reports/Q1%20plan.md:/content")))
        .and(header("authorization", BEARER))
        .and(header("content-type", "application/octet-stream"))
        .and(body_bytes(b"# Plan\n".to_vec()))
        .respond_with(ResponseTemplate::new(201).set_body_json(item("Q1 plan.md")))
        .expect(1)
        .mount(&graph)
        .await;
    let response = app
        .post(
            "/v1/tools/sharepoint_upload_file",
            &key,
            json!({"path": "Reports/Q1 plan.md", "content": "# Plan\n"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["name"], "Q1 plan.md");
    assert_eq!(graph.received_requests().await.unwrap()[0].url.query(), None);
}

#[tokio::test]
async fn download_follows_graphs_redirect_without_the_token() {
    let (app, graph, key) = setup().await;
    let storage = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/Reports/notes.txt:/content")))
        .and(header("authorization", BEARER))
        .respond_with(
            ResponseTemplate::new(302).insert_header(
                "location",
                format!(
                    "{}/sites/acme/_layouts/15/download.aspx?UniqueId=abc&tempauth=v1.xyz",
                    storage.uri()
                )
                .as_str(),
            ),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/sites/acme/_layouts/15/download.aspx"))
        .and(query_param("tempauth", "v1.xyz"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/plain")
                .set_body_string("meeting notes"),
        )
        .expect(1)
        .mount(&storage)
        .await;
    let response = app
        .post(
            "/v1/tools/sharepoint_download_file",
            &key,
            json!({"path": "Reports/notes.txt"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["result"],
        json!({"path": "Reports/notes.txt", "size": 13, "content_type": "text/plain", "encoding": "text", "content": "meeting notes"})
    );
    let fetched = storage.received_requests().await.unwrap();
    assert!(!fetched[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn downloads_over_max_download_bytes_are_refused() {
    let (app, graph, key) = setup_with(json!({"max_download_bytes": 16})).await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/big.bin:/content")))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/blob/big", graph.uri()).as_str()),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/blob/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![0u8; 17]))
        .expect(1)
        .mount(&graph)
        .await;
    let problem = app
        .post("/v1/tools/sharepoint_download_file", &key, json!({"path": "big.bin"}))
        .await
        .assert_problem(502, "upstream-response-too-large");
    assert_eq!(problem["limit_bytes"], 16);
}

#[tokio::test]
async fn a_file_larger_than_the_hosts_default_call_budget_downloads_up_to_max_download_bytes() {
    // 6 MiB: over the host's default 4 MiB per call, under the default max_download_bytes (10 MiB).
    let (app, graph, key) = setup().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/video.bin:/content")))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/blob/video", graph.uri()).as_str()),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/blob/video"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; 6 * 1024 * 1024]))
        .expect(1)
        .mount(&graph)
        .await;
    let response = app
        .post("/v1/tools/sharepoint_download_file", &key, json!({"path": "video.bin"}))
        .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        &response.text()[..response.text().len().min(300)]
    );
    assert_eq!(response.json()["result"]["size"], 6 * 1024 * 1024);
}

#[tokio::test]
async fn paths_that_climb_are_refused_before_graph_is_called() {
    let (app, graph, key) = setup().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&graph)
        .await;
    for (tool, args) in [
        ("sharepoint_download_file", json!({"path": "../other-site/secret.txt"})),
        (
            "sharepoint_upload_file",
            json!({"path": "a/../../b.txt", "content": "x"}),
        ),
        ("sharepoint_list_files", json!({"folder": "a\\b"})),
    ] {
        app.post(&format!("/v1/tools/{tool}"), &key, args)
            .await
            .assert_problem(422, "invalid-arguments");
    }
}

#[tokio::test]
async fn list_files_follows_next_link() {
    let (app, graph, key) = setup().await;
    let next = format!(
        "{}{DRIVE}/root:/Shared%20Stuff:/children?$top=2&$skiptoken=p2",
        graph.uri()
    );
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/Shared%20Stuff:/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$top", "3"))
        .and(query_param_is_missing("$skiptoken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [item("a.txt"), item("b.txt")], "@odata.nextLink": next})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root:/Shared%20Stuff:/children")))
        .and(header("authorization", BEARER))
        .and(query_param("$skiptoken", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [item("c.txt")]})))
        .expect(1)
        .mount(&graph)
        .await;
    let response = app
        .post(
            "/v1/tools/sharepoint_list_files",
            &key,
            json!({"folder": "Shared Stuff", "limit": 3}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = response.json()["result"].clone();
    let names: Vec<&str> = result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "b.txt", "c.txt"]);
    assert_eq!(result["next_link"], Value::Null);
}

#[tokio::test]
async fn rate_limits_are_reported_with_retry_after() {
    let (app, graph, key) = setup().await;
    Mock::given(method("GET"))
        .and(path(format!("{DRIVE}/root/children")))
        .and(query_param("$top", "200"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(json!({"error": {"code": "activityLimitReached", "message": "The app or user has been throttled."}})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let problem = app
        .post("/v1/tools/sharepoint_list_files", &key, json!({}))
        .await
        .assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 429);
    assert_eq!(problem["upstream_errors"]["retry_after"], 120);
    // Longer than the call's deadline allows: not waited for, the call ends at once.
    assert_eq!(problem["retry_after"], 120);
    assert_eq!(problem["upstream_errors"]["code"], "activityLimitReached");
}

#[tokio::test]
async fn install_is_refused_naming_client_id_when_the_app_is_unknown() {
    let app = TestApp::start().await;
    let login = MockServer::start().await;
    let graph = MockServer::start().await;
    mount_token_endpoint(
        &login,
        app_form(CLIENT_SECRET),
        token_refusal(
            400,
            "unauthorized_client",
            "AADSTS700016: Application with identifier '6731de76-14a6-49ae-97bc-6eba6914391e' was not found in the directory 'Contoso'.",
        ),
        None,
    )
    .await;
    let key = app.tenant("acme", json!({})).await;
    let problem = install(&app, &key, &login, &graph, json!({}))
        .await
        .assert_problem(422, "invalid-config");
    assert_eq!(problem["errors"][0]["field"], "client_id");
    assert!(problem.to_string().contains("AADSTS700016"), "{problem}");
}

#[tokio::test]
async fn webhooks_answer_the_handshake_and_check_client_state() {
    let (app, _graph, _key) = setup().await;
    let response = app.send(validation_request("sharepoint", "abc%2Bdef+ghi")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "abc+def ghi");
    let notification = |state: &str| {
        json!({"value": [{"subscriptionId": "s1", "clientState": state, "changeType": "updated",
                          "resource": "drives/b!xyz/root", "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95"}]})
    };
    let accepted = app
        .send(notification_request("sharepoint", &notification(CLIENT_STATE)))
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    app.send(notification_request("sharepoint", &notification("wrong")))
        .await
        .assert_problem(404, "webhook-rejected");
    let stored = app
        .store()
        .list_webhook_deliveries("acme", Some("sharepoint"), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type.as_deref(), Some("updated"));
}
