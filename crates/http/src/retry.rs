//! Retries and circuit breaking around one tool call's vendor requests, so that every connector,
//! present and scaffolded, has them without a line of its own.
//!
//! A request is retried when it could not connect (nothing was sent), when the vendor answers 429
//! or 503 (it asks us to come back, whatever the method), and after a 502, a 504, a timeout or a
//! broken connection only when the method is idempotent: a POST or PATCH that may have reached the
//! vendor is never sent twice. Waits grow exponentially with full jitter (backon supplies the
//! sequence); a longer `Retry-After` replaces the wait, and a wait that would end past the call's
//! deadline is not started: the call ends at once with the vendor's last answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use http::{Method, StatusCode};
use integrations_core::{HttpClient, HttpError, HttpRequest, HttpResponse};

use crate::breaker::{Admission, Breaker};
use crate::breakers::UpstreamBreakers;
use crate::copy_request;

/// How vendor requests are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first wait before jitter; it doubles per attempt.
    pub base_delay: Duration,
    /// The longest wait before jitter.
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// One call's outbound client: retries and the tenant's breakers around `inner`.
pub struct ResilientClient {
    inner: Arc<dyn HttpClient>,
    settings: RetrySettings,
    breakers: Arc<UpstreamBreakers>,
    deadline: Instant,
    last_retry_after: Mutex<Option<Duration>>,
}

/// Why an attempt did not give the final answer.
enum Failed {
    /// Worth another attempt; carries what this one got.
    Retryable {
        outcome: Result<HttpResponse, HttpError>,
        retry_after: Option<Duration>,
    },
    /// The answer, although an error.
    Final(HttpError),
}

impl ResilientClient {
    /// `inner` with retries by `settings` and the tenant's `breakers` for the plugin's upstream
    /// hosts; nothing waits past `deadline`.
    pub fn new(
        inner: Arc<dyn HttpClient>,
        settings: RetrySettings,
        breakers: Arc<UpstreamBreakers>,
        deadline: Instant,
    ) -> Self {
        Self {
            inner,
            settings,
            breakers,
            deadline,
            last_retry_after: Mutex::new(None),
        }
    }

    /// The `Retry-After` of the last vendor answer that carried one, for the caller's problem.
    pub fn last_retry_after(&self) -> Option<Duration> {
        *self.last_retry_after.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send_with<F, Fut>(&self, request: HttpRequest, send: F) -> Result<HttpResponse, HttpError>
    where
        F: Fn(HttpRequest) -> Fut,
        Fut: std::future::Future<Output = Result<HttpResponse, HttpError>>,
    {
        let host = request.uri().host().unwrap_or_default();
        let breaker = if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
            self.breakers.host(&host.to_ascii_lowercase())
        } else {
            self.breakers.host(host)
        };
        let idempotent = is_idempotent(request.method());
        let attempt = || async {
            let admission = breaker
                .admit(Instant::now())
                .map_err(|retry_after| Failed::Final(HttpError::CircuitOpen { retry_after }))?;
            let recorder = Recorder::new(&breaker, admission);
            let outcome = send(copy_request(&request)).await;
            recorder.record(outcome_failed(&outcome));
            let retry_after = outcome.as_ref().ok().and_then(retry_after);
            if retry_after.is_some() {
                *self.last_retry_after.lock().unwrap_or_else(|p| p.into_inner()) = retry_after;
            }
            if worth_retrying(&outcome, idempotent) {
                return Err(Failed::Retryable { outcome, retry_after });
            }
            outcome.map_err(Failed::Final)
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.base_delay)
            .with_max_delay(self.settings.max_delay)
            .with_factor(2.0)
            .with_max_times(self.settings.max_attempts.saturating_sub(1) as usize);
        let answered = attempt
            .retry(backoff.build())
            .sleep(tokio::time::sleep)
            .when(|failed| matches!(failed, Failed::Retryable { .. }))
            .adjust(|failed, delay| {
                // Full jitter: anywhere between nothing and the exponential delay.
                let mut wait = delay?.mul_f64(fastrand::f64());
                if let Failed::Retryable {
                    retry_after: Some(asked),
                    ..
                } = failed
                {
                    wait = wait.max(*asked);
                }
                (Instant::now() + wait < self.deadline).then_some(wait)
            })
            .await;
        match answered {
            Ok(response) => Ok(response),
            Err(Failed::Retryable { outcome, .. }) => outcome,
            Err(Failed::Final(error)) => Err(error),
        }
    }
}

