use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::json;

use super::*;

async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    integrations_store::testing::add_tenant(&store, "acme").await.unwrap();
    (dir, store)
}

fn fast() -> JobSettings {
    JobSettings {
        max_attempts: 3,
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(1),
        lease: Duration::from_secs(30),
        concurrency: 4,
    }
}

/// Fails `failures` times, then succeeds; records when each attempt ran.
#[derive(Default)]
struct Flaky {
    failures: usize,
    runs: Mutex<Vec<(String, tokio::time::Instant)>>,
}

#[async_trait]
impl JobHandler for Flaky {
    async fn run(&self, job: &Job) -> JobOutcome {
        let n = {
            let mut runs = self.runs.lock().unwrap();
            runs.push((job.id.clone(), tokio::time::Instant::now()));
            runs.iter().filter(|(id, _)| *id == job.id).count()
        };
        if n <= self.failures {
            JobOutcome::Retry(json!({"detail": format!("outage {n}")}))
        } else {
            JobOutcome::Succeeded(json!({"ok": job.payload}))
        }
    }
}

fn handlers(kind: &str, handler: Arc<dyn JobHandler>) -> HashMap<String, Arc<dyn JobHandler>> {
    HashMap::from([(kind.to_owned(), handler)])
}

async fn wait_for_state(store: &Store, id: &str, state: JobState) -> Job {
    for _ in 0..200 {
        let job = store.get_job("acme", id).await.unwrap().unwrap();
        if job.state == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never reached {state:?}");
}

#[tokio::test]
async fn a_job_runs_and_keeps_its_result() {
    let (_dir, store) = sqlite_store().await;
    let queue = JobQueue::new(store.clone(), fast());
    let worker = queue.spawn(handlers("echo", Arc::new(Flaky::default())));
    let id = queue.enqueue("acme", "echo", &json!({"n": 1})).await.unwrap();
    let job = wait_for_state(&store, &id, JobState::Succeeded).await;
    worker.abort();
    assert_eq!(job.attempts, 1);
    assert_eq!(job.result.as_deref(), Some(r#"{"ok":"{\"n\":1}"}"#));
}

#[tokio::test]
async fn failed_attempts_are_retried_after_growing_waits() {
    let (_dir, store) = sqlite_store().await;
    let queue = JobQueue::new(store.clone(), fast());
    let flaky = Arc::new(Flaky {
        failures: 2,
        ..Default::default()
    });
    let worker = queue.spawn(handlers("flaky", flaky.clone()));
    let id = queue.enqueue("acme", "flaky", &json!({})).await.unwrap();
    let job = wait_for_state(&store, &id, JobState::Succeeded).await;
    worker.abort();
    assert_eq!(job.attempts, 3);
    let runs = flaky.runs.lock().unwrap();
    let gaps: Vec<Duration> = runs.windows(2).map(|w| w[1].1 - w[0].1).collect();
    // 100 ms then 200 ms, each ±20%.
    assert!(gaps[0] >= Duration::from_millis(80), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(160), "{gaps:?}");
}

#[tokio::test]
async fn a_job_failing_every_attempt_is_dead_and_can_be_retried() {
    let (_dir, store) = sqlite_store().await;
    let queue = JobQueue::new(store.clone(), fast());
    let flaky = Arc::new(Flaky {
        failures: 3,
        ..Default::default()
    });
    let worker = queue.spawn(handlers("flaky", flaky.clone()));
    let id = queue.enqueue("acme", "flaky", &json!({})).await.unwrap();
    let dead = wait_for_state(&store, &id, JobState::Dead).await;
    assert_eq!(dead.attempts, 3);
    assert!(dead.last_error.is_some_and(|e| e.contains("outage 3")));
    let listed = store.list_jobs("acme", Some(JobState::Dead), None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);

    assert!(queue.retry("acme", &id).await.unwrap());
    let job = wait_for_state(&store, &id, JobState::Succeeded).await;
    worker.abort();
    assert_eq!(job.attempts, 1, "a retried job starts a fresh set of attempts");
    assert!(
        !queue.retry("acme", &id).await.unwrap(),
        "only dead or failed jobs are retried"
    );
    assert!(
        !queue.retry("globex", &id).await.unwrap(),
        "another tenant cannot retry it"
    );
}

struct Refusing;

#[async_trait]
impl JobHandler for Refusing {
    async fn run(&self, _job: &Job) -> JobOutcome {
        JobOutcome::Fail(json!({"detail": "refused"}))
    }
}

#[tokio::test]
async fn a_failure_no_retry_can_change_fails_at_once() {
    let (_dir, store) = sqlite_store().await;
    let queue = JobQueue::new(store.clone(), fast());
    let worker = queue.spawn(handlers("refuse", Arc::new(Refusing)));
    let id = queue.enqueue("acme", "refuse", &json!({})).await.unwrap();
    let job = wait_for_state(&store, &id, JobState::Failed).await;
    worker.abort();
    assert_eq!(job.attempts, 1);
}

#[tokio::test]
async fn a_job_whose_worker_died_runs_again_and_the_old_run_cannot_finish_it() {
    let (_dir, store) = sqlite_store().await;
    let queue = JobQueue::new(store.clone(), fast());
    let id = queue.enqueue("acme", "echo", &json!({})).await.unwrap();
    // A worker claims it with a short lease and dies.
    let claimed = store.claim_jobs(now_ms(), 200, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store.claim_jobs(now_ms(), 200, 10).await.unwrap().is_empty(),
        "claimed once"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let worker = queue.spawn(handlers("echo", Arc::new(Flaky::default())));
    let job = wait_for_state(&store, &id, JobState::Succeeded).await;
    worker.abort();
    assert_eq!(job.attempts, 2);
    let late = store
        .finish_job(&id, 1, JobState::Failed, None, Some("late"), now_ms(), now_ms())
        .await
        .unwrap();
    assert!(!late);
    assert_eq!(
        store.get_job("acme", &id).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
}

/// Counts runs per job.
#[derive(Default)]
struct Counting(Mutex<HashMap<String, usize>>, AtomicUsize);

#[async_trait]
impl JobHandler for Counting {
    async fn run(&self, job: &Job) -> JobOutcome {
        self.1.fetch_add(1, Ordering::SeqCst);
        *self.0.lock().unwrap().entry(job.id.clone()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        JobOutcome::Succeeded(json!(null))
    }
}

async fn two_workers_run_each_job_once(store: &Store) {
    let first = JobQueue::new(store.clone(), fast());
    let second = JobQueue::new(store.clone(), fast());
    let counting = Arc::new(Counting::default());
    let workers = [
        first.spawn(handlers("count", counting.clone())),
        second.spawn(handlers("count", counting.clone())),
    ];
    let mut ids = Vec::new();
    for n in 0..100 {
        let queue = if n % 2 == 0 { &first } else { &second };
        ids.push(queue.enqueue("acme", "count", &json!(n)).await.unwrap());
    }
    for id in &ids {
        wait_for_state(store, id, JobState::Succeeded).await;
    }
    for worker in workers {
        worker.abort();
    }
    let runs = counting.0.lock().unwrap();
    assert_eq!(runs.len(), 100);
    assert!(runs.values().all(|n| *n == 1), "a job ran twice: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_queue_and_run_each_job_once() {
    let (_dir, store) = sqlite_store().await;
    two_workers_run_each_job_once(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_postgres_run_each_job_once() {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let admin = Store::connect(&admin_url).await.unwrap();
    let name = format!("jobs_workers_{}", std::process::id());
    let drop_database = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx_execute(&admin, &drop_database).await;
    sqlx_execute(&admin, &format!("CREATE DATABASE {name}")).await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let store = Store::connect(&format!("{base}/{name}")).await.unwrap();
    store.migrate().await.unwrap();
    integrations_store::testing::add_tenant(&store, "acme").await.unwrap();
    two_workers_run_each_job_once(&store).await;
    store.close().await;
    sqlx_execute(&admin, &drop_database).await;
}

async fn sqlx_execute(store: &Store, statement: &str) {
    sqlx::query(statement).execute(store.pool()).await.unwrap();
}

#[test]
fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
    let settings = JobSettings {
        backoff_base: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(10),
        ..fast()
    };
    for (attempt, expected) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (40, 10.0)] {
        let wait = backoff(&settings, attempt).as_secs_f64();
        assert!(
            wait >= expected * 0.8 && wait <= expected * 1.2,
            "attempt {attempt}: {wait}"
        );
    }
}
