//! Microsoft Graph's subscription validation (`POST …?validationToken=…`) through the HTTP API: the
//! answer is the same for every tenant, with the connector installed, disabled, not installed, or
//! no such tenant at all, so it tells nobody who has Teams or SharePoint.

use axum::body::Body;
use serde_json::json;
use wiremock::MockServer;

use crate::harness::{TestApp, TestResponse};
use crate::microsoft::{app_config, app_form, mount_token_endpoint, token_answer};

const PLUGINS: [&str; 2] = ["teams", "sharepoint"];
/// Graph's token, percent-encoded as Graph sends it, and decoded.
const ENCODED_TOKEN: &str = "Validation%3a+Testing+client+application+reachability+for+subscription+Request-Id%3a+b8a9";
const DECODED_TOKEN: &str = "Validation: Testing client application reachability for subscription Request-Id: b8a9";
/// The longest token echoed, in decoded bytes.
const MAX_TOKEN_BYTES: usize = 1024;

/// Tenants in every state a handshake could otherwise tell apart.
const INSTALLED: &str = "installed";
const DISABLED: &str = "disabled";
const WITHOUT_PLUGINS: &str = "bare";
const UNKNOWN: &str = "nobody-by-this-name";
const TENANTS: [&str; 4] = [INSTALLED, DISABLED, WITHOUT_PLUGINS, UNKNOWN];

/// Teams and SharePoint installed for `installed`, installed then disabled for `disabled`, nothing
/// for `bare`; no tenant `nobody-by-this-name`.
async fn setup() -> TestApp {
    let app = TestApp::start().await;
    let login = MockServer::start().await;
    let graph = MockServer::start().await;
    mount_token_endpoint(
        &login,
        app_form(crate::microsoft::CLIENT_SECRET),
        token_answer("app-access-1"),
        None,
    )
    .await;
    for tenant in [INSTALLED, DISABLED] {
        let key = app.tenant(tenant, json!({})).await;
        for plugin in PLUGINS {
            let mut config = app_config(&login, &graph);
            match plugin {
                "teams" => {
                    config["team_id"] = json!("fbe2bf47-16c8-47cf-b4a5-4b9b187c508b");
                    config["refresh_token"] = json!("refresh-token-1");
                }
                _ => config["site_id"] = json!("contoso.sharepoint.com,2C712604,2D2244C3"),
            }
            let installed = app.post(&format!("/v1/plugins/{plugin}/install"), &key, config).await;
            assert_eq!(installed.status, 201, "{plugin}: {}", installed.text());
            if tenant == DISABLED {
                let disabled = app
                    .post(&format!("/v1/plugins/{plugin}/disable"), &key, json!({}))
                    .await;
                assert_eq!(disabled.status, 200, "{plugin}: {}", disabled.text());
            }
        }
    }
    app.tenant(WITHOUT_PLUGINS, json!({})).await;
    app
}

async fn validate(app: &TestApp, plugin: &str, tenant: &str, encoded_token: &str) -> TestResponse {
    let request = http::Request::post(format!(
        "/v1/webhooks/{plugin}/{tenant}?validationToken={encoded_token}"
    ))
    .header("content-type", "text/plain; charset=utf-8")
    .body(Body::empty())
    .unwrap();
    app.send(request).await
}

/// Asserts that every tenant gets exactly the answer `installed` gets (status, headers, body), and
/// returns it.
async fn same_for_every_tenant(app: &TestApp, plugin: &str, encoded_token: &str) -> TestResponse {
    let reference = validate(app, plugin, INSTALLED, encoded_token).await;
    for tenant in TENANTS {
        let response = validate(app, plugin, tenant, encoded_token).await;
        assert_eq!(
            response.status,
            reference.status,
            "{plugin} for {tenant}: {}",
            response.text()
        );
        assert_eq!(response.headers, reference.headers, "{plugin} for {tenant}");
        assert_eq!(response.body, reference.body, "{plugin} for {tenant}");
    }
    reference
}

#[tokio::test]
async fn the_validation_handshake_is_answered_alike_whether_or_not_the_tenant_has_the_plugin() {
    let app = setup().await;
    for plugin in PLUGINS {
        let answer = same_for_every_tenant(&app, plugin, ENCODED_TOKEN).await;
        assert_eq!(answer.status, 200, "{plugin}: {}", answer.text());
        assert_eq!(
            answer.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/plain")
        );
        assert_eq!(answer.text(), DECODED_TOKEN, "{plugin}");
    }
    for tenant in TENANTS {
        let stored = app.store().list_webhook_deliveries(tenant, None, 10).await.unwrap();
        assert!(stored.is_empty(), "a handshake was stored for {tenant}");
    }
}

#[tokio::test]
async fn the_echoed_token_is_plain_text_a_browser_must_not_sniff() {
    let app = setup().await;
    let markup = "%3Chtml%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    for plugin in PLUGINS {
        let answer = same_for_every_tenant(&app, plugin, markup).await;
        assert_eq!(answer.status, 200, "{plugin}: {}", answer.text());
        assert_eq!(
            answer
                .headers
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{plugin}"
        );
        assert_eq!(
            answer.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/plain")
        );
    }
}

#[tokio::test]
async fn a_validation_token_over_the_limit_is_the_same_400_for_every_tenant() {
    let app = setup().await;
    for plugin in PLUGINS {
        let longest = same_for_every_tenant(&app, plugin, &"a".repeat(MAX_TOKEN_BYTES)).await;
        assert_eq!(longest.status, 200, "{plugin}: the longest token is echoed");
        assert_eq!(longest.body.len(), MAX_TOKEN_BYTES);
        let refused = same_for_every_tenant(&app, plugin, &"a".repeat(MAX_TOKEN_BYTES + 1)).await;
        let problem = refused.assert_problem(400, "invalid-webhook-handshake");
        assert!(
            !problem.to_string().contains("aaaa"),
            "the token is not echoed: {problem}"
        );
        let empty = same_for_every_tenant(&app, plugin, "").await;
        empty.assert_problem(400, "invalid-webhook-handshake");
    }
}
