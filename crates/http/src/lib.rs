//! The outbound HTTP client handed to plugins.
//!
//! Tenants supply URLs (a Jira site, say), so every request is checked against an outbound policy:
//! internal addresses are refused unless the operator allowlists them, plain `http` is refused
//! except to an allowlisted address, redirects are not followed, and the address each name
//! resolves to is checked at connection time (a resolver that refuses), not only before.

mod breaker;
mod breakers;
mod policy;
mod retry;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::{HttpClient, HttpError, HttpRequest, HttpResponse};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

pub use breaker::{BreakerSettings, BreakerState, BreakerView};
pub use breakers::{Breakers, UpstreamBreakers};
pub use policy::OutboundPolicy;
pub use retry::{ResilientClient, RetrySettings};

/// Largest response body a plugin may receive.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The SSRF-guarded client.
#[derive(Clone)]
pub struct GuardedHttpClient {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl GuardedHttpClient {
    /// A client enforcing `policy`, with the given total timeout per request.
    pub fn new(policy: OutboundPolicy, timeout: Duration) -> Result<Self, HttpError> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on our behalf to addresses we never see.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("integrations/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        Ok(Self { client, policy })
    }

    /// Checks scheme, credentials and every address the host stands for; returns the addresses.
    async fn check_url(&self, url: &Url) -> Result<Vec<IpAddr>, HttpError> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(HttpError::Refused(format!("scheme {other:?} is not allowed"))),
        };
        if url.username() != "" || url.password().is_some() {
            return Err(HttpError::Refused("credentials in URLs are not allowed".into()));
        }
        let addresses: Vec<IpAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![ip.into()],
            Some(Host::Ipv6(ip)) => vec![ip.into()],
            Some(Host::Domain(name)) => {
                // Names are checked again by the resolver at connect time; resolving here lets
                // plain-http and install-time checks see the addresses too.
                let port = url.port_or_known_default().unwrap_or(443);
                resolve(name, port).await?.into_iter().map(|a| a.ip()).collect()
            }
            None => return Err(HttpError::Refused("URL has no host".into())),
        };
        for ip in &addresses {
            self.policy.check(*ip, https)?;
        }
        Ok(addresses)
    }
}

impl GuardedHttpClient {
    async fn execute(&self, request: HttpRequest) -> Result<reqwest::Response, reqwest::Error> {
        let request = reqwest::Request::try_from(request)?;
        self.client.execute(request).await
    }

    /// Tries each checked address in turn, as a resolver-driven connect would.
    async fn execute_pinned(
        &self,
        request: &HttpRequest,
        url: &Url,
        addresses: &[IpAddr],
    ) -> Result<reqwest::Response, HttpError> {
        let mut last_error = HttpError::Refused(policy::NOT_ALLOWED.into());
        for ip in addresses {
            match self.execute(pin_to_address(copy_request(request), url, *ip)?).await {
                Err(error) if error.is_connect() => last_error = map_error(error),
                other => return other.map_err(map_error),
            }
        }
        Err(last_error)
    }
}

fn copy_request(request: &HttpRequest) -> HttpRequest {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

#[async_trait]
impl HttpClient for GuardedHttpClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.send_limited(request, MAX_RESPONSE_BYTES).await
    }

    async fn send_limited(&self, request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
        self.send_reading(request, max_body_bytes.min(MAX_RESPONSE_BYTES), Overflow::Refuse)
            .await
    }

    async fn send_truncating(&self, request: HttpRequest, max_body_bytes: usize) -> Result<HttpResponse, HttpError> {
        self.send_reading(request, max_body_bytes.min(MAX_RESPONSE_BYTES), Overflow::Truncate)
            .await
    }

    async fn check_destination(&self, url: &str) -> Result<(), HttpError> {
        let url = Url::parse(url).map_err(|_| HttpError::Refused("invalid URL".into()))?;
        self.check_url(&url).await.map(|_| ())
    }
}

