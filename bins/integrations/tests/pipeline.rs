//! The event pipeline's promise, with real processes: a webhook that got a 2xx is delivered
//! downstream (NATS JetStream, and an outbound webhook receiver) under exactly one id, whatever
//! crashes, also when a replica dies beside a live one; two replicas process each event once; a
//! client that hangs up after sending loses nothing that was committed.
//!
//! Uses the machine's NATS (127.0.0.1:4222) with a stream and subjects of each test's own.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use integrations_secrets::MasterKey;
use serde_json::{json, Value};
use support::{request, ScratchDatabase, Server, ADMIN};
use tokio::io::AsyncWriteExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NATS: &str = "nats://127.0.0.1:4222";
const HOOK_SECRET: &str = "pipeline-hook-secret";

struct Stream {
    name: String,
    prefix: String,
}

impl Stream {
    fn unique(label: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let unique = format!("{label}_{}_{nanos}", std::process::id());
        Self {
            name: format!("PIPELINE_{}", unique.to_uppercase()),
            prefix: format!("pipeline_{unique}"),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NATS_URL", NATS.to_owned()),
            ("INTEGRATIONS_NATS_STREAM", self.name.clone()),
            ("INTEGRATIONS_NATS_SUBJECT_PREFIX", self.prefix.clone()),
            ("INTEGRATIONS_NATS_JOBS_SUBJECT", format!("{}_jobs", self.prefix)),
        ]
    }

