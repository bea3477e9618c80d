//! The service under test: the release binary started as a user starts it, its readiness and
//! memory, and the admin/tenant API calls that set it up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::BenchError;

/// How to start the service: binary, data dir and environment.
#[derive(Clone, Debug)]
pub struct ServiceEnv {
    /// `target/release/integrations`.
    pub bin: PathBuf,
    /// `INTEGRATIONS_DATA_DIR` (and where the log goes).
    pub data_dir: PathBuf,
    /// `INTEGRATIONS_ADMIN_TOKEN`.
    pub admin_token: String,
    /// `DATABASE_URL` and `INTEGRATIONS_MASTER_KEY`, for PostgreSQL.
    pub postgres: Option<(String, String)>,
    /// More variables for the service (`--service-env`).
    pub extra_env: Vec<(String, String)>,
}

/// A running service process; killed when dropped.
pub struct Service {
    child: Child,
    spawned_at: Instant,
    address: SocketAddr,
    log: PathBuf,
}

impl ServiceEnv {
    /// Spawns `integrations serve` on a free loopback port (without waiting for it).
    pub fn spawn(&self) -> Result<Service, BenchError> {
        let address = free_loopback_port()?;
        let log = self.data_dir.join("service.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("INTEGRATIONS_DATA_DIR", &self.data_dir)
            .env("INTEGRATIONS_BIND", address.to_string())
            .env("INTEGRATIONS_ADMIN_TOKEN", &self.admin_token)
            .env("INTEGRATIONS_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        command.envs(self.extra_env.iter().map(|(name, value)| (name, value)));
        if let Some((database_url, master_key)) = &self.postgres {
            command
                .env("DATABASE_URL", database_url)
                .env("INTEGRATIONS_MASTER_KEY", master_key);
        }
        let spawned_at = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| BenchError::new(format!("cannot start {}: {e}", self.bin.display())))?;
        Ok(Service {
            child,
            spawned_at,
            address,
            log,
        })
    }

    /// Spawns the service and waits until it is ready.
    pub fn start(&self) -> Result<Service, BenchError> {
        let mut service = self.spawn()?;
        service.wait_ready(Duration::from_secs(60))?;
        Ok(service)
    }
}

impl Service {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Polls `GET /healthz` every 2 ms; returns the time from spawning until it answered 200.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, BenchError> {
        loop {
            if healthz_ok(self.address) {
                return Ok(self.spawned_at.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(BenchError::new(format!(
                    "the service exited ({status}) before it was ready; its log:\n{}",
                    self.log_tail()
                )));
            }
            if self.spawned_at.elapsed() > timeout {
                return Err(BenchError::new(format!(
                    "the service was not ready after {timeout:?}; its log:\n{}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A memory figure of the process from /proc, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> Result<u64, BenchError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| BenchError::new(format!("no {field} in /proc/{}/status", self.child.id())))
    }

    /// Stops the service with SIGTERM (SIGKILL after 5 s) and waits for it.
    pub fn stop(mut self) -> Result<(), BenchError> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback address whose port was free a moment ago.
fn free_loopback_port() -> Result<SocketAddr, BenchError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One plain HTTP/1.1 `GET /healthz`; true when it answered 200.
fn healthz_ok(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// The admin and tenant API calls that prepare the service for a scenario.
#[derive(Clone)]
pub struct Setup {
    client: reqwest::Client,
    base_url: String,
    admin_token: String,
}

impl Setup {
    /// A client for the service at `base_url`.
    pub fn new(base_url: String, admin_token: String) -> Result<Self, BenchError> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        Ok(Self {
            client,
            base_url,
            admin_token,
        })
    }

    /// Creates a tenant and returns its API key.
    pub async fn create_tenant(&self, id: &str) -> Result<String, BenchError> {
        let response = self
            .client
            .post(format!("{}/v1/admin/tenants", self.base_url))
            .bearer_auth(&self.admin_token)
            .json(&json!({"id": id, "traits": {"plan": "pro"}}))
            .send()
            .await?;
        let body = expect_status(response, 201, "create tenant").await?;
        body.get("api_key")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| BenchError::new(format!("create tenant answered no api_key: {body}")))
    }

    /// Installs Jira for a tenant, pointed at the stand-in.
    pub async fn install_jira(&self, api_key: &str, vendor_url: &str, webhook_secret: &str) -> Result<(), BenchError> {
        let response = self
            .client
            .post(format!("{}/v1/plugins/jira/install", self.base_url))
            .bearer_auth(api_key)
            .json(&json!({
                "host": vendor_url,
                "email": "bot@example.com",
                "api_token": "t",
                "webhook_secret": webhook_secret,
            }))
            .send()
            .await?;
        expect_status(response, 201, "install jira").await.map(drop)
    }

    /// Subscribes a webhook endpoint at `url` to `event_types` for the tenant.
    pub async fn create_endpoint(&self, api_key: &str, url: &str, event_types: &[&str]) -> Result<(), BenchError> {
        let response = self
            .client
            .post(format!("{}/v1/webhook-endpoints", self.base_url))
            .bearer_auth(api_key)
            .json(&json!({"url": url, "event_types": event_types, "description": "bench receiver"}))
            .send()
            .await?;
        expect_status(response, 201, "create webhook endpoint").await.map(drop)
    }

    /// How many of the tenant's events have type `event_type` (reads the whole log, 500 a page).
    pub async fn count_events(&self, api_key: &str, event_type: &str) -> Result<u64, BenchError> {
        // `next` is the last event read; none before the first.
        let (mut count, mut after) = (0, String::new());
        loop {
            let response = self
                .client
                .get(format!("{}/v1/events?limit=500&after={after}", self.base_url))
                .bearer_auth(api_key)
                .send()
                .await?;
            let page = expect_status(response, 200, "read events").await?;
            let events = page["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                return Ok(count);
            }
            count += events.iter().filter(|e| e["type"] == event_type).count() as u64;
            after = page["next"].as_str().unwrap_or_default().to_owned();
        }
    }

    /// Creates tenants `prefix00000…` with `concurrency` requests in flight, installing Jira on
    /// each when `vendor_url` is given; returns their API keys.
    pub async fn create_many(
        &self,
        prefix: &str,
        count: usize,
        concurrency: usize,
        vendor_url: Option<&str>,
    ) -> Result<Vec<String>, BenchError> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (setup, next, prefix) = (self.clone(), next.clone(), prefix.to_owned());
            let vendor_url = vendor_url.map(str::to_owned);
            workers.push(tokio::spawn(async move {
                let mut keys = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, BenchError>(keys);
                    }
                    let key = setup.create_tenant(&format!("{prefix}{i:05}")).await?;
                    if let Some(vendor_url) = &vendor_url {
                        setup.install_jira(&key, vendor_url, "s").await?;
                    }
                    keys.push(key);
                }
            }));
        }
        let mut keys = Vec::with_capacity(count);
        for worker in workers {
            keys.extend(worker.await.map_err(|e| BenchError::new(e.to_string()))??);
        }
        Ok(keys)
    }

    /// Sends one request and checks its status: a scenario whose request is wrong would
    /// otherwise be measured as a fast stream of errors.
    pub async fn probe(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&str>,
        expected: u16,
    ) -> Result<(), BenchError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| BenchError::new(e.to_string()))?;
        let mut request = self.client.request(method, format!("{}{path}", self.base_url));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await?;
        expect_status(response, expected, path).await.map(drop)
    }
}

async fn expect_status(response: reqwest::Response, expected: u16, what: &str) -> Result<Value, BenchError> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    if status != expected {
        return Err(BenchError::new(format!(
            "{what}: expected {expected}, got {status}: {text}"
        )));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Median of a few durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
