//! A webhook receiver for outbound delivery tests: a small axum server on a loopback address that
//! records every request and answers as the test scripts it; and a Standard Webhooks verifier
//! written here, independently of the delivery crate.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn webhook_id(&self) -> String {
        self.header("webhook-id").to_owned()
    }
}

/// How to answer the n-th request (0-based).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub delay: Duration,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            body: String::new(),
        }
    }
}

type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// The running receiver; stops when dropped.
pub struct Receiver {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Answers 204 to everything, on 127.0.0.1.
    pub async fn ok() -> Self {
        Self::start("127.0.0.1", |_| Reply::status(204)).await
    }

    /// Answers as `script` says, on `ip` (a loopback address).
    pub async fn start(ip: &str, script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let ip: IpAddr = ip.parse().expect("an IP address");
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("local address");
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let script: Script = Arc::new(script);
        let app = {
            let hits = hits.clone();
            axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
                let (hits, script) = (hits.clone(), script.clone());
                async move {
                    let n = {
                        let mut hits = hits.lock().unwrap();
                        hits.push(Hit {
                            at: Instant::now(),
                            headers,
                            body: body.to_vec(),
                        });
                        hits.len() - 1
                    };
                    let reply = script(n);
                    tokio::time::sleep(reply.delay).await;
                    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
                    if let Some(secs) = reply.retry_after {
                        response
                            .headers_mut()
                            .insert("retry-after", secs.to_string().parse().unwrap());
                    }
                    response
                }
            })
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{address}/hook"),
            hits,
            task,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived; fails after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        loop {
            let hits = self.hits();
            if hits.len() >= count {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} requests within {within:?}, got {}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts that no more than `count` requests arrive during `period`.
    pub async fn stays_at(&self, count: usize, period: Duration) {
        tokio::time::sleep(period).await;
        assert_eq!(self.hits().len(), count, "unexpected requests: {:?}", self.hits());
    }
}

/// The signatures in `webhook-signature` that `whsec` produced, checked as the Standard Webhooks
/// specification says (HMAC-SHA256 over `{id}.{timestamp}.{body}`, base64), with the timestamp
/// within five minutes.
pub fn verifies(whsec: &str, hit: &Hit) -> bool {
    let key = STANDARD
        .decode(whsec.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 secret");
    let timestamp: i64 = hit.header("webhook-timestamp").parse().expect("a unix timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - timestamp).abs() > 300 {
        return false;
    }
    let mut signed = format!("{}.{}.", hit.header("webhook-id"), timestamp).into_bytes();
    signed.extend_from_slice(&hit.body);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    hit.header("webhook-signature").split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|signature| STANDARD.decode(signature).ok())
            .is_some_and(|signature| ring::hmac::verify(&key, &signed, &signature).is_ok())
    })
}
