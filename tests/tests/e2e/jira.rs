//! Every Jira tool and the install/configure credential check against a wiremock Jira that
//! expects exactly the documented request.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_basic, jira_server, TestApp, TestResponse, JIRA_EMAIL};

async fn setup() -> (TestApp, MockServer, String) {
    setup_with(|_| {}).await
}

/// Jira installed for tenant `acme` on a host whose config `adjust` changed.
async fn setup_with(adjust: impl FnOnce(&mut integrations::Config)) -> (TestApp, MockServer, String) {
    let app = TestApp::start_with(adjust).await;
    let jira = jira_server().await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_jira(&key, &jira.uri(), "jira-api-token", None).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, jira, key)
}

#[tokio::test]
async fn create_issue_sends_adf_description_with_basic_auth() {
    let (app, jira, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .and(header("authorization", jira_basic("jira-api-token").as_str()))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_json(json!({"fields": {
            "project": {"key": "ABC"},
            "summary": "Printer on fire",
            "issuetype": {"name": "Bug"},
            "description": {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "It is really on fire."}]}
            ]}
        }})))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"id": "10000", "key": "ABC-24", "self": format!("{}/rest/api/3/issue/10000", jira.uri())}),
        ))
        .expect(1)
        .mount(&jira)
        .await;
    let response = app
        .post(
            "/v1/tools/jira_create_issue",
            &key,
            json!({"project": "ABC", "summary": "Printer on fire", "description": "It is really on fire.", "issue_type": "Bug"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"]["key"], "ABC-24");
}

#[tokio::test]
async fn create_issue_defaults_to_task_without_description() {
    let (app, jira, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .and(body_json(
            json!({"fields": {"project": {"key": "ABC"}, "summary": "S", "issuetype": {"name": "Task"}}}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "1", "key": "ABC-1", "self": "x"})))
        .expect(1)
        .mount(&jira)
        .await;
    assert_eq!(
        app.post(
            "/v1/tools/jira_create_issue",
            &key,
            json!({"project": "ABC", "summary": "S"})
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn vendor_errors_come_back_with_upstream_status_and_messages() {
    let (app, jira, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": ["Project does not exist"],
            "errors": {"issuetype": "Specify a valid issue type"}
        })))
        .mount(&jira)
        .await;
    let response = app
        .post(
            "/v1/tools/jira_create_issue",
            &key,
            json!({"project": "NOPE", "summary": "S"}),
        )
        .await;
    let problem = response.assert_problem(502, "upstream-error");
    assert_eq!(problem["upstream_status"], 400);
    assert_eq!(
        problem["upstream_errors"]["errorMessages"],
        json!(["Project does not exist"])
    );
    assert_eq!(
        problem["upstream_errors"]["errors"]["issuetype"],
        "Specify a valid issue type"
    );
    assert!(problem["detail"].as_str().unwrap().contains("Project does not exist"));
}

#[tokio::test]
async fn get_issue_passes_fields_and_reports_404() {
    let (app, jira, key) = setup().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-7"))
        .and(query_param("fields", "summary,status"))
        .and(header("authorization", jira_basic("jira-api-token").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "7", "key": "ABC-7", "fields": {"summary": "x"}})),
        )
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-8"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}),
        ))
        .mount(&jira)
        .await;
    let found = app
        .post(
            "/v1/tools/jira_get_issue",
            &key,
            json!({"issue_key": "ABC-7", "fields": ["summary", "status"]}),
        )
        .await;
    assert_eq!(found.json()["result"]["fields"]["summary"], "x");
    let missing = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-8"}))
        .await;
    assert_eq!(missing.assert_problem(502, "upstream-error")["upstream_status"], 404);
}

