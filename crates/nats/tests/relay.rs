//! The relay against real NATS servers: the machine's (own stream and subjects per test) and, for
//! the outage, a `nats-server -js` this test starts, stops and starts again on a free port.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use integrations_core::PluginRegistry;
use integrations_events::EventLog;
use integrations_nats::{EventRelay, NatsSettings};
use integrations_store::Store;
use serde_json::json;

const SHARED_NATS: &str = "nats://127.0.0.1:4222";

async fn log_with_tenant() -> (tempfile::TempDir, Store, Arc<EventLog>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    integrations_store::testing::add_tenant(&store, "acme").await.unwrap();
    let log = EventLog::new(store.clone(), Arc::new(PluginRegistry::from_plugins(vec![]).unwrap()));
    (dir, store, log)
}

/// A stream name and subject prefix no other test uses.
fn settings(url: &str, label: &str) -> NatsSettings {
    let unique = format!("{label}_{}_{}", std::process::id(), rand_suffix());
    NatsSettings {
        stream: format!("TEST_{}", unique.to_uppercase()),
        subject_prefix: format!("test_{unique}.events"),
        ..NatsSettings::new(url)
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn emit(log: &EventLog, count: usize, from: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in from..from + count {
        let emitted = log.emit("acme", "order.created", json!({"n": n}), None).await.unwrap();
        ids.push(emitted.id);
    }
    ids
}

/// The `Nats-Msg-Id`s on the stream once it holds `expected` messages (or after 20 s).
async fn message_ids(url: &str, stream: &str, expected: u64) -> (u64, Vec<String>, Vec<String>) {
    let client = async_nats::connect(url).await.unwrap();
    let jetstream = jetstream::new(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        if let Ok(stream) = jetstream.get_stream(stream).await {
            break stream;
        }
        assert!(tokio::time::Instant::now() < deadline, "stream {stream} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    while tokio::time::Instant::now() < deadline {
        if stream.info().await.unwrap().state.messages >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little longer: anything published twice would show up now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = stream.info().await.unwrap().state.messages;
    let (mut ids, mut subjects) = (Vec::new(), Vec::new());
    for sequence in 1..=count {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        ids.push(id);
        subjects.push(message.subject.to_string());
    }
    (count, ids, subjects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_publish_every_event_once_under_its_id_and_subject() {
    let (_dir, store, log) = log_with_tenant().await;
    let settings = settings(SHARED_NATS, "relay");
    // Two replicas' relays over one log, as after a crash that lost the cursor's last move.
    let first = EventRelay::new(store.clone(), settings.clone(), log.appended()).spawn();
    let second = EventRelay::new(store.clone(), settings.clone(), log.appended()).spawn();
    let emitted = emit(&log, 50, 0).await;

    let (count, ids, subjects) = message_ids(SHARED_NATS, &settings.stream, 50).await;
    first.abort();
    second.abort();
    assert_eq!(count, 50);
    assert_eq!(ids, emitted, "in log order, each under its event id");
    let expected_subject = format!("{}.acme.tenant.order.created", settings.subject_prefix);
    assert!(subjects.iter().all(|s| *s == expected_subject), "{subjects:?}");

    let client = async_nats::connect(SHARED_NATS).await.unwrap();
    jetstream::new(client).delete_stream(&settings.stream).await.unwrap();
}

struct NatsServer {
    child: std::process::Child,
}

impl NatsServer {
    fn start(port: u16, store_dir: &std::path::Path) -> Self {
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server is installed");
        Self { child }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nats-server did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_while_nats_is_down_are_published_once_it_is_back() {
    let (_dir, store, log) = log_with_tenant().await;
    let nats_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let server = NatsServer::start(port, nats_dir.path());
    wait_for_port(port).await;
    let settings = settings(&url, "outage");
    let relay = EventRelay::new(store.clone(), settings.clone(), log.appended()).spawn();

    let mut emitted = emit(&log, 20, 0).await;
    let (before, _, _) = message_ids(&url, &settings.stream, 20).await;
    assert_eq!(before, 20);

    server.stop();
    emitted.extend(emit(&log, 20, 20).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _server = NatsServer::start(port, nats_dir.path());
    wait_for_port(port).await;
    emitted.extend(emit(&log, 5, 40).await);

    let (count, ids, _) = message_ids(&url, &settings.stream, 45).await;
    relay.abort();
    assert_eq!(count, 45);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 45);
    assert_eq!(ids, emitted);
}
