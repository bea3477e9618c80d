//! What the tests that run the real binary share: starting and stopping server processes,
//! scratch PostgreSQL databases, and plain requests.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integrations_store::Store;
use serde_json::Value;

pub const ADMIN: &str = "process-test-admin-token";

/// A server process; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `integrations serve` on a free port with `env` (and nothing else from ours).
    pub async fn start(env: &[(&str, String)], data_dir: &Path) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_integrations"));
        command
            .arg("serve")
            .env_clear()
            .env("INTEGRATIONS_ADMIN_TOKEN", ADMIN)
            .env("INTEGRATIONS_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32")
            .env("INTEGRATIONS_BIND", format!("127.0.0.1:{port}"))
            .env("INTEGRATIONS_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let server = Self {
            child: command.spawn().expect("binary starts"),
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(server.url("/healthz")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A JSON request with a bearer token; `(status, body)`.
pub async fn request(method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut builder = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await.expect("server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A database of its own on the server `TEST_DATABASE_URL` names, dropped with it; `None` (and a
/// skip notice) without the variable.
pub struct ScratchDatabase {
    admin: Store,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create(label: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return None;
        };
        let admin = Store::connect(&admin_url).await.expect("PostgreSQL");
        let name = format!("{label}_{}", std::process::id());
        exec(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        exec(&admin, &format!("CREATE DATABASE {name}")).await;
        let (base, _) = admin_url.rsplit_once('/').expect("database URL with a path");
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }

    pub async fn drop_database(self) {
        exec(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

async fn exec(store: &Store, statement: &str) {
    sqlx::query(statement)
        .execute(store.pool())
        .await
        .expect("admin statement");
}
