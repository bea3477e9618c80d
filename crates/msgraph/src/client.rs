//! Authorised Graph requests: a bearer token from the host's token manager, one retry with a fresh
//! token when Graph answers 401 (the cached token was revoked or expired early), and Graph's error
//! body mapped once.

use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use integrations_core::{
    HttpClient, HttpResponse, JsonRequest, PluginContext, Secret, TokenProvider, TokenRequest, ToolError,
};
use serde_json::{json, Value};

/// Graph calls under one credential (app-only or delegated), through the host's HTTP client.
pub struct GraphClient {
    http: Arc<dyn HttpClient>,
    tokens: Arc<dyn TokenProvider>,
    credential: TokenRequest,
}

impl GraphClient {
    /// Calls made with `credential`'s tokens, from the context's token manager and HTTP client.
    pub fn new(ctx: &PluginContext, credential: TokenRequest) -> Self {
        Self {
            http: ctx.http.clone(),
            tokens: ctx.tokens.clone(),
            credential,
        }
    }

    /// Sends `request` with a bearer token, reading at most `max_body_bytes` of the answer when
    /// given. A 401 drops that token and sends once more with a fresh one; a second 401 is returned
    /// like any other answer, so a token Graph keeps refusing cannot loop.
    pub async fn send(&self, request: &JsonRequest, max_body_bytes: Option<usize>) -> Result<HttpResponse, ToolError> {
        let token = self.tokens.access_token(&self.credential).await?;
        let response = self.send_once(request, &token, max_body_bytes).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.tokens.invalidate(&self.credential, &token);
        let fresh = self.tokens.access_token(&self.credential).await?;
        self.send_once(request, &fresh, max_body_bytes).await
    }

    /// Sends `request` and reads Graph's JSON answer (`null` for an empty 2xx body, e.g. 204).
    pub async fn json(&self, request: &JsonRequest) -> Result<Value, ToolError> {
        let response = self.send(request, None).await?;
        if !response.status().is_success() {
            return Err(graph_error(&response));
        }
        if response.body().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(response.body()).map_err(|_| ToolError::Upstream {
            status: response.status().as_u16(),
            message: "Graph answered with a body that is not JSON".into(),
            details: Value::Null,
        })
    }

    async fn send_once(
        &self,
        request: &JsonRequest,
        token: &Secret,
        max_body_bytes: Option<usize>,
    ) -> Result<HttpResponse, ToolError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| ToolError::Misconfigured("the access token is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        let request = request.clone().authorization(&authorization).build()?;
        let response = match max_body_bytes {
            Some(limit) => self.http.send_limited(request, limit).await?,
            None => self.http.send(request).await?,
        };
        Ok(response)
    }
}

