//! The real binary beside thousands of TCP connections that send nothing, opened before any tenant
//! is known: `/healthz` and a tenant's request still answer at once, the server raises its
//! open-file limit to hold them, and when the slots run short the silent connections make room.

#![cfg(target_os = "linux")]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{free_port, Server, ADMIN};
use tokio::net::TcpStream;

/// What "answers at once" allows: milliseconds are expected, and only a request kept waiting
/// behind silent connections (seconds, until their header timeout) takes this long.
const PROMPT: Duration = Duration::from_secs(1);
/// The soft open-file limit many systems start a service with; the server raises it.
const LOW_SOFT_LIMIT: u64 = 1024;
/// Descriptors the test process needs besides its idle connections.
const TEST_FILES: u64 = 256;

/// Raises this process's soft open-file limit to its hard limit; returns the limit in force.
fn raise_own_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write one `rlimit` through a pointer to a live one.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

/// `(soft, hard)` "Max open files" of process `pid`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/<pid>/limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().expect("soft limit").to_owned();
    let hard = fields.next().expect("hard limit").to_owned();
    (soft, hard)
}

/// `integrations serve` started with a soft open-file limit of [`LOW_SOFT_LIMIT`] (the hard limit
/// left as it is), a header timeout longer than the test, and `env`.
async fn start_with_low_soft_limit(env: &[(&str, &str)], data_dir: &std::path::Path) -> Server {
    let port = free_port();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -S -n {LOW_SOFT_LIMIT} && exec \"$0\" serve"))
        .arg(env!("CARGO_BIN_EXE_integrations"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INTEGRATIONS_ADMIN_TOKEN", ADMIN)
        .env("INTEGRATIONS_BIND", format!("127.0.0.1:{port}"))
        .env("INTEGRATIONS_DATA_DIR", data_dir)
        // Silent connections stay for the whole test rather than leave by their header timeout.
        .env("INTEGRATIONS_HEADER_READ_TIMEOUT_SECS", "300")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let server = Server {
        child: command.spawn().expect("binary starts"),
        base: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while reqwest::get(server.url("/healthz")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
}

/// Resident memory of process `pid`, in KiB (reported, not bounded: the memory tests bound it).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A client that opens a new connection for each request and gives up after a few seconds.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Creates tenant `acme`; returns its API key.
async fn create_tenant(server: &Server) -> String {
    let response = fresh_client()
        .post(server.url("/v1/admin/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({"id": "acme"}))
        .send()
        .await
        .expect("the admin API answers");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["api_key"].as_str().expect("api_key").to_owned()
}

/// Opens `count` more connections that send nothing.
async fn open_silent(server: &Server, count: usize, silent: &mut Vec<TcpStream>) {
    let address = server.base.trim_start_matches("http://").to_owned();
    for _ in 0..count {
        silent.push(TcpStream::connect(&address).await.expect("connects"));
    }
}

/// How long `GET path` took on a new connection, asserting a 200.
async fn time_get(server: &Server, path: &str, token: Option<&str>) -> Duration {
    let started = Instant::now();
    let mut request = fresh_client().get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await;
    let elapsed = started.elapsed();
    let response = response.unwrap_or_else(|error| panic!("GET {path} after {elapsed:?}: {error}"));
    assert_eq!(response.status(), 200, "GET {path}");
    elapsed
}

/// `/healthz` and the tenant's `GET /v1/tools` both answer within [`PROMPT`].
async fn assert_prompt(server: &Server, key: &str, silent: usize) {
    let health = time_get(server, "/healthz", None).await;
    let tools = time_get(server, "/v1/tools", Some(key)).await;
    eprintln!("beside {silent} silent connections: /healthz {health:?}, GET /v1/tools {tools:?}");
    assert!(
        health < PROMPT,
        "/healthz took {health:?} beside {silent} silent connections"
    );
    assert!(
        tools < PROMPT,
        "GET /v1/tools took {tools:?} beside {silent} silent connections"
    );
}

/// How many of `silent` the server has closed.
fn closed(silent: &[TcpStream]) -> usize {
    let mut byte = [0u8; 1];
    silent
        .iter()
        .filter(|stream| match stream.try_read(&mut byte) {
            Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
            Ok(_) => true,
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_a_tenants_request_answer_at_once_beside_thousands_of_silent_connections() {
    let own_limit = raise_own_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_low_soft_limit(&[], dir.path()).await;
    let (soft, hard) = open_file_limits(server.child.id());
    assert_eq!(soft, hard, "the server did not raise its soft open-file limit");
    let key = create_tenant(&server).await;
    let rss_before = rss_kib(server.child.id());
    let mut silent = Vec::new();
    for target in [1_100, 5_000] {
        if target as u64 + TEST_FILES > own_limit.min(hard.parse().unwrap_or(u64::MAX)) {
            eprintln!("skipped {target} silent connections: the open-file limit is {own_limit}");
            continue;
        }
        open_silent(&server, target - silent.len(), &mut silent).await;
        assert_prompt(&server, &key, silent.len()).await;
        assert_eq!(
            closed(&silent),
            0,
            "silent connections were closed while slots were free"
        );
        let rss = rss_kib(server.child.id());
        eprintln!(
            "RSS {rss} KiB with {} silent connections ({rss_before} KiB before)",
            silent.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_slots_run_short_silent_connections_make_room() {
    raise_own_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_low_soft_limit(&[("INTEGRATIONS_MAX_CONNECTIONS", "100")], dir.path()).await;
    let key = create_tenant(&server).await;
    let mut silent = Vec::new();
    open_silent(&server, 1_100, &mut silent).await;
    assert_prompt(&server, &key, silent.len()).await;
    // The oldest went first; at most the cap stay open.
    let started = Instant::now();
    while closed(&silent) < silent.len() - 100 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {} silent connections closed with a cap of 100",
            closed(&silent),
            silent.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        closed(&silent[..900]),
        900,
        "the oldest silent connections were not the first closed"
    );
}