/// What to do with a response body longer than the caller's limit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// Fail with [`HttpError::BodyTooLarge`].
    Refuse,
    /// Keep the first bytes and stop reading.
    Truncate,
}

impl GuardedHttpClient {
    async fn send_reading(
        &self,
        request: HttpRequest,
        limit: usize,
        overflow: Overflow,
    ) -> Result<HttpResponse, HttpError> {
        let url = Url::parse(&request.uri().to_string()).map_err(|_| HttpError::Refused("invalid URL".into()))?;
        let addresses = self.check_url(&url).await?;
        let mut response = match (url.scheme(), url.host()) {
            // Plain http is allowed only to allowlisted addresses, but the resolver cannot see the
            // scheme: pin the request to the addresses just checked so a second lookup cannot swap them.
            ("http", Some(Host::Domain(_))) => self.execute_pinned(&request, &url, &addresses).await?,
            _ => self.execute(request).await.map_err(map_error)?,
        };
        if let Some(remote) = response.remote_addr() {
            // The resolver already refused internal addresses; this catches any path around it.
            self.policy.check(remote.ip(), url.scheme() == "https")?;
        }
        let mut builder = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = builder.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        // Refuse an announced oversize body unread, and stop streaming as soon as the limit passes,
        // so memory stays within the limit whatever the vendor sends.
        if overflow == Overflow::Refuse && response.content_length().is_some_and(|length| length > limit as u64) {
            return Err(HttpError::BodyTooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(map_error)? {
            if body.len() + chunk.len() > limit {
                if overflow == Overflow::Refuse {
                    return Err(HttpError::BodyTooLarge(limit));
                }
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|e| HttpError::Transport(e.to_string()))
    }
}

fn pin_to_address(mut request: HttpRequest, url: &Url, ip: IpAddr) -> Result<HttpRequest, HttpError> {
    let invalid = |_| HttpError::Refused("invalid URL".into());
    let host = url.host_str().unwrap_or_default();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut pinned = url.clone();
    pinned
        .set_ip_host(ip)
        .map_err(|_| HttpError::Refused("invalid URL".into()))?;
    *request.uri_mut() = pinned.as_str().parse().map_err(invalid)?;
    let host_header = http::HeaderValue::from_str(&authority).map_err(|_| HttpError::Refused("invalid URL".into()))?;
    request.headers_mut().insert(http::header::HOST, host_header);
    Ok(request)
}

fn map_error(error: reqwest::Error) -> HttpError {
    if error.is_timeout() {
        return HttpError::Timeout;
    }
    let connect_failed = error.is_connect();
    // The resolver's refusal travels inside reqwest's error chain.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(HttpError::Refused(reason)) = current.downcast_ref::<HttpError>() {
            return HttpError::Refused(reason.clone());
        }
        source = current.source();
    }
    if connect_failed {
        return HttpError::Connect(without_url(&error));
    }
    HttpError::Transport(without_url(&error))
}

fn without_url(error: &reqwest::Error) -> String {
    // reqwest's own message names the URL (query included), which may carry caller data; the
    // causes below it say what actually failed (refused, reset, TLS).
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        return "request failed".into();
    }
    let mut message = causes.join(": ");
    if let Some(url) = error.url() {
        message = message.replace(url.as_str(), "<url>");
    }
    message
}

async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, HttpError> {
    // One answer for "unresolvable" and "internal": tenants must not map internal DNS through us.
    let refused = || {
        tracing::debug!(name, "outbound host name does not resolve");
        HttpError::Refused(policy::NOT_ALLOWED.into())
    };
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|_| refused())?
        .collect();
    if addresses.is_empty() {
        return Err(refused());
    }
    Ok(addresses)
}

struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addresses = resolve(name.as_str(), 0).await?;
            for address in &addresses {
                // Scheme is unknown here; plain http was checked before sending.
                policy.check(address.ip(), true)?;
            }
            let addrs: Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests;
