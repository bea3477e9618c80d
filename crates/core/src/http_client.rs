use async_trait::async_trait;

/// An outbound request as a plugin builds it.
pub type HttpRequest = http::Request<Vec<u8>>;
/// The vendor's answer, body read in full.
pub type HttpResponse = http::Response<Vec<u8>>;

/// The seconds a rate-limited vendor asks to wait (`Retry-After` in its delta-seconds form).
pub fn retry_after_secs(response: &HttpResponse) -> Option<u64> {
    response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// Why an outbound request did not produce a response.
#[derive(Clone, Debug, thiserror::Error)]
pub enum HttpError {
    /// The destination is not allowed (internal address, plain http, bad scheme).
    #[error("destination refused: {0}")]
    Refused(String),
    /// The request did not complete in time.
    #[error("request timed out")]
    Timeout,
    /// Connection, TLS or protocol failure.
    #[error("request failed: {0}")]
    Transport(String),
    /// No connection could be made: nothing was sent.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The host's circuit breaker for this upstream is open: no request was made.
    #[error("the vendor has been failing; calls resume in {} s", .retry_after.as_secs_f64().ceil().max(1.0))]
    CircuitOpen {
        /// When a call may go through again.
        retry_after: std::time::Duration,
    },
    /// The response body exceeded the client's limit.
    #[error("response body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The responses to one tool call together exceeded the host's per-call budget.
    #[error("the responses to this tool call exceed its budget of {0} bytes")]
    ResponseBudgetExceeded(usize),
}

/// The only way a plugin reaches the network: the host's client enforces the outbound policy
/// (SSRF guard, no redirects, timeouts), so plugins cannot forget it.
#[async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends a request and reads the whole response.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;

    /// Sends a request and reads at most `max_body_bytes` of the response: a longer body fails with
    /// [`HttpError::BodyTooLarge`]`(max_body_bytes)`. Clients that stream should override this to
    /// stop reading at the limit; this default reads the whole body first.
    async fn send_limited(&self, request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
        let response = self.send(request).await?;
        if response.body().len() > max_body_bytes {
            return Err(HttpError::BodyTooLarge(max_body_bytes));
        }
        Ok(response)
    }

    /// Sends a request and keeps at most `max_body_bytes` of the response body, dropping the rest:
    /// for callers that record only the start of an answer (outbound webhook attempts), where a
    /// long body must not turn a received answer into an error. Clients that stream should
    /// override this to stop reading at the limit; this default reads the whole body first.
    async fn send_truncating(&self, request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
        let mut response = self.send(request).await?;
        response.body_mut().truncate(max_body_bytes);
        Ok(response)
    }

    /// Checks that a tenant-supplied base URL may be called at all, so that install can refuse it
    /// before any request is made.
    async fn check_destination(&self, url: &str) -> Result<(), HttpError>;
}