/// Maps a failed Graph answer: `{"error":{"code","message"}}` becomes the message `code: message`
/// with the code in `details.code` and the body in `details.body`; a 429 adds `retry_after` seconds.
pub fn graph_error(response: &HttpResponse) -> ToolError {
    let status = response.status();
    let body: Option<Value> = serde_json::from_slice(response.body()).ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get("error"))
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (code, vendor_message) = (field("code"), field("message"));
    let mut details = json!({"code": code, "body": body});
    if status == StatusCode::TOO_MANY_REQUESTS {
        details["retry_after"] = json!(integrations_core::retry_after_secs(response));
    }
    let message = match (code, vendor_message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        (None, _) if status == StatusCode::TOO_MANY_REQUESTS => "rate limited".to_owned(),
        (None, _) => format!("Graph answered HTTP {}", status.as_u16()),
    };
    ToolError::Upstream {
        status: status.as_u16(),
        message,
        details,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use http::header::AUTHORIZATION;
    use integrations_core::{HttpError, HttpRequest, PluginConfig, TokenError, TokenGrant};
    use url::Url;

    use super::*;

    /// Answers with the queued statuses in turn and records each Authorization sent.
    struct Scripted {
        statuses: Mutex<Vec<u16>>,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl HttpClient for Scripted {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
            let auth = request.headers()[AUTHORIZATION].to_str().unwrap().to_owned();
            self.seen.lock().unwrap().push(auth);
            let status = self.statuses.lock().unwrap().remove(0);
            Ok(http::Response::builder().status(status).body(b"{}".to_vec()).unwrap())
        }
        async fn check_destination(&self, _url: &str) -> Result<(), HttpError> {
            Ok(())
        }
    }

    /// Hands out `token-1`, `token-2`, … , a new one after each invalidation.
    #[derive(Default)]
    struct Counting {
        generation: Mutex<u32>,
        invalidated: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TokenProvider for Counting {
        async fn access_token(&self, _request: &TokenRequest) -> Result<Secret, TokenError> {
            Ok(Secret::new(format!("token-{}", *self.generation.lock().unwrap() + 1)))
        }
        fn invalidate(&self, _request: &TokenRequest, rejected: &Secret) {
            self.invalidated.lock().unwrap().push(rejected.expose().to_owned());
            *self.generation.lock().unwrap() += 1;
        }
    }

    fn client(statuses: Vec<u16>) -> (GraphClient, Arc<Scripted>, Arc<Counting>) {
        let http = Arc::new(Scripted {
            statuses: Mutex::new(statuses),
            seen: Mutex::default(),
        });
        let tokens = Arc::new(Counting::default());
        let ctx = PluginContext {
            tenant_id: "t".into(),
            config: Arc::new(PluginConfig::default()),
            http: http.clone(),
            tokens: tokens.clone(),
            max_pages: PluginContext::DEFAULT_MAX_PAGES,
        };
        let credential = TokenRequest {
            token_url: "https://login.example/t/oauth2/v2.0/token".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            scope: "https://graph.microsoft.com/.default".into(),
            grant: TokenGrant::ClientCredentials,
        };
        (GraphClient::new(&ctx, credential), http, tokens)
    }

    fn request() -> JsonRequest {
        JsonRequest::get(Url::parse("https://graph.example/v1.0/x").unwrap())
    }

    #[tokio::test]
    async fn a_401_invalidates_the_token_and_retries_once_with_a_fresh_one() {
        let (client, http, tokens) = client(vec![401, 200]);
        assert_eq!(client.json(&request()).await.unwrap(), json!({}));
        assert_eq!(*http.seen.lock().unwrap(), ["Bearer token-1", "Bearer token-2"]);
        assert_eq!(*tokens.invalidated.lock().unwrap(), ["token-1"]);
    }

    #[tokio::test]
    async fn a_second_401_is_an_error_and_not_a_third_request() {
        let (client, http, tokens) = client(vec![401, 401, 200]);
        let error = client.json(&request()).await.unwrap_err();
        assert!(matches!(error, ToolError::Upstream { status: 401, .. }), "{error:?}");
        assert_eq!(http.seen.lock().unwrap().len(), 2);
        assert_eq!(tokens.invalidated.lock().unwrap().len(), 1);
    }

    #[test]
    fn graph_errors_carry_code_message_and_retry_after() {
        let response = http::Response::builder()
            .status(429)
            .header("retry-after", "7")
            .body(br#"{"error":{"code":"TooManyRequests","message":"Slow down"}}"#.to_vec())
            .unwrap();
        let ToolError::Upstream {
            status,
            message,
            details,
        } = graph_error(&response)
        else {
            panic!()
        };
        assert_eq!(status, 429);
        assert_eq!(message, "TooManyRequests: Slow down");
        assert_eq!(details["code"], "TooManyRequests");
        assert_eq!(details["retry_after"], 7);
        let bare = http::Response::builder().status(503).body(b"oops".to_vec()).unwrap();
        let ToolError::Upstream { message, details, .. } = graph_error(&bare) else {
            panic!()
        };
        assert_eq!(message, "Graph answered HTTP 503");
        assert_eq!(details, json!({"code": null, "body": null}));
    }
}