#[tokio::test]
async fn search_follows_next_page_token_until_the_last_page() {
    let (app, jira, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(header("authorization", jira_basic("jira-api-token").as_str()))
        .and(body_json(
            json!({"jql": "project = ABC", "maxResults": 100, "fields": ["summary", "status"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [{"key": "ABC-1"}, {"key": "ABC-2"}], "nextPageToken": "page-2", "isLast": false
        })))
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_json(json!({"jql": "project = ABC", "maxResults": 99, "fields": ["summary", "status"], "nextPageToken": "page-2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": [{"key": "ABC-3"}], "isLast": true})))
        .expect(1)
        .mount(&jira)
        .await;
    let response = app
        .post(
            "/v1/tools/jira_search_issues",
            &key,
            // Two pages at most: the first brings 2 issues, the second is asked for the other 99.
            json!({"jql": "project = ABC", "max_results": 101}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = &response.json()["result"];
    let keys: Vec<&str> = result["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["ABC-1", "ABC-2", "ABC-3"]);
    assert_eq!(result["is_last"], true);
}

#[tokio::test]
async fn search_stops_at_max_results() {
    let (app, jira, key) = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_json(
            json!({"jql": "order by created", "maxResults": 2, "fields": ["summary"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [{"key": "A-1"}, {"key": "A-2"}], "nextPageToken": "more", "isLast": false
        })))
        .expect(1)
        .mount(&jira)
        .await;
    let response = app
        .post(
            "/v1/tools/jira_search_issues",
            &key,
            json!({"jql": "order by created", "max_results": 2, "fields": ["summary"]}),
        )
        .await;
    let result = &response.json()["result"];
    assert_eq!(result["issues"].as_array().unwrap().len(), 2);
    assert_eq!(result["next_page_token"], "more");
    // The removed endpoint is never called.
    let requests = jira.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| r.url.path() != "/rest/api/3/search"));
}

/// The keys of the issues a search returned.
fn issue_keys(result: &serde_json::Value) -> Vec<&str> {
    result["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|issue| issue["key"].as_str().expect("key"))
        .collect()
}

#[tokio::test]
async fn search_follows_short_pages_until_max_results() {
    let (app, jira, key) = setup().await;
    // Asked for 3, Jira answers 2 and a token: the third issue is asked for with the token.
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_json(
            json!({"jql": "project = ABC", "maxResults": 3, "fields": ["summary", "status"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [{"key": "ABC-1"}, {"key": "ABC-2"}], "nextPageToken": "page-2", "isLast": false
        })))
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_json(json!({"jql": "project = ABC", "maxResults": 1, "fields": ["summary", "status"], "nextPageToken": "page-2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [{"key": "ABC-3"}], "nextPageToken": "page-3", "isLast": false
        })))
        .expect(1)
        .mount(&jira)
        .await;
    let response = app
        .post(
            "/v1/tools/jira_search_issues",
            &key,
            json!({"jql": "project = ABC", "max_results": 3}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = &response.json()["result"];
    assert_eq!(issue_keys(result), ["ABC-1", "ABC-2", "ABC-3"]);
    assert_eq!(result["is_last"], false);
    assert_eq!(result["next_page_token"], "page-3");
}

#[tokio::test]
async fn search_stops_at_the_operators_page_cap_with_the_token() {
    let (app, jira, key) = setup_with(|config| config.tool_max_pages = 3).await;
    // One issue a page and always a token: a chain without end.
    let endless = ResponseTemplate::new(200).set_body_json(json!({
        "issues": [{"key": "ABC-1"}], "nextPageToken": "more", "isLast": false
    }));
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_json(
            json!({"jql": "order by created", "maxResults": 100, "fields": ["summary", "status"]}),
        ))
        .respond_with(endless.clone())
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_json(json!({"jql": "order by created", "maxResults": 100, "fields": ["summary", "status"], "nextPageToken": "more"})))
        .respond_with(endless)
        .expect(2)
        .mount(&jira)
        .await;
    let response = app
        .post(
            "/v1/tools/jira_search_issues",
            &key,
            json!({"jql": "order by created", "max_results": 1000}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let result = &response.json()["result"];
    assert_eq!(issue_keys(result), ["ABC-1", "ABC-1", "ABC-1"]);
    assert_eq!(result["is_last"], false);
    assert_eq!(result["next_page_token"], "more");
}

#[tokio::test]
async fn arguments_violating_the_schema_are_422_naming_the_field() {
    let (app, jira, key) = setup().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&jira)
        .await;
    let response = app
        .post(
            "/v1/tools/jira_create_issue",
            &key,
            json!({"project": "abc lower", "summary": ""}),
        )
        .await;
    let problem = response.assert_problem(422, "invalid-arguments");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["project", "summary"]);
    let search = app
        .post("/v1/tools/jira_search_issues", &key, json!({"max_results": 5000}))
        .await;
    let fields: Vec<String> = search.assert_problem(422, "invalid-arguments")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, vec!["jql", "max_results"]);
    app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "../../admin"}))
        .await
        .assert_problem(422, "invalid-arguments");
}

