//! The requests connectors send to JSON APIs, built one way: the URL with its query pairs
//! percent-encoded, `Accept: application/json`, the credential marked sensitive, and a JSON body
//! with its content type.

use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::Method;
use serde::Serialize;
use url::Url;

use crate::{HttpRequest, ToolError};

/// An outbound request to a JSON API, to be turned into an [`HttpRequest`] by [`JsonRequest::build`].
/// Cloneable, so a caller can send it again (with a fresh credential after a 401).
#[derive(Clone, Debug)]
pub struct JsonRequest {
    method: Method,
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The content type and bytes of the body, or why the body could not be written.
    body: Option<Result<(&'static str, Vec<u8>), String>>,
}

impl JsonRequest {
    /// A request of `method` to `url`, accepting JSON, without a body.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }

    /// A `POST` to `url`.
    pub fn post(url: Url) -> Self {
        Self::new(Method::POST, url)
    }

    /// Appends `name=value` to the query, form-urlencoded.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(name, value);
        self
    }

    /// Sends `value` as `Authorization`, marked sensitive so that no log or `Debug` shows it.
    pub fn authorization(mut self, value: &HeaderValue) -> Self {
        let mut value = value.clone();
        value.set_sensitive(true);
        self.headers.push((AUTHORIZATION, value));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sends `body` serialised as JSON, `Content-Type: application/json`.
    pub fn json(self, body: &impl Serialize) -> Self {
        self.json_as("application/json", body)
    }

    /// Sends `body` serialised as JSON under another content type (Slack wants
    /// `application/json; charset=utf-8`).
    pub fn json_as(mut self, content_type: &'static str, body: &impl Serialize) -> Self {
        let bytes = serde_json::to_vec(body).map_err(|e| format!("cannot write the JSON body: {e}"));
        self.body = Some(bytes.map(|bytes| (content_type, bytes)));
        self
    }

    /// Sends `body` as it is, with its content type (an upload).
    pub fn bytes(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.body = Some(Ok((content_type, body)));
        self
    }

    /// Where it goes.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The request to hand the host's [`HttpClient`](crate::HttpClient). Failing here is the
    /// host's fault, not the caller's: [`ToolError::Internal`].
    pub fn build(&self) -> Result<HttpRequest, ToolError> {
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(self.url.as_str())
            .header(ACCEPT, "application/json");
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let body = match &self.body {
            Some(Ok((content_type, bytes))) => {
                builder = builder.header(CONTENT_TYPE, *content_type);
                bytes.clone()
            }
            Some(Err(reason)) => return Err(ToolError::Internal(reason.clone())),
            None => Vec::new(),
        };
        builder
            .body(body)
            .map_err(|e| ToolError::Internal(format!("cannot build the request: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn url(raw: &str) -> Url {
        Url::parse(raw).unwrap()
    }

    #[test]
    fn builds_a_json_request_with_query_credential_and_body() {
        let authorization = HeaderValue::from_static("Bearer t0ken");
        let request = JsonRequest::post(url("https://api.example.com/v1/items"))
            .query("q", "a b&c")
            .query("limit", "10")
            .authorization(&authorization)
            .json(&json!({"name": "x"}))
            .build()
            .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri().to_string(),
            "https://api.example.com/v1/items?q=a+b%26c&limit=10"
        );
        assert_eq!(request.headers()[ACCEPT], "application/json");
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        assert!(!format!("{request:?}").contains("t0ken"));
        assert_eq!(request.body(), br#"{"name":"x"}"#);
    }

    #[test]
    fn a_get_has_no_body_and_no_content_type() {
        let request = JsonRequest::get(url("http://127.0.0.1:9/status")).build().unwrap();
        assert_eq!(request.method(), Method::GET);
        assert!(request.body().is_empty());
        assert!(request.headers().get(CONTENT_TYPE).is_none());
    }

    #[test]
    fn keeps_the_content_type_it_is_given() {
        let request = JsonRequest::post(url("https://slack.com/api/chat.postMessage"))
            .json_as("application/json; charset=utf-8", &json!({}))
            .build()
            .unwrap();
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json; charset=utf-8");
    }

    #[test]
    fn a_body_that_cannot_be_written_is_an_internal_error() {
        // JSON objects have string keys only: a map keyed by a pair cannot be written.
        let mut unwritable = BTreeMap::new();
        unwritable.insert((1, 2), "x");
        let error = JsonRequest::post(url("https://api.example.com/"))
            .json(&unwritable)
            .build()
            .expect_err("a map with non-string keys is not JSON");
        assert!(matches!(error, ToolError::Internal(_)), "{error:?}");
    }
}