    /// Every issue-created event on the stream once it holds `at_least` (or after 60 s):
    /// `(Nats-Msg-Id, the delivery number the webhook carried)`.
    async fn issue_events(&self, at_least: usize) -> Vec<(String, u64)> {
        let client = async_nats::connect(NATS).await.expect("NATS");
        let jetstream = jetstream::new(client);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline && self.read(&jetstream).await.len() < at_least {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Anything published twice would show up in this extra moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.read(&jetstream).await
    }

    async fn read(&self, jetstream: &jetstream::Context) -> Vec<(String, u64)> {
        let Ok(mut stream) = jetstream.get_stream(&self.name).await else {
            return Vec::new();
        };
        let count = stream.info().await.map(|info| info.state.messages).unwrap_or(0);
        let mut events = Vec::new();
        for sequence in 1..=count {
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            if !message.subject.ends_with(".jira.jira.issue_created") {
                continue;
            }
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let event: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
            let number = event["data"]["issue"]["number"].as_u64().unwrap_or(u64::MAX);
            events.push((id, number));
        }
        events
    }

    async fn delete(&self) {
        if let Ok(client) = async_nats::connect(NATS).await {
            let jetstream = jetstream::new(client);
            let _ = jetstream.delete_stream(&self.name).await;
            let _ = jetstream.delete_stream(format!("{}_JOBS", self.name)).await;
        }
    }
}

fn signed(number: u64) -> (String, String) {
    let body = json!({"webhookEvent": "jira:issue_created", "issue": {"number": number}}).to_string();
    let signature = integrations_hub_signature::sign(HOOK_SECRET, body.as_bytes());
    (body, signature)
}

/// Subscribes `receiver` to the tenant's Jira events.
async fn subscribe_to_jira_events(server: &Server, key: &str, receiver: &str) {
    let (status, endpoint) = request(
        reqwest::Method::POST,
        server.url("/v1/webhook-endpoints"),
        key,
        Some(json!({"url": receiver, "event_types": ["jira.*"]})),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
}

/// A tenant `acme` with Jira installed (against a mock that passes the credential check).
async fn tenant_with_jira(server: &Server, jira: &MockServer) -> String {
    let (status, created) = request(
        reqwest::Method::POST,
        server.url("/v1/admin/tenants"),
        ADMIN,
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();
    let config =
        json!({"host": jira.uri(), "email": "bot@example.com", "api_token": "t", "webhook_secret": HOOK_SECRET});
    let (status, body) = request(
        reqwest::Method::POST,
        server.url("/v1/plugins/jira/install"),
        &key,
        Some(config),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    key
}

async fn jira() -> MockServer {
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accountId": "1"})))
        .mount(&jira)
        .await;
    jira
}

async fn deliver(client: &reqwest::Client, base: &str, number: u64) -> Option<u16> {
    let (body, signature) = signed(number);
    client
        .post(format!("{base}/v1/webhooks/jira/acme"))
        .header("content-type", "application/json")
        .header("x-atlassian-webhook-identifier", format!("delivery-{number}"))
        .header("x-hub-signature", signature)
        .body(body)
        .send()
        .await
        .ok()
        .map(|response| response.status().as_u16())
}

fn embedded(data_dir: &Path, master_key: &str, stream: &Stream) -> Vec<(&'static str, String)> {
    let mut env = stream.env();
    env.push(("INTEGRATIONS_MASTER_KEY", master_key.to_owned()));
    let _ = data_dir;
    env
}

/// What an outbound webhook receiver got: for each delivery number, the distinct `webhook-id`s it
/// came with, and when it first came.
#[derive(Default)]
struct Arrivals {
    ids: BTreeMap<u64, BTreeSet<String>>,
    first: BTreeMap<u64, tokio::time::Instant>,
}

type Received = Arc<std::sync::Mutex<Arrivals>>;

/// A receiver that answers each delivery after `delay`.
async fn start_receiver(delay: Duration) -> (String, Received) {
    use axum::routing::post;
    let received: Received = Arc::default();
    let record = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(number) = event["data"]["issue"]["number"].as_u64() {
                    let mut arrivals = record.lock().unwrap();
                    arrivals.ids.entry(number).or_default().insert(id);
                    arrivals.first.entry(number).or_insert_with(tokio::time::Instant::now);
                }
                tokio::time::sleep(delay).await;
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

/// Webhooks `0..total` sent by 64 concurrent senders, each to `bases[number % bases.len()]`.
struct Burst {
    total: u64,
    senders: Vec<tokio::task::JoinHandle<()>>,
    acknowledged: Arc<std::sync::Mutex<BTreeSet<u64>>>,
}

impl Burst {
    /// Starts sending; returns once `answers` webhooks were answered (a kill then falls mid-burst).
    async fn start(bases: Vec<String>, total: u64, answers: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let acknowledged = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let senders = (0..64)
            .map(|_| {
                let (client, bases) = (client.clone(), bases.clone());
                let (acknowledged, answered, next) = (acknowledged.clone(), answered.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let number = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if number >= total {
                            return;
                        }
                        let base = &bases[number as usize % bases.len()];
                        if let Some(status) = deliver(&client, base, number).await {
                            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if (200..300).contains(&status) {
                                acknowledged.lock().unwrap().insert(number);
                            }
                        }
                    }
                })
            })
            .collect();
        while answered.load(std::sync::atomic::Ordering::SeqCst) < answers {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Self {
            total,
            senders,
            acknowledged,
        }
    }

    /// Waits for the rest of the burst; returns the webhooks that got a 2xx.
    async fn finish(self) -> BTreeSet<u64> {
        for sender in self.senders {
            sender.await.unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        assert!(acknowledged.len() >= 300, "only {} acknowledged", acknowledged.len());
        assert!(
            (acknowledged.len() as u64) < self.total,
            "the kill came too late to test anything"
        );
        acknowledged
    }
}

/// Waits until the receiver has every acknowledged delivery (or 60 s), then checks each came
/// under exactly one `webhook-id` (a redelivery reuses it).
async fn assert_delivered_once(received: &Received, acknowledged: &BTreeSet<u64>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let missing = acknowledged
            .iter()
            .filter(|n| !received.lock().unwrap().ids.contains_key(n))
            .count();
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received = &received.lock().unwrap().ids;
    let lost: Vec<&u64> = acknowledged.iter().filter(|n| !received.contains_key(n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged webhooks never reached the receiver: {lost:?}",
        lost.len()
    );
    let twice: Vec<_> = received.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "deliveries sent under two webhook-ids: {twice:?}");
}

/// Checks that every acknowledged delivery is on the stream, and no event id or delivery twice.
fn assert_exactly_once(events: &[(String, u64)], acknowledged: &BTreeSet<u64>) {
    let ids: BTreeSet<&String> = events.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), events.len(), "an event id was published twice");
    let mut per_delivery: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, number) in events {
        *per_delivery.entry(*number).or_default() += 1;
    }
    let twice: Vec<_> = per_delivery.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "deliveries published under two ids: {twice:?}");
    let lost: Vec<&u64> = acknowledged.iter().filter(|n| !per_delivery.contains_key(n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged webhooks never reached NATS: {lost:?}",
        lost.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_burst_loses_no_acknowledged_webhook_and_publishes_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_, master_key) = MasterKey::generate().unwrap();
    let stream = Stream::unique("crash");
    let env = embedded(dir.path(), &master_key, &stream);
    let server = Server::start(&env, dir.path()).await;
    let jira = jira().await;
    let key = tenant_with_jira(&server, &jira).await;
    let (receiver, received) = start_receiver(Duration::ZERO).await;
    subscribe_to_jira_events(&server, &key, &receiver).await;

    // 1,000 webhooks from 64 concurrent senders; the server is killed after the 300th answer.
    let burst = Burst::start(vec![server.base.clone()], 1000, 300).await;
    server.kill();
    let acknowledged = burst.finish().await;

    let restarted = Server::start(&env, dir.path()).await;
    let events = stream.issue_events(acknowledged.len()).await;
    assert_exactly_once(&events, &acknowledged);
    assert_delivered_once(&received, &acknowledged).await;
    drop(restarted);
    stream.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_and_one_nats_process_each_event_once() {
    let Some(database) = ScratchDatabase::create("pipeline_replicas").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, master_key) = MasterKey::generate().unwrap();
    let stream = Stream::unique("replicas");
    let mut env = embedded(dir.path(), &master_key, &stream);
    env.push(("DATABASE_URL", database.url.clone()));
    let one = Server::start(&env, dir.path()).await;
    let two = Server::start(&env, dir.path()).await;
    let jira = jira().await;
    let key = tenant_with_jira(&one, &jira).await;

    let client = reqwest::Client::new();
    let mut acknowledged = BTreeSet::new();
    let sends: Vec<_> = (0..200u64)
        .map(|number| {
            let base = if number % 2 == 0 {
                one.base.clone()
            } else {
                two.base.clone()
            };
            let client = client.clone();
            tokio::spawn(async move { (number, deliver(&client, &base, number).await) })
        })
        .collect();
    for send in sends {
        let (number, status) = send.await.unwrap();
        assert_eq!(status, Some(202));
        acknowledged.insert(number);
    }
    let events = stream.issue_events(200).await;
    assert_exactly_once(&events, &acknowledged);
    assert_eq!(events.len(), 200);

    // Both replicas' readers see each event once.
    for server in [&one, &two] {
        let mut seen = BTreeSet::new();
        let mut after = String::new();
        loop {
            let (status, page) = request(
                reqwest::Method::GET,
                server.url(&format!("/v1/events?limit=500&after={after}")),
                &key,
                None,
            )
            .await;
            assert_eq!(status, 200);
            let batch = page["events"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for event in batch.iter().filter(|e| e["type"] == "jira.issue_created") {
                assert!(
                    seen.insert(event["data"]["issue"]["number"].as_u64().unwrap()),
                    "read twice"
                );
            }
            after = page["next"].as_str().unwrap().to_owned();
        }
        assert_eq!(seen, acknowledged);
    }
    drop((one, two));
    stream.delete().await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_burst_on_postgres_leaves_its_deliveries_to_the_other() {
    let Some(database) = ScratchDatabase::create("pipeline_takeover").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, master_key) = MasterKey::generate().unwrap();
    let stream = Stream::unique("takeover");
    let mut env = embedded(dir.path(), &master_key, &stream);
    env.push(("DATABASE_URL", database.url.clone()));
    // A lease is the timeout + 30 s: deliveries the killed replica held come back after ~31 s.
    env.push(("INTEGRATIONS_OUTBOUND_TIMEOUT_SECS", "1".to_owned()));
    let doomed = Server::start(&env, dir.path()).await;
    let jira = jira().await;
    let key = tenant_with_jira(&doomed, &jira).await;
    // A slow receiver, so that the replica holds leased deliveries, queued and in flight.
    let (receiver, received) = start_receiver(Duration::from_millis(20)).await;
    subscribe_to_jira_events(&doomed, &key, &receiver).await;

    // The burst goes to the replica to be killed. Once deliveries are under way it holds leases
    // (it is alone); the second replica starts beside it, and then it is killed mid-burst.
    let burst = Burst::start(vec![doomed.base.clone()], 5000, 300).await;
    let under_way = tokio::time::Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().ids.len() < 40 && tokio::time::Instant::now() < under_way {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let survivor = Server::start(&env, dir.path()).await;
    doomed.kill();
    let killed_at = tokio::time::Instant::now();
    let acknowledged = burst.finish().await;

    let events = stream.issue_events(acknowledged.len()).await;
    assert_exactly_once(&events, &acknowledged);
    assert_delivered_once(&received, &acknowledged).await;
    // The killed replica's leases lapsed and the survivor sent what they held: without the
    // takeover these would be missing above; this shows the test reached it.
    let late = received
        .lock()
        .unwrap()
        .first
        .values()
        .filter(|at| at.saturating_duration_since(killed_at) > Duration::from_secs(25))
        .count();
    assert!(late > 0, "no delivery waited for the killed replica's leases to lapse");
    drop(survivor);
    stream.delete().await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_hang_up_after_sending_lose_nothing_that_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, master_key) = MasterKey::generate().unwrap();
    let stream = Stream::unique("hangup");
    let env = embedded(dir.path(), &master_key, &stream);
    let server = Server::start(&env, dir.path()).await;
    let jira = jira().await;
    let key = tenant_with_jira(&server, &jira).await;
    let address = server.base.trim_start_matches("http://").to_owned();

    // Raw requests whose senders close the connection without reading a byte of the answer.
    let hangups: Vec<_> = (0..200u64)
        .map(|number| {
            let address = address.clone();
            tokio::spawn(async move {
                let (body, signature) = signed(number);
                let request = format!(
                    "POST /v1/webhooks/jira/acme HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
                     x-atlassian-webhook-identifier: delivery-{number}\r\nx-hub-signature: {signature}\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
                socket.write_all(request.as_bytes()).await.unwrap();
                // Gone at some moment while the server works on it: before, during or after its
                // commit (a client that closes at once is cancelled before anything is stored).
                tokio::time::sleep(Duration::from_millis(number % 100)).await;
                drop(socket);
            })
        })
        .collect();
    for hangup in hangups {
        hangup.await.unwrap();
    }
    // Whatever the server committed must come out the other end: compare its stored webhooks
    // with what reached NATS once the pipeline has drained.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut stored = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/v1/webhook-events?limit=500&after={cursor}"),
            None => "/v1/webhook-events?limit=500".to_owned(),
        };
        let (status, page) = request(reqwest::Method::GET, server.url(&path), &key, None).await;
        assert_eq!(status, 200, "{page}");
        for event in page["events"].as_array().into_iter().flatten() {
            stored.insert(event["payload"]["issue"]["number"].as_u64().unwrap());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(
        !stored.is_empty(),
        "the server committed none of the hung-up deliveries"
    );
    eprintln!("{} of 200 hung-up deliveries were committed", stored.len());
    let events = stream.issue_events(stored.len()).await;
    assert_exactly_once(&events, &stored);
    assert_eq!(events.len(), stored.len());
    drop(server);
    stream.delete().await;
}
