//! The job feed on the machine's JetStream (a stream and subject of this test's own): jobs reach
//! the workers through NATS, before the database poll would find them, each runs once across two
//! workers, and a retry comes back through a delayed negative acknowledgement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use integrations_jobs::{Job, JobHandler, JobOutcome, JobQueue, JobSettings};
use integrations_nats::{NatsJobFeed, NatsSettings};
use integrations_store::{JobState, Store};
use serde_json::json;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    integrations_store::testing::add_tenant(&store, "acme").await.unwrap();
    (dir, store)
}

fn settings() -> NatsSettings {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let unique = format!("{}_{nanos}", std::process::id());
    NatsSettings {
        stream: format!("TESTJOBS_{unique}"),
        jobs_subject: format!("testjobs_{unique}.jobs"),
        ..NatsSettings::new("nats://127.0.0.1:4222")
    }
}

/// Fails each job's first attempt when `fail_first`, then succeeds; counts runs per job.
#[derive(Default)]
struct Counting {
    fail_first: bool,
    runs: Mutex<HashMap<String, usize>>,
}

#[async_trait]
impl JobHandler for Counting {
    async fn run(&self, job: &Job) -> JobOutcome {
        let run = {
            let mut runs = self.runs.lock().unwrap();
            let n = runs.entry(job.id.clone()).or_default();
            *n += 1;
            *n
        };
        if self.fail_first && run == 1 {
            JobOutcome::Retry(json!({"detail": "first attempt fails"}))
        } else {
            JobOutcome::Succeeded(json!(run))
        }
    }
}

async fn worker(
    store: &Store,
    settings: &NatsSettings,
    handler: Arc<Counting>,
) -> (Arc<JobQueue>, tokio::task::JoinHandle<()>) {
    let queue = JobQueue::new(
        store.clone(),
        JobSettings {
            backoff_base: Duration::from_millis(200),
            ..JobSettings::default()
        },
    );
    let feed = NatsJobFeed::connect(settings, Duration::from_secs(30)).await.unwrap();
    queue.set_feed(feed).unwrap();
    let handlers: HashMap<String, Arc<dyn JobHandler>> =
        HashMap::from([("count".to_owned(), handler as Arc<dyn JobHandler>)]);
    let task = queue.spawn(handlers);
    (queue, task)
}

/// Waits up to 4 s, less than the 5 s after which the database poll would take a job itself.
async fn all_succeeded(store: &Store, ids: &[String]) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < deadline {
        let mut done = 0;
        for id in ids {
            if store.get_job("acme", id).await.unwrap().unwrap().state == JobState::Succeeded {
                done += 1;
            }
        }
        if done == ids.len() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn delete_stream(settings: &NatsSettings) {
    let client = async_nats::connect(&settings.url).await.unwrap();
    let _ = async_nats::jetstream::new(client)
        .delete_stream(format!("{}_JOBS", settings.stream))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_take_jobs_from_nats_and_run_each_once() {
    let (_dir, store) = store().await;
    let settings = settings();
    let handler = Arc::new(Counting::default());
    let (first, first_task) = worker(&store, &settings, handler.clone()).await;
    let (second, second_task) = worker(&store, &settings, handler.clone()).await;
    let mut ids = Vec::new();
    for n in 0..50 {
        let queue = if n % 2 == 0 { &first } else { &second };
        ids.push(queue.enqueue("acme", "count", &json!(n)).await.unwrap());
    }
    let done = all_succeeded(&store, &ids).await;
    first_task.abort();
    second_task.abort();
    delete_stream(&settings).await;
    assert!(done, "jobs were not run from their NATS announcements");
    let runs = handler.runs.lock().unwrap();
    assert_eq!(runs.len(), 50);
    assert!(runs.values().all(|n| *n == 1), "a job ran twice: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_comes_back_through_the_feed_when_it_is_due() {
    let (_dir, store) = store().await;
    let settings = settings();
    let handler = Arc::new(Counting {
        fail_first: true,
        ..Default::default()
    });
    let (queue, task) = worker(&store, &settings, handler.clone()).await;
    let id = queue.enqueue("acme", "count", &json!("retry me")).await.unwrap();
    let done = all_succeeded(&store, std::slice::from_ref(&id)).await;
    task.abort();
    delete_stream(&settings).await;
    assert!(done, "the retry did not come back through NATS in time");
    let job = store.get_job("acme", &id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
}