#[tokio::test]
async fn refuses_hosts_outside_the_allowlist_without_sending() {
    let app = TestApp::start().await;
    let jira = jira_server().await;
    let port = jira.address().port();
    let key = app.tenant("acme", json!({})).await;
    for host in [
        format!("http://127.0.0.2:{port}"),
        format!("https://127.0.0.2:{port}"),
        format!("https://[::1]:{port}"),
    ] {
        let problem = app
            .install_jira(&key, &host, "t", None)
            .await
            .assert_problem(422, "invalid-config");
        assert_eq!(problem["errors"][0]["field"], "host", "{host}");
    }
    // Installed while allowlisted, then the operator narrows the allowlist: calls are refused.
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", None).await.status, 201);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&jira)
        .await;
    let narrowed = app
        .restart_with(|c| c.outbound_allow_cidrs = "127.0.0.3/32".into())
        .await;
    narrowed
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
        .await
        .assert_problem(422, "destination-refused");
}

/// A loopback address nobody listens on.
fn closed_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn unreachable_vendor_is_502_not_500() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    // Installed while Jira answered, then Jira goes away.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let jira = MockServer::builder().listener(listener).start().await;
    crate::harness::mount_jira_myself(&jira).await;
    assert_eq!(app.install_jira(&key, &jira.uri(), "t", None).await.status, 201);
    drop(jira);
    while std::net::TcpStream::connect(address).is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
        .await
        .assert_problem(502, "upstream-unavailable");
}

const GOOD_TOKEN: &str = "jira-good-token";
const REFUSED_TOKEN: &str = "jira-refused-token";

/// Jira's `myself` for exactly this token, answering `response`, expected `times` times.
async fn mount_myself(jira: &MockServer, token: &str, response: ResponseTemplate, times: u64) {
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .and(header("authorization", jira_basic(token).as_str()))
        .and(header("accept", "application/json"))
        .respond_with(response)
        .expect(times)
        .mount(jira)
        .await;
}

fn myself_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "accountId": "5b10a2844c20165700ede21g", "emailAddress": JIRA_EMAIL, "displayName": "Bot", "active": true
    }))
}

