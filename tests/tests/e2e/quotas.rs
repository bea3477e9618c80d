//! Per-tenant limits: the admin API's fields, the rate limits on the tenant API, MCP and inbound
//! webhooks, tool calls in flight and long-polls. Each limit is one tenant's alone: the others
//! keep answering.

use std::time::{Duration, Instant};

use axum::body::Body;
use integrations_store::RateLimit;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_server, jira_signature, TestApp, TestResponse, ADMIN_TOKEN};

async fn patch_tenant(app: &TestApp, id: &str, body: Value) -> TestResponse {
    let body = serde_json::to_vec(&body).unwrap();
    app.call(
        "PATCH",
        &format!("/v1/admin/tenants/{id}"),
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn the_admin_api_sets_shows_and_resets_a_tenants_limits() {
    let app = TestApp::start().await;
    let created = app
        .post(
            "/v1/admin/tenants",
            ADMIN_TOKEN,
            json!({"id": "acme", "rate_limit": {"per_sec": 2.5, "burst": 10}, "max_queued_jobs": 7}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let shown = app.get("/v1/admin/tenants/acme", ADMIN_TOKEN).await.json();
    assert_eq!(shown["rate_limit"], json!({"per_sec": 2.5, "burst": 10}));
    assert_eq!(shown["max_queued_jobs"], 7);
    assert_eq!(shown["webhook_rate_limit"], Value::Null);
    assert_eq!(shown["max_concurrent_tool_calls"], Value::Null);
    assert_eq!(shown["effective_limits"]["max_concurrent_tool_calls"], 64);
    assert_eq!(shown["effective_limits"]["max_webhook_endpoints"], 100);
    assert_eq!(shown["effective_limits"]["max_queued_jobs"], 7);

    // A field left out keeps its value; null returns it to the default.
    let patched = patch_tenant(
        &app,
        "acme",
        json!({"rate_limit": null, "max_concurrent_tool_calls": 3, "webhook_rate_limit": {"per_sec": 1, "burst": 1}}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    let shown = patched.json();
    assert_eq!(shown["rate_limit"], Value::Null);
    assert_eq!(shown["max_queued_jobs"], 7);
    assert_eq!(shown["max_concurrent_tool_calls"], 3);
    assert_eq!(shown["webhook_rate_limit"], json!({"per_sec": 1.0, "burst": 1}));
    let listed = app.get("/v1/admin/tenants", ADMIN_TOKEN).await.json();
    assert_eq!(listed["tenants"][0]["max_concurrent_tool_calls"], 3);

    for refused in [
        json!({"rate_limit": {"per_sec": 0, "burst": 1}}),
        json!({"rate_limit": {"per_sec": 1, "burst": 0}}),
        json!({"rate_limit": {"per_sec": 1}}),
        json!({"rate_limit": {"per_sec": 1, "burst": 1, "window": 3}}),
        json!({"max_queued_jobs": -1}),
        json!({"max_webhook_endpoints": "many"}),
    ] {
        patch_tenant(&app, "acme", refused.clone())
            .await
            .assert_problem(422, "invalid-request");
    }
    assert_eq!(
        app.get("/v1/admin/tenants/acme", ADMIN_TOKEN).await.json()["max_concurrent_tool_calls"],
        3
    );
}

fn rate(per_sec: f64, burst: u32) -> Value {
    json!({"per_sec": per_sec, "burst": burst})
}

#[tokio::test]
async fn a_tenant_over_its_rate_limit_gets_429_with_the_wait_and_the_others_do_not() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme", json!({})).await;
    let globex = app.tenant("globex", json!({})).await;
    assert_eq!(
        patch_tenant(&app, "acme", json!({"rate_limit": rate(0.01, 3)}))
            .await
            .status,
        200
    );

    for _ in 0..3 {
        assert_eq!(app.get("/v1/tools", &acme).await.status, 200);
    }
    let refused = app.get("/v1/plugins", &acme).await;
    let problem = refused.assert_problem(429, "rate-limited");
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    // One token per 100 s: the wait is whole seconds, at least one, at most the refill period.
    assert!((1..=100).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(problem["retry_after"], retry_after);
    assert_eq!(refused.headers["ratelimit-policy"], "\"tenant\";q=3;w=300");
    assert_eq!(
        refused.headers["ratelimit"],
        format!("\"tenant\";r=0;t={retry_after}").as_str()
    );

    // Every tenant route, whatever the method; other tenants are not touched.
    app.post("/v1/events", &acme, json!({"type": "x"}))
        .await
        .assert_problem(429, "rate-limited");
    for _ in 0..10 {
        assert_eq!(app.get("/v1/tools", &globex).await.status, 200);
    }

    // The operator's change takes effect at once.
    assert_eq!(
        patch_tenant(&app, "acme", json!({"rate_limit": null})).await.status,
        200
    );
    assert_eq!(app.get("/v1/tools", &acme).await.status, 200);
}

#[tokio::test]
async fn the_deployment_default_applies_to_tenants_without_their_own() {
    let app = TestApp::start_with(|config| {
        config.tenant_limits.rate_limit = Some(RateLimit {
            per_sec: 0.01,
            burst: 2,
        });
    })
    .await;
    let acme = app.tenant("acme", json!({})).await;
    let vip = app.tenant("vip", json!({})).await;
    assert_eq!(
        patch_tenant(&app, "vip", json!({"rate_limit": rate(1000.0, 1000)}))
            .await
            .status,
        200
    );
    assert_eq!(app.get("/v1/tools", &acme).await.status, 200);
    assert_eq!(app.get("/v1/tools", &acme).await.status, 200);
    app.get("/v1/tools", &acme).await.assert_problem(429, "rate-limited");
    for _ in 0..5 {
        assert_eq!(app.get("/v1/tools", &vip).await.status, 200);
    }
}

#[tokio::test]
async fn the_mcp_endpoint_counts_against_the_tenants_rate_limit() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme", json!({})).await;
    assert_eq!(
        patch_tenant(&app, "acme", json!({"rate_limit": rate(0.01, 1)}))
            .await
            .status,
        200
    );
    assert_eq!(app.get("/v1/tools", &acme).await.status, 200);
    let served = app.serve().await;
    let response = reqwest::Client::new()
        .post(format!("{}/mcp", served.base))
        .bearer_auth(&acme)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

fn jira_delivery(tenant: &str, delivery_id: &str, secret: Option<&str>) -> http::Request<Body> {
    let body = br#"{"webhookEvent":"jira:issue_created","issue":{"key":"ABC-1"}}"#;
    let mut request = http::Request::post(format!("/v1/webhooks/jira/{tenant}"))
        .header("content-type", "application/json")
        .header("x-atlassian-webhook-identifier", delivery_id);
    if let Some(secret) = secret {
        request = request.header("x-hub-signature", jira_signature(secret, body));
    }
    request.body(Body::from(body.to_vec())).unwrap()
}

#[tokio::test]
async fn inbound_webhooks_have_their_own_rate_limit_counted_once_verified() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let jira = jira_server().await;
    assert_eq!(
        app.install_jira(&key, &jira.uri(), "t", Some("hook-secret"))
            .await
            .status,
        201
    );
    assert_eq!(
        patch_tenant(&app, "acme", json!({"webhook_rate_limit": rate(0.01, 2)}))
            .await
            .status,
        200
    );
    // Unsigned deliveries are refused as always and spend nothing.
    for n in 0..5 {
        let unsigned = app.send(jira_delivery("acme", &format!("u{n}"), None)).await;
        unsigned.assert_problem(404, "webhook-rejected");
    }
    for n in 0..2 {
        assert_eq!(
            app.send(jira_delivery("acme", &format!("d{n}"), Some("hook-secret")))
                .await
                .status,
            202
        );
    }
    let refused = app.send(jira_delivery("acme", "d2", Some("hook-secret"))).await;
    refused.assert_problem(429, "rate-limited");
    assert_eq!(refused.headers["ratelimit-policy"], "\"webhooks\";q=2;w=200");
    // The tenant API has a bucket of its own.
    assert_eq!(app.get("/v1/tools", &key).await.status, 200);
}

/// Jira answering `GET /rest/api/3/issue/*` after `delay`.
async fn slow_issue(jira: &MockServer, delay: Duration) {
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/rest/api/3/issue/[A-Z]+-[0-9]+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "1", "key": "ABC-1"}))
                .set_delay(delay),
        )
        .mount(jira)
        .await;
}

async fn issue_requests(jira: &MockServer) -> usize {
    jira.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path().starts_with("/rest/api/3/issue/"))
        .count()
}

