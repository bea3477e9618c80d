//! Hot-path benchmark: API-key auth + tool catalog, a full tool call (decrypt secrets, validate,
//! call a loopback wiremock Jira), and webhook ingestion (verify HMAC, store once).
//!
//! Runs in-process through the router, so it measures the service rather than the TCP stack.
//! `cargo xtask bench` (or `cargo bench -p integrations-e2e --bench hot_paths`); set
//! `TEST_DATABASE_URL` to measure on PostgreSQL, `BENCH_REQUESTS` / `BENCH_CONCURRENCY` to size it.

#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use harness::{jira_signature, TestApp};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Outcome {
    name: &'static str,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Outcome {
    fn print(&mut self) {
        self.latencies.sort();
        let at = |q: f64| {
            let index = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len()) - 1;
            self.latencies[index].as_secs_f64() * 1000.0
        };
        println!(
            "| {:<28} | {:>7} | {:>9.0} | {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2} |",
            self.name,
            self.latencies.len(),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            at(0.50),
            at(0.95),
            at(0.99),
            at(1.0)
        );
    }
}

async fn run<F, Fut>(name: &'static str, requests: usize, concurrency: usize, make: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, next) = (make.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break latencies;
                }
                let start = Instant::now();
                let status = make(i).await;
                assert!((200..300).contains(&status), "{name}: request {i} answered {status}");
                latencies.push(start.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    Outcome {
        name,
        latencies,
        elapsed: started.elapsed(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let requests = env_usize("BENCH_REQUESTS", 3000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 8);
    let app = Arc::new(TestApp::start().await);
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1", "key": "ABC-1", "fields": {"summary": "s"}})),
        )
        .mount(&jira)
        .await;
    let key = Arc::new(app.tenant("acme", json!({"plan": "pro"})).await);
    assert_eq!(
        app.install_jira(&key, &jira.uri(), "token", Some("hook-secret"))
            .await
            .status,
        201
    );
    let backend = if std::env::var("TEST_DATABASE_URL").is_ok() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("hot paths: {requests} requests per scenario, concurrency {concurrency}, {backend}, in-process router\n");
    println!("| scenario                     | requests|    req/s  | p50 ms  | p95 ms  | p99 ms  | max ms  |");
    println!("|------------------------------|--------:|----------:|--------:|--------:|--------:|--------:|");

    let (a, k) = (app.clone(), key.clone());
    run("auth + GET /v1/tools", requests, concurrency, move |_| {
        let (a, k) = (a.clone(), k.clone());
        async move { a.get("/v1/tools", &k).await.status.as_u16() }
    })
    .await
    .print();

    let (a, k) = (app.clone(), key.clone());
    run("tool call jira_get_issue", requests, concurrency, move |_| {
        let (a, k) = (a.clone(), k.clone());
        async move {
            a.post("/v1/tools/jira_get_issue", &k, json!({"issue_key": "ABC-1"}))
                .await
                .status
                .as_u16()
        }
    })
    .await
    .print();

    let a = app.clone();
    let body = br#"{"webhookEvent":"jira:issue_updated","issue":{"key":"ABC-1"}}"#.to_vec();
    let signature = jira_signature("hook-secret", &body);
    run("webhook verify + store", requests, concurrency, move |i| {
        let (a, body, signature) = (a.clone(), body.clone(), signature.clone());
        async move {
            let request = http::Request::post("/v1/webhooks/jira/acme")
                .header("x-hub-signature", signature)
                .header("x-atlassian-webhook-identifier", format!("delivery-{i}"))
                .body(Body::from(body))
                .expect("request");
            a.send(request).await.status.as_u16()
        }
    })
    .await
    .print();
}
