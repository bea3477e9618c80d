//! Test doubles for connector tests, never part of the host.

use integrations_core::{HttpClient, HttpError, HttpRequest, HttpResponse};

/// A plain reqwest client standing in for the host's guarded one (which refuses loopback). Like
/// the host's, it does not follow redirects.
pub struct ReqwestHttpClient(reqwest::Client);

impl ReqwestHttpClient {
    /// A client that follows no redirects.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self(client)
    }
}

impl Default for ReqwestHttpClient {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestHttpClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        let mut answer = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        answer
            .body(body.to_vec())
            .map_err(|e| HttpError::Transport(e.to_string()))
    }

    async fn check_destination(&self, _url: &str) -> Result<(), HttpError> {
        Ok(())
    }
}
