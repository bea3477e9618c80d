//! The token manager against a wiremock token endpoint and an in-memory vault.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::{PluginConfig, Secret, TokenError, TokenGrant, TokenProvider, TokenRequest};
use integrations_oauth2::{RefreshTokenVault, StoredRefreshToken, TokenManager, VaultError};
use serde_json::{json, Map};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The vault as the host keeps it: one value per field, versioned by a counter.
#[derive(Default)]
struct MemoryVault {
    tokens: Mutex<BTreeMap<String, (String, u64)>>,
    reauthorization: Mutex<Option<String>>,
}

impl MemoryVault {
    fn with_refresh_token(value: &str) -> Arc<Self> {
        let vault = Self::default();
        vault.set(value);
        Arc::new(vault)
    }

    fn set(&self, value: &str) {
        let mut tokens = self.tokens.lock().unwrap();
        let version = tokens.get("refresh_token").map_or(0, |(_, v)| v + 1);
        tokens.insert("refresh_token".into(), (value.to_owned(), version));
    }

    fn current(&self) -> Option<String> {
        self.tokens.lock().unwrap().get("refresh_token").map(|(t, _)| t.clone())
    }
}

#[async_trait]
impl RefreshTokenVault for MemoryVault {
    async fn load(&self, _tenant: &str, _plugin: &str, field: &str) -> Result<Option<StoredRefreshToken>, VaultError> {
        Ok(self
            .tokens
            .lock()
            .unwrap()
            .get(field)
            .map(|(token, version)| StoredRefreshToken {
                token: Secret::new(token.clone()),
                version: version.to_be_bytes().to_vec(),
            }))
    }

    async fn replace(
        &self,
        _tenant: &str,
        _plugin: &str,
        field: &str,
        version: &[u8],
        rotated: &Secret,
    ) -> Result<bool, VaultError> {
        let mut tokens = self.tokens.lock().unwrap();
        match tokens.get_mut(field) {
            Some((token, current)) if current.to_be_bytes().as_slice() == version => {
                *token = rotated.expose().to_owned();
                *current += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn mark_reauthorization_required(
        &self,
        _tenant: &str,
        _plugin: &str,
        field: &str,
        version: &[u8],
        reason: &str,
    ) -> Result<(), VaultError> {
        let unchanged = self
            .tokens
            .lock()
            .unwrap()
            .get(field)
            .is_some_and(|(_, current)| current.to_be_bytes().as_slice() == version);
        if unchanged {
            *self.reauthorization.lock().unwrap() = Some(reason.to_owned());
        }
        Ok(())
    }
}

fn config(refresh_token: Option<&str>) -> Arc<PluginConfig> {
    let mut secrets = BTreeMap::new();
    if let Some(token) = refresh_token {
        secrets.insert("refresh_token".to_owned(), Secret::new(token));
    }
    Arc::new(PluginConfig::new(Map::new(), secrets))
}

fn provider(manager: &Arc<TokenManager>, refresh_token: Option<&str>) -> Arc<dyn TokenProvider> {
    manager.provider(
        "tenant-1",
        "teams",
        config(refresh_token),
        Arc::new(integrations_testing::ReqwestHttpClient::new()),
    )
}

fn request(endpoint: &MockServer, grant: TokenGrant) -> TokenRequest {
    TokenRequest {
        token_url: format!("{}/contoso/oauth2/v2.0/token", endpoint.uri()),
        client_id: "app-1".into(),
        client_secret: Secret::new("s3cret"),
        scope: "https://graph.microsoft.com/.default".into(),
        grant,
    }
}

fn refresh_grant() -> TokenGrant {
    TokenGrant::RefreshToken {
        secret_field: "refresh_token".into(),
    }
}

const CLIENT_CREDENTIALS_FORM: &str =
    "client_id=app-1&client_secret=s3cret&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials";

fn refresh_form(refresh_token: &str) -> String {
    format!(
        "client_id=app-1&client_secret=s3cret&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=refresh_token&refresh_token={refresh_token}"
    )
}

fn token(access_token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer", "expires_in": expires_in, "access_token": access_token
    }))
}

#[tokio::test]
async fn fifty_concurrent_calls_make_one_token_request() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/contoso/oauth2/v2.0/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(CLIENT_CREDENTIALS_FORM))
        .respond_with(token("at-1", 3599).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&endpoint)
        .await;
    let manager = TokenManager::new(Arc::new(MemoryVault::default()));
    let request = request(&endpoint, TokenGrant::ClientCredentials);
    let calls = (0..50).map(|_| {
        let (tokens, request) = (provider(&manager, None), request.clone());
        tokio::spawn(async move { tokens.access_token(&request).await })
    });
    for call in futures_join(calls).await {
        assert_eq!(call.expect("a token").expose(), "at-1");
    }
}