#[tokio::test]
async fn past_its_concurrent_tool_calls_a_tenant_gets_429_at_once_and_others_still_call() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme", json!({})).await;
    let globex = app.tenant("globex", json!({})).await;
    let jira = jira_server().await;
    for key in [&acme, &globex] {
        assert_eq!(app.install_jira(key, &jira.uri(), "t", None).await.status, 201);
    }
    slow_issue(&jira, Duration::from_secs(3)).await;
    assert_eq!(
        patch_tenant(&app, "acme", json!({"max_concurrent_tool_calls": 2}))
            .await
            .status,
        200
    );

    let running: Vec<_> = (0..2)
        .map(|_| {
            let (app, key) = (app.router.clone(), acme.clone());
            tokio::spawn(async move { call_get_issue(app, &key).await })
        })
        .collect();
    let started = Instant::now();
    while issue_requests(&jira).await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the two calls never reached Jira"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = app
        .post("/v1/tools/jira_get_issue", &acme, json!({"issue_key": "ABC-3"}))
        .await;
    assert_eq!(refused.assert_problem(429, "too-many-concurrent-calls")["limit"], 2);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(issue_requests(&jira).await, 2, "the refused call reached the vendor");
    // Another tenant's call goes through while acme's two run.
    let other = app
        .post("/v1/tools/jira_get_issue", &globex, json!({"issue_key": "ABC-4"}))
        .await;
    assert_eq!(other.status, 200, "{}", other.text());
    for call in running {
        assert_eq!(call.await.unwrap(), 200);
    }
    // Their slots are free again.
    let again = app
        .post("/v1/tools/jira_get_issue", &acme, json!({"issue_key": "ABC-5"}))
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
}

