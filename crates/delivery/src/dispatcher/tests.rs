//! The dispatcher against a real store and a receiver that holds every request until the test
//! lets it answer, so what the dispatcher holds at a moment can be counted.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use integrations_core::{HttpClient, HttpError, HttpRequest, HttpResponse};
use integrations_store::testing::add_tenant;
use integrations_store::NewDelivery;
use sqlx::Row;

use super::*;
use crate::testing::{emit, endpoint, sqlite_store};
use crate::{ContextError, SigningSecret};

/// Answers 200 to each request once the gate lets it through; records what it got.
struct Gated {
    entered: AtomicUsize,
    gate: Semaphore,
    hits: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl HttpClient for Gated {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        let webhook_id = request.headers()["webhook-id"].to_str().unwrap().to_owned();
        self.hits.lock().unwrap().push((request.uri().to_string(), webhook_id));
        Ok(http::Response::new(Vec::new()))
    }

    async fn check_destination(&self, _url: &str) -> Result<(), HttpError> {
        Ok(())
    }
}

struct Context(Arc<Gated>);

#[async_trait]
impl DeliveryContext for Context {
    async fn http_client(&self, _tenant_id: &str) -> Result<Arc<dyn HttpClient>, ContextError> {
        Ok(self.0.clone())
    }

    async fn open_secret(&self, _tenant: &str, _endpoint: &str, _sealed: &[u8]) -> Result<SigningSecret, ContextError> {
        Ok(SigningSecret::from_bytes(vec![7; 24]))
    }
}

/// `endpoints` endpoints of one tenant (each at its own URL), `events` events of about `padding`
/// bytes of data, a delivery of each event to each endpoint, and a dispatcher with `budget`
/// bytes running over them.
async fn running(
    endpoints: usize,
    events: usize,
    padding: usize,
    budget: usize,
) -> (
    tempfile::TempDir,
    Store,
    Arc<Gated>,
    Arc<Dispatcher>,
    tokio::task::JoinHandle<()>,
) {
    let (dir, store) = sqlite_store().await;
    add_tenant(&store, "acme").await.unwrap();
    let mut deliveries = Vec::new();
    let mut seqs = Vec::new();
    for n in 0..events {
        seqs.push(emit(&store, "acme", n, padding).await);
    }
    for e in 0..endpoints {
        let mut endpoint = endpoint(format!("ep_{e}"), "acme", vec![]);
        endpoint.url = format!("https://example.com/{e}");
        store.insert_webhook_endpoint(&endpoint, 100).await.unwrap().unwrap();
        deliveries.extend(seqs.iter().map(|seq| NewDelivery {
            tenant_id: "acme".into(),
            endpoint_id: endpoint.id.clone(),
            event_seq: *seq,
            next_attempt_at: 0,
        }));
    }
    store.insert_deliveries(&deliveries).await.unwrap();
    let receiver = Arc::new(Gated {
        entered: AtomicUsize::new(0),
        gate: Semaphore::new(0),
        hits: Mutex::default(),
    });
    let settings = DeliverySettings {
        memory_budget_bytes: budget,
        poll_interval: Duration::from_millis(20),
        ..DeliverySettings::default()
    };
    let dispatcher = Arc::new(Dispatcher::new(
        store.clone(),
        Arc::new(Context(receiver.clone())),
        settings,
        Arc::new(Notify::new()),
    ));
    let run = tokio::spawn(dispatcher.clone().run());
    (dir, store, receiver, dispatcher, run)
}

async fn leased(store: &Store) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM webhook_deliveries WHERE lease_token IS NOT NULL")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0)
}

/// Waits until `done` says so; fails after 20 seconds.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not done within 20 s");
}

/// Forty deliveries of 10 kB events to four endpoints, a budget of 25 kB: two at a time are
/// claimed and held (without the budget all forty were, sixteen of them in flight), and every
/// one is delivered in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_no_more_event_data_than_its_budget() {
    let (_dir, store, receiver, dispatcher, run) = running(4, 10, 10_000, 25_000).await;
    until(|| receiver.entered.load(Ordering::SeqCst) >= 2).await;
    // Time for any further claim to happen while every request is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.entered.load(Ordering::SeqCst), 2, "requests in flight");
    assert_eq!(leased(&store).await, 2, "deliveries claimed");

    receiver.gate.add_permits(1_000);
    until(|| receiver.hits.lock().unwrap().len() >= 40).await;
    let mut hits = receiver.hits.lock().unwrap().clone();
    hits.sort();
    hits.dedup();
    assert_eq!(hits.len(), 40, "each delivery once");
    let peak = dispatcher.budget.peak();
    assert!(peak <= 25_000 && peak > 10_000, "held at most {peak} bytes");
    run.abort();
}

/// A budget smaller than one event still lets it through, one delivery at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_the_budget_is_delivered_alone() {
    let (_dir, store, receiver, dispatcher, run) = running(3, 1, 10_000, 1_000).await;
    until(|| receiver.entered.load(Ordering::SeqCst) >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.entered.load(Ordering::SeqCst), 1);
    assert_eq!(leased(&store).await, 1);
    receiver.gate.add_permits(1_000);
    until(|| receiver.hits.lock().unwrap().len() >= 3).await;
    assert!(dispatcher.budget.peak() < 20_000, "one at a time");
    run.abort();
}