async fn futures_join<T: Send + 'static>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        results.push(handle.await.expect("task"));
    }
    results
}

#[tokio::test]
async fn a_token_is_reused_until_shortly_before_it_expires() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(token("at-short", 2))
        .expect(2)
        .mount(&endpoint)
        .await;
    let manager = TokenManager::new(Arc::new(MemoryVault::default()));
    let (tokens, request) = (
        provider(&manager, None),
        request(&endpoint, TokenGrant::ClientCredentials),
    );
    tokens.access_token(&request).await.expect("first");
    tokens.access_token(&request).await.expect("cached");
    assert_eq!(endpoint.received_requests().await.map(|r| r.len()), Some(1));
    // Renewed a tenth of its lifetime early: 1.8 s after it was requested.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    tokens.access_token(&request).await.expect("renewed");
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_and_used_next() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string(refresh_form("rt-1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": "at-1", "refresh_token": "rt-2"
        })))
        .expect(1)
        .mount(&endpoint)
        .await;
    Mock::given(method("POST"))
        .and(body_string(refresh_form("rt-2")))
        .respond_with(token("at-2", 3599))
        .expect(1)
        .mount(&endpoint)
        .await;
    let vault = MemoryVault::with_refresh_token("rt-1");
    let manager = TokenManager::new(vault.clone());
    let (tokens, request) = (provider(&manager, Some("rt-1")), request(&endpoint, refresh_grant()));
    let first = tokens.access_token(&request).await.expect("first");
    assert_eq!(first.expose(), "at-1");
    assert_eq!(vault.current().as_deref(), Some("rt-2"));
    // The API refused the access token: the next one comes from the rotated refresh token.
    tokens.invalidate(&request, &first);
    assert_eq!(tokens.access_token(&request).await.expect("second").expose(), "at-2");
    assert_eq!(vault.current().as_deref(), Some("rt-2"));
}

#[tokio::test]
async fn a_rotation_is_stored_even_when_the_call_that_started_it_is_cancelled() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"expires_in": 3599, "access_token": "at-1", "refresh_token": "rt-2"}))
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&endpoint)
        .await;
    let vault = MemoryVault::with_refresh_token("rt-1");
    let manager = TokenManager::new(vault.clone());
    let (tokens, request) = (provider(&manager, Some("rt-1")), request(&endpoint, refresh_grant()));
    let cancelled = tokio::time::timeout(Duration::from_millis(50), tokens.access_token(&request)).await;
    assert!(cancelled.is_err(), "the call should have been cancelled mid-fetch");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(vault.current().as_deref(), Some("rt-2"));
}

#[tokio::test]
async fn invalid_grant_marks_the_installation_for_reauthorisation() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "AADSTS70008: The provided authorization code or refresh token has expired."
        })))
        .mount(&endpoint)
        .await;
    let vault = MemoryVault::with_refresh_token("rt-old");
    let manager = TokenManager::new(vault.clone());
    let (tokens, request) = (provider(&manager, Some("rt-old")), request(&endpoint, refresh_grant()));
    let error = tokens.access_token(&request).await.expect_err("refused");
    assert!(
        matches!(&error, TokenError::ReauthorizationRequired(reason) if reason.contains("AADSTS70008")),
        "{error:?}"
    );
    let marked = vault.reauthorization.lock().unwrap().clone();
    assert!(marked.is_some_and(|reason| reason.contains("AADSTS70008")));
}

