//! One failure as a problem: its status, stable `type`, title, detail, extension members and the
//! response headers that go with it, written out as an RFC 9457 `application/problem+json` document.

use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::StatusCode;
use serde_json::{json, Map, Value};

/// Prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "https://integrations.dev/problems/";

/// A failure as every front end reports it: the REST API as its response, MCP in a tool result,
/// a job as its recorded error.
#[derive(Clone, Debug)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    bearer_challenge: bool,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            headers: Vec::new(),
            bearer_challenge: false,
        }
    }

    /// 401 for credentials that are missing or wrong: the answer challenges the client to send a
    /// bearer token.
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self {
            bearer_challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `Retry-After` in whole seconds, at least one (a client that retries sooner is refused
    /// again), as a header and as the `retry_after` member.
    pub(crate) fn retry_after(self, wait: Duration) -> Self {
        let seconds = whole_seconds(wait);
        self.with("retry_after", json!(seconds))
            .header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The last segment of the `type`, stable per kind of failure (`tool-not-found`).
    pub fn slug(&self) -> &'static str {
        self.slug
    }

    /// The `detail` member: this occurrence, safe to show the caller.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Whether the answer carries `WWW-Authenticate: Bearer`: the credentials were missing or wrong.
    pub fn challenges_bearer(&self) -> bool {
        self.bearer_challenge
    }

    /// The response headers this problem adds (`Retry-After`, `RateLimit-Policy`, `RateLimit`).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The response headers, once the document has been written.
    pub fn into_headers(self) -> Vec<(HeaderName, HeaderValue)> {
        self.headers
    }

    /// The document as JSON text, written straight from the fields (no tree built and printed).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body()).unwrap_or_default()
    }

    /// The document as a JSON value: what an MCP tool result or a failed job carries.
    pub fn document(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    fn body(&self) -> ProblemBody<'_> {
        ProblemBody {
            problem_type: ProblemType(self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            extensions: &self.extensions,
        }
    }
}

/// A problem document as it is written out.
#[derive(serde::Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    problem_type: ProblemType,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(flatten)]
    extensions: &'a Map<String, Value>,
}

/// The `type` URI of a slug, written without building the string first.
struct ProblemType(&'static str);

impl serde::Serialize for ProblemType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{PROBLEM_TYPE_PREFIX}{}", self.0))
    }
}

/// A wait in whole seconds, rounded up.
pub(crate) fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
