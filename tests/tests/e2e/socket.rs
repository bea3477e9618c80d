//! One test over a real socket, as a client would reach the service.

use serde_json::{json, Value};

use crate::harness::{TestApp, ADMIN_TOKEN};

#[tokio::test]
async fn serves_the_api_over_tcp() {
    let app = TestApp::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = app.router.clone();
    // Served exactly as the binary serves, limits included.
    let limits = app.config.server_limits();
    let server = tokio::spawn(integrations::server::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{address}");

    let health: Value = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let created = client
        .post(format!("{base}/v1/admin/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let key = created.json::<Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let plugins = client
        .get(format!("{base}/v1/plugins"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(plugins.status(), 200);
    let unauthorized = client.get(format!("{base}/v1/plugins")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(unauthorized.headers()["content-type"], "application/problem+json");
    server.abort();
}