/// What Jira Cloud answers a wrong API token: 401, sometimes with its usual error body.
fn jira_refuses() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(
        json!({"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}}),
    )
}

/// Asserts a 422 naming only `api_token` and returns its message.
fn refused_field_message(response: &TestResponse) -> String {
    let problem = response.assert_problem(422, "invalid-config");
    let errors = problem["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["field"], "api_token", "{problem}");
    errors[0]["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn install_checks_the_credentials_with_one_myself_request() {
    let app = TestApp::start().await;
    let jira = MockServer::start().await;
    mount_myself(&jira, GOOD_TOKEN, myself_ok(), 1).await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_jira(&key, &jira.uri(), GOOD_TOKEN, None).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    let requests = jira.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "exactly one request at install");
    let myself = &requests[0];
    assert_eq!(myself.method.as_str(), "GET");
    assert_eq!(myself.url.path(), "/rest/api/3/myself");
    assert_eq!(myself.url.query(), None);
    assert!(myself.body.is_empty());
    assert_eq!(
        myself.headers.get("authorization").unwrap(),
        "Basic Ym90QGV4YW1wbGUuY29tOmppcmEtZ29vZC10b2tlbg=="
    );
}

#[tokio::test]
async fn refused_credentials_are_422_on_api_token_with_jiras_message_and_nothing_stored() {
    let app = TestApp::start().await;
    let jira = MockServer::start().await;
    mount_myself(&jira, REFUSED_TOKEN, jira_refuses(), 1).await;
    let key = app.tenant("acme", json!({})).await;
    let response = app.install_jira(&key, &jira.uri(), REFUSED_TOKEN, Some("hook")).await;
    assert_eq!(
        refused_field_message(&response),
        "Client must be authenticated to access this resource."
    );
    assert!(!response.text().contains(REFUSED_TOKEN));
    assert_eq!(app.get("/v1/plugins/jira", &key).await.json()["state"], "not_installed");
    assert!(app.store().get_installation("acme", "jira").await.unwrap().is_none());
    assert!(app.store().get_secrets("acme", "jira").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refusal_without_a_jira_body_gets_a_clear_message() {
    let app = TestApp::start().await;
    let jira = MockServer::start().await;
    // Jira's edge often answers a bad token with an empty 401, or an HTML 403 page.
    mount_myself(&jira, REFUSED_TOKEN, ResponseTemplate::new(401), 1).await;
    mount_myself(
        &jira,
        "jira-forbidden-token",
        ResponseTemplate::new(403).set_body_raw("<html><body>Forbidden</body></html>", "text/html"),
        1,
    )
    .await;
    let key = app.tenant("acme", json!({})).await;
    let empty = app.install_jira(&key, &jira.uri(), REFUSED_TOKEN, None).await;
    assert_eq!(
        refused_field_message(&empty),
        "Jira did not accept this email and API token (HTTP 401)"
    );
    let html = app.install_jira(&key, &jira.uri(), "jira-forbidden-token", None).await;
    let message = refused_field_message(&html);
    assert!(message.contains("HTTP 403") && !message.contains("<html>"), "{message}");
}

#[tokio::test]
async fn configure_with_refused_credentials_is_422_and_keeps_the_old_config() {
    let app = TestApp::start().await;
    let jira = MockServer::start().await;
    mount_myself(&jira, GOOD_TOKEN, myself_ok(), 1).await;
    mount_myself(&jira, REFUSED_TOKEN, jira_refuses(), 1).await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .and(header("authorization", jira_basic(GOOD_TOKEN).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "key": "ABC-1"})))
        .expect(1)
        .mount(&jira)
        .await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(
        app.install_jira(&key, &jira.uri(), GOOD_TOKEN, Some("hook"))
            .await
            .status,
        201
    );
    let before = app.get("/v1/plugins/jira", &key).await.json();
    let response = app
        .put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": jira.uri(), "email": JIRA_EMAIL, "api_token": REFUSED_TOKEN}),
        )
        .await;
    assert_eq!(
        refused_field_message(&response),
        "Client must be authenticated to access this resource."
    );
    let after = app.get("/v1/plugins/jira", &key).await.json();
    assert_eq!(after["config"], before["config"]);
    assert_eq!(after["secrets_set"], json!(["api_token", "webhook_secret"]));
    // The old token is still the one used.
    let call = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
        .await;
    assert_eq!(call.status, 200, "{}", call.text());
}

#[tokio::test]
async fn a_failing_or_unreachable_jira_at_install_is_an_upstream_problem_not_a_422() {
    let app = TestApp::start().await;
    let jira = MockServer::start().await;
    mount_myself(
        &jira,
        GOOD_TOKEN,
        ResponseTemplate::new(503).set_body_json(json!({"errorMessages": ["Service unavailable"]})),
        // A GET answered 503 is retried: three attempts in all.
        3,
    )
    .await;
    let key = app.tenant("acme", json!({})).await;
    let failing = app.install_jira(&key, &jira.uri(), GOOD_TOKEN, None).await;
    assert_eq!(failing.assert_problem(502, "upstream-error")["upstream_status"], 503);
    app.install_jira(&key, &format!("http://{}", closed_port()), GOOD_TOKEN, None)
        .await
        .assert_problem(502, "upstream-unavailable");
    assert!(app.store().get_installation("acme", "jira").await.unwrap().is_none());
}