async fn call_get_issue(router: axum::Router, key: &str) -> u16 {
    use tower::ServiceExt;
    let request = http::Request::post("/v1/tools/jira_get_issue")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"issue_key": "ABC-1"}).to_string()))
        .unwrap();
    router.oneshot(request).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn past_its_long_polls_a_tenants_read_answers_at_once() {
    let app = TestApp::start_with(|config| config.tenant_limits.max_long_polls = 2).await;
    let acme = app.tenant("acme", json!({})).await;
    let globex = app.tenant("globex", json!({})).await;
    // The install event of a tenant's first read: read past everything there is now.
    let (_, cursor) = app.read_events(&acme, None, 0).await;
    let wait_path = format!("/v1/events?wait=20&after={cursor}");
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let (router, key, path) = (app.router.clone(), acme.clone(), wait_path.clone());
            tokio::spawn(async move { get(router, &key, &path).await })
        })
        .collect();
    // Both are waiting once the service counts them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let third = app.get(&wait_path, &acme).await;
    assert_eq!(third.status, 200, "{}", third.text());
    assert_eq!(third.json()["events"], json!([]));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the third long-poll waited {:?} instead of answering at once",
        started.elapsed()
    );
    // Another tenant's long-poll still waits for its events: it is woken by one.
    let (_, globex_cursor) = app.read_events(&globex, None, 0).await;
    let globex_wait = {
        let (router, key) = (app.router.clone(), globex.clone());
        let path = format!("/v1/events?wait=20&after={globex_cursor}");
        tokio::spawn(async move { get(router, &key, &path).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.post("/v1/events", &globex, json!({"type": "ping"})).await.status,
        202
    );
    let woken = globex_wait.await.unwrap();
    assert_eq!(woken["events"][0]["type"], "ping");
    for poll in waiting {
        poll.abort();
    }
}

async fn get(router: axum::Router, key: &str, path: &str) -> Value {
    use tower::ServiceExt;
    let request = http::Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_tenant_body_of_the_wrong_shape_is_refused_naming_its_field() {
    let app = TestApp::start().await;
    let cases = [
        (json!({"traits": {}}), "missing field `id`"),
        (json!({"id": "acme", "traits": "gold"}), "traits: "),
        (
            json!({"id": "acme", "outbound_allow_cidrs": [1]}),
            "outbound_allow_cidrs[0]: ",
        ),
        (
            json!({"id": "acme", "max_queued_jobs": -1}),
            "max_queued_jobs: must be null or a whole number",
        ),
        (
            json!({"id": "acme", "rate_limit": {"per_sec": 1}}),
            "rate_limit: must be null or an object",
        ),
    ];
    for (body, wanted) in cases {
        let refused = app.post("/v1/admin/tenants", ADMIN_TOKEN, body.clone()).await;
        let problem = refused.assert_problem(422, "invalid-request");
        let detail = problem["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(wanted), "{body}: {detail}");
    }
    let body = json!({"max_queued_jobs": "many"}).to_string().into_bytes();
    let patched = app
        .call("PATCH", "/v1/admin/tenants/nobody", Some(ADMIN_TOKEN), Some(body))
        .await;
    patched.assert_problem(422, "invalid-request");
    assert_eq!(
        app.get("/v1/admin/tenants", ADMIN_TOKEN).await.json()["tenants"],
        json!([]),
        "nothing was created"
    );
}