#[tokio::test]
async fn a_token_configured_during_a_failed_refresh_is_not_marked() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_grant", "error_description": "expired"}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&endpoint)
        .await;
    let vault = MemoryVault::with_refresh_token("rt-old");
    let manager = TokenManager::new(vault.clone());
    let (tokens, request) = (provider(&manager, Some("rt-old")), request(&endpoint, refresh_grant()));
    let refreshing = tokio::spawn(async move { tokens.access_token(&request).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    vault.set("rt-new");
    assert!(refreshing.await.expect("task").is_err());
    assert_eq!(*vault.reauthorization.lock().unwrap(), None);
    assert_eq!(vault.current().as_deref(), Some("rt-new"));
}

#[tokio::test]
async fn concurrent_calls_against_a_refused_secret_share_one_refusal() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided."
                }))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&endpoint)
        .await;
    let manager = TokenManager::new(Arc::new(MemoryVault::default()));
    let request = request(&endpoint, TokenGrant::ClientCredentials);
    let calls = (0..20).map(|_| {
        let (tokens, request) = (provider(&manager, None), request.clone());
        tokio::spawn(async move { tokens.access_token(&request).await })
    });
    for call in futures_join(calls).await {
        let error = call.expect_err("refused");
        assert!(
            matches!(&error, TokenError::Refused { status: 401, code, .. } if code == "invalid_client"),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn invalidating_a_token_already_replaced_keeps_the_new_one() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(token("at-1", 3599))
        .up_to_n_times(1)
        .mount(&endpoint)
        .await;
    Mock::given(method("POST"))
        .respond_with(token("at-2", 3599))
        .expect(1)
        .mount(&endpoint)
        .await;
    let manager = TokenManager::new(Arc::new(MemoryVault::default()));
    let (tokens, request) = (
        provider(&manager, None),
        request(&endpoint, TokenGrant::ClientCredentials),
    );
    let first = tokens.access_token(&request).await.expect("first");
    tokens.invalidate(&request, &first);
    let second = tokens.access_token(&request).await.expect("second");
    assert_eq!(second.expose(), "at-2");
    // A late 401 for the first token must not throw away the second.
    tokens.invalidate(&request, &first);
    assert_eq!(tokens.access_token(&request).await.expect("cached").expose(), "at-2");
}

#[tokio::test]
async fn a_changed_client_secret_never_gets_the_old_secrets_token() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string(CLIENT_CREDENTIALS_FORM))
        .respond_with(token("at-old", 3599))
        .expect(1)
        .mount(&endpoint)
        .await;
    Mock::given(method("POST"))
        .and(body_string(CLIENT_CREDENTIALS_FORM.replace("s3cret", "n3w")))
        .respond_with(token("at-new", 3599))
        .expect(1)
        .mount(&endpoint)
        .await;
    let manager = TokenManager::new(Arc::new(MemoryVault::default()));
    let tokens = provider(&manager, None);
    let old = request(&endpoint, TokenGrant::ClientCredentials);
    assert_eq!(tokens.access_token(&old).await.expect("old").expose(), "at-old");
    let new = TokenRequest {
        client_secret: Secret::new("n3w"),
        ..old
    };
    assert_eq!(tokens.access_token(&new).await.expect("new").expose(), "at-new");
}

#[tokio::test]
async fn a_token_endpoint_answer_that_is_not_a_token_is_reported_as_such() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>sign in</html>"))
        .mount(&endpoint)
        .await;
    let manager = TokenManager::new(Arc::new(MemoryVault::default()));
    let (tokens, request) = (
        provider(&manager, None),
        request(&endpoint, TokenGrant::ClientCredentials),
    );
    let error = tokens.access_token(&request).await.expect_err("malformed");
    assert!(matches!(error, TokenError::Malformed { status: 200 }), "{error:?}");
}

#[tokio::test]
async fn a_call_after_the_starter_was_cancelled_joins_the_running_refresh() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string(refresh_form("rt-1")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"expires_in": 3599, "access_token": "at-1", "refresh_token": "rt-2"}))
                .set_delay(Duration::from_millis(500)),
        )
        .expect(1)
        .mount(&endpoint)
        .await;
    let vault = MemoryVault::with_refresh_token("rt-1");
    let manager = TokenManager::new(vault.clone());
    let (tokens, request) = (provider(&manager, Some("rt-1")), request(&endpoint, refresh_grant()));
    let cancelled = tokio::time::timeout(Duration::from_millis(50), tokens.access_token(&request)).await;
    assert!(
        cancelled.is_err(),
        "the first call should have been cancelled mid-refresh"
    );
    // The refresh it started still runs: the next call waits for it instead of presenting rt-1
    // a second time (an identity provider that detects reuse would revoke the grant).
    let joined = tokens
        .access_token(&request)
        .await
        .expect("the running refresh's token");
    assert_eq!(joined.expose(), "at-1");
    assert_eq!(vault.current().as_deref(), Some("rt-2"));
    assert_eq!(endpoint.received_requests().await.map(|r| r.len()), Some(1));
}

#[tokio::test]
async fn an_expires_in_beyond_any_clock_is_clamped_not_a_panic() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(
                    r#"{"token_type": "Bearer", "expires_in": 18446744073709551615, "access_token": "at-forever"}"#,
                )
                .insert_header("content-type", "application/json"),
        )
        .expect(1)
        .mount(&endpoint)
        .await;
    let manager = TokenManager::new(Arc::new(MemoryVault::default()));
    let (tokens, request) = (
        provider(&manager, None),
        request(&endpoint, TokenGrant::ClientCredentials),
    );
    assert_eq!(
        tokens.access_token(&request).await.expect("a token").expose(),
        "at-forever"
    );
    assert_eq!(
        tokens.access_token(&request).await.expect("cached").expose(),
        "at-forever"
    );
}
