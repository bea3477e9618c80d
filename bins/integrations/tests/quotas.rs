//! Tenant limits through the real binary, where processes and memory are the point: a rate limit
//! holds for the deployment across two replicas, and one tenant's 10,000 MCP sessions cost the
//! server a bounded amount of memory.

mod support;

use std::time::Duration;

use integrations_secrets::MasterKey;
use reqwest::Method;
use serde_json::{json, Value};
use support::{request, ScratchDatabase, Server, ADMIN};

/// A tenant created through `server`; its API key.
async fn tenant(server: &Server, id: &str, body: Value) -> String {
    let mut body = body;
    body["id"] = json!(id);
    let (status, created) = request(Method::POST, server.url("/v1/admin/tenants"), ADMIN, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["api_key"].as_str().expect("api_key").to_owned()
}

#[tokio::test]
async fn two_replicas_share_a_tenants_rate_limit() {
    let Some(scratch) = ScratchDatabase::create("quotas_replicas").await else {
        return;
    };
    let (_, master_key) = MasterKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", scratch.url.clone()),
        ("INTEGRATIONS_MASTER_KEY", master_key),
    ];
    let one = Server::start(&env, dir.path()).await;
    let two = Server::start(&env, dir.path()).await;
    // One refill every 1,000 s: only the burst is there to spend.
    let key = tenant(&one, "acme", json!({"rate_limit": {"per_sec": 0.001, "burst": 10}})).await;
    // Each replica hears of the other within a heartbeat (5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;

    let mut allowed = 0;
    for _ in 0..10 {
        for replica in [&one, &two] {
            let (status, body) = request(Method::GET, replica.url("/v1/tools"), &key, None).await;
            match status {
                200 => allowed += 1,
                429 => assert_eq!(body["type"], "https://integrations.dev/problems/rate-limited"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    assert_eq!(
        allowed, 10,
        "the two replicas together allowed {allowed} of a burst of 10"
    );
    drop((one, two));
    scratch.drop_database().await;
}

fn resident_kb(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).expect("process status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Opens `count` MCP sessions with `initialize`, `concurrency` at a time; returns how many opened.
async fn initialize_sessions(server: &Server, key: &str, count: usize, concurrency: usize) -> usize {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..count {
        let (client, url, key) = (client.clone(), server.url("/mcp"), key.to_owned());
        let slot = slots.clone().acquire_owned().await.unwrap();
        calls.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": n, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "quota-test", "version": "1"}
                }}))
                .send()
                .await
                .expect("MCP answers");
            let opened = response.status() == 200 && response.headers().contains_key("mcp-session-id");
            let _ = response.bytes().await;
            drop(slot);
            opened
        });
    }
    let mut opened = 0;
    while let Some(call) = calls.join_next().await {
        opened += usize::from(call.unwrap());
    }
    opened
}

#[tokio::test]
async fn ten_thousand_mcp_sessions_of_one_tenant_grow_the_server_by_less_than_50_mb() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], dir.path()).await;
    let key = tenant(&server, "acme", json!({})).await;
    // Warm up: allocator arenas, the tenant's cached state, the first sessions.
    assert_eq!(initialize_sessions(&server, &key, 300, 16).await, 300);
    let before = resident_kb(&server);
    assert_eq!(initialize_sessions(&server, &key, 10_000, 32).await, 10_000);
    let grown_kb = resident_kb(&server).saturating_sub(before);
    assert!(
        grown_kb < 50 * 1024,
        "10,000 sessions grew the server by {} MB",
        grown_kb / 1024
    );
    // The tenant kept its most recent sessions; the server still answers.
    let (status, _) = request(Method::GET, server.url("/v1/tools"), &key, None).await;
    assert_eq!(status, 200);
}

/// `GET path` with `key` on a connection of its own, written by hand: a long-poll that holds its
/// connection until the server answers.
async fn raw_get(base: &str, path: &str, key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    stream
}

/// Whether the server has answered on `stream` (without waiting for it).
fn answered(stream: &tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Ok(n) if n > 0)
}

#[tokio::test]
async fn eleven_hundred_long_polls_of_one_tenant_leave_healthz_and_the_others_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], dir.path()).await;
    let acme = tenant(&server, "acme", json!({})).await;
    let globex = tenant(&server, "globex", json!({})).await;
    let (status, page) = request(Method::GET, server.url("/v1/events"), &acme, None).await;
    assert_eq!(status, 200, "{page}");
    let path = match page["next"].as_str() {
        Some(next) => format!("/v1/events?wait=30&after={next}"),
        None => "/v1/events?wait=30".to_owned(),
    };
    let mut polls = Vec::new();
    for _ in 0..1_100 {
        polls.push(raw_get(&server.base, &path, &acme).await);
    }
    // The tenant's first 16 wait; the rest were answered at once with an empty page.
    let settled = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = polls.iter().filter(|poll| !answered(poll)).count();
        if waiting <= 16 {
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(15),
            "{waiting} long-polls of one tenant still wait"
        );
    }
    let client = reqwest::Client::new();
    for (what, url, key) in [
        ("/healthz", server.url("/healthz"), None),
        ("another tenant", server.url("/v1/tools"), Some(&globex)),
    ] {
        let started = std::time::Instant::now();
        let mut call = client.get(url);
        if let Some(key) = key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.expect("answers");
        assert_eq!(response.status(), 200, "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what} took {:?} beside one tenant's 1,100 long-polls",
            started.elapsed()
        );
    }
}