#[async_trait]
impl HttpClient for ResilientClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.send_with(request, |request| self.inner.send(request)).await
    }

    async fn send_limited(&self, request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
        self.send_with(request, |request| self.inner.send_limited(request, max_body_bytes))
            .await
    }

    async fn send_truncating(&self, request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
        self.send_with(request, |request| self.inner.send_truncating(request, max_body_bytes))
            .await
    }

    async fn check_destination(&self, url: &str) -> Result<(), HttpError> {
        self.inner.check_destination(url).await
    }
}

/// Reports an admitted request's outcome to its breaker, or its abandonment when the call is
/// cancelled before it ends (so a half-open breaker's probe is never lost).
struct Recorder<'a> {
    breaker: &'a Breaker,
    admission: Option<Admission>,
}

impl<'a> Recorder<'a> {
    fn new(breaker: &'a Breaker, admission: Admission) -> Self {
        Self {
            breaker,
            admission: Some(admission),
        }
    }

    fn record(mut self, failed: Option<bool>) {
        if let Some(admission) = self.admission.take() {
            self.breaker.record(&admission, failed, Instant::now());
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.breaker.record(&admission, None, Instant::now());
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::PUT, Method::DELETE, Method::OPTIONS].contains(method)
}

/// Whether an outcome says the upstream is failing (`None`: it says nothing about the upstream).
fn outcome_failed(outcome: &Result<HttpResponse, HttpError>) -> Option<bool> {
    match outcome {
        Ok(response) => {
            let status = response.status();
            Some(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
        }
        Err(HttpError::Timeout | HttpError::Connect(_) | HttpError::Transport(_)) => Some(true),
        Err(_) => None,
    }
}

fn worth_retrying(outcome: &Result<HttpResponse, HttpError>, idempotent: bool) -> bool {
    match outcome {
        Ok(response) => match response.status() {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => true,
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => idempotent,
            _ => false,
        },
        Err(HttpError::Connect(_)) => true,
        Err(HttpError::Timeout | HttpError::Transport(_)) => idempotent,
        Err(_) => false,
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date.
pub(crate) fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let value = response.headers().get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, retry_after: Option<&str>) -> HttpResponse {
        let mut builder = http::Response::builder().status(status);
        if let Some(value) = retry_after {
            builder = builder.header("retry-after", value);
        }
        builder.body(Vec::new()).unwrap()
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(&response(429, Some("7"))), Some(Duration::from_secs(7)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let wait = retry_after(&response(503, Some(&in_a_minute))).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(61),
            "{wait:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(retry_after(&response(503, Some(&past))), Some(Duration::ZERO));
        assert_eq!(retry_after(&response(503, Some("soon"))), None);
        assert_eq!(retry_after(&response(503, None)), None);
    }

    #[test]
    fn only_what_cannot_have_been_done_twice_is_retried_after_a_post() {
        let ok = |status| Ok(response(status, None));
        for (outcome, idempotent, expected) in [
            (ok(429), false, true),
            (ok(503), false, true),
            (ok(502), false, false),
            (ok(504), false, false),
            (ok(500), false, false),
            (ok(500), true, false),
            (ok(502), true, true),
            (ok(504), true, true),
            (ok(404), true, false),
            (Err(HttpError::Connect("refused".into())), false, true),
            (Err(HttpError::Timeout), false, false),
            (Err(HttpError::Timeout), true, true),
            (Err(HttpError::Transport("reset".into())), false, false),
            (Err(HttpError::Refused("internal".into())), true, false),
        ] {
            assert_eq!(
                worth_retrying(&outcome, idempotent),
                expected,
                "{outcome:?} idempotent={idempotent}"
            );
        }
        assert!(is_idempotent(&Method::PUT) && !is_idempotent(&Method::PATCH) && !is_idempotent(&Method::POST));
    }
}
