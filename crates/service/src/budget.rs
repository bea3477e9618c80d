//! Per-call limits on what a plugin may pull from a vendor.
//!
//! A tenant chooses the vendor host, so a hostile server can answer every page with a large body
//! and "more to come". The host, not each plugin, bounds one tool call: all its vendor responses
//! together may not exceed a byte budget, and the call as a whole has a deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::{HttpClient, HttpError, HttpRequest, HttpResponse};

/// Limits applied to every tool call, whatever the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolLimits {
    /// Bytes of vendor response bodies one call may read in total.
    pub response_budget_bytes: usize,
    /// The most a plugin may raise one call's budget to (`Plugin::response_budget`).
    pub max_response_budget_bytes: usize,
    /// Time one call may take, vendor requests included.
    pub deadline: Duration,
    /// Pages one listing of a call may request (`PluginContext::max_pages`), however short the
    /// vendor's pages: bounds a vendor that hands out a cursor forever, with the budget and deadline.
    pub max_pages: usize,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            response_budget_bytes: 4 * 1024 * 1024,
            max_response_budget_bytes: 64 * 1024 * 1024,
            deadline: Duration::from_secs(60),
            max_pages: integrations_core::PluginContext::DEFAULT_MAX_PAGES,
        }
    }
}

/// The shared outbound client as one tool call sees it: each response body is read only up to
/// what is left of the call's budget, so memory stays bounded however many pages a plugin asks for.
pub(crate) struct BudgetedHttpClient {
    inner: Arc<dyn HttpClient>,
    budget: usize,
    remaining: AtomicUsize,
}

impl BudgetedHttpClient {
    /// A client allowing `budget` bytes of response bodies in total.
    pub(crate) fn new(inner: Arc<dyn HttpClient>, budget: usize) -> Self {
        Self {
            inner,
            budget,
            remaining: AtomicUsize::new(budget),
        }
    }

    /// Takes up to `wanted` bytes off the budget before a request is sent, so requests of one
    /// call in flight at once cannot each read the whole remainder; returns what was taken.
    fn reserve(&self, wanted: usize) -> usize {
        let before = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| Some(left - left.min(wanted)))
            .unwrap_or_default();
        before.min(wanted)
    }

    /// Gives back what a request reserved and did not use.
    fn refund(&self, unused: usize) {
        self.remaining.fetch_add(unused, Ordering::SeqCst);
    }
}

#[async_trait]
impl HttpClient for BudgetedHttpClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.send_limited(request, usize::MAX).await
    }

    async fn send_limited(&self, request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
        let reserved = self.reserve(max_body_bytes);
        match self.inner.send_limited(request, reserved).await {
            Ok(response) => {
                self.refund(reserved.saturating_sub(response.body().len()));
                Ok(response)
            }
            // Read up to what was reserved: when that was less than the caller's own cap, it is
            // the budget that ran out. What was reserved stays spent; the call is over.
            Err(HttpError::BodyTooLarge(applied)) if applied == reserved && reserved < max_body_bytes => {
                Err(HttpError::ResponseBudgetExceeded(self.budget))
            }
            Err(error) => {
                self.refund(reserved);
                Err(error)
            }
        }
    }

    async fn check_destination(&self, url: &str) -> Result<(), HttpError> {
        self.inner.check_destination(url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every request with a body of a fixed size.
    struct FixedBody(usize);

    #[async_trait]
    impl HttpClient for FixedBody {
        async fn send(&self, _request: HttpRequest) -> Result<HttpResponse, HttpError> {
            Ok(http::Response::new(vec![b'x'; self.0]))
        }

        async fn check_destination(&self, _url: &str) -> Result<(), HttpError> {
            Ok(())
        }
    }

    fn request() -> HttpRequest {
        http::Request::new(Vec::new())
    }

    #[tokio::test]
    async fn refuses_the_response_that_passes_the_budget() {
        let client = BudgetedHttpClient::new(Arc::new(FixedBody(40)), 100);
        assert!(client.send(request()).await.is_ok());
        assert!(client.send(request()).await.is_ok());
        assert!(matches!(
            client.send(request()).await,
            Err(HttpError::ResponseBudgetExceeded(100))
        ));
        assert!(matches!(
            client.send(request()).await,
            Err(HttpError::ResponseBudgetExceeded(100))
        ));
    }

    /// Answers after a pause, recording the body limit each request was sent with.
    struct SlowRecorder(std::sync::Mutex<Vec<usize>>);

    #[async_trait]
    impl HttpClient for SlowRecorder {
        async fn send(&self, _request: HttpRequest) -> Result<HttpResponse, HttpError> {
            Ok(http::Response::new(Vec::new()))
        }

        async fn send_limited(&self, _request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
            self.0.lock().unwrap().push(max_body_bytes);
            tokio::task::yield_now().await;
            Ok(http::Response::new(Vec::new()))
        }

        async fn check_destination(&self, _url: &str) -> Result<(), HttpError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn requests_in_flight_together_may_not_read_more_than_the_budget() {
        let recorder = Arc::new(SlowRecorder(std::sync::Mutex::new(Vec::new())));
        let client = BudgetedHttpClient::new(recorder.clone(), 100);
        let (first, second) = tokio::join!(client.send(request()), client.send(request()));
        assert!(first.is_ok() && second.is_ok());
        let limits = recorder.0.lock().unwrap().clone();
        assert_eq!(
            limits.iter().sum::<usize>(),
            100,
            "limits in flight together: {limits:?}"
        );
    }

    #[tokio::test]
    async fn a_smaller_caller_limit_stays_the_callers() {
        let client = BudgetedHttpClient::new(Arc::new(FixedBody(40)), 100);
        assert!(matches!(
            client.send_limited(request(), 10).await,
            Err(HttpError::BodyTooLarge(10))
        ));
    }
}
