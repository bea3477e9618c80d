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
        max_running_per_tenant: 4,
        retention: Duration::from_secs(3600),
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
    let listed = store
        .list_jobs("acme", Some(JobState::Dead), None, 10, u64::MAX)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    assert!(queue.retry("acme", &id, 10).await.unwrap());
    let job = wait_for_state(&store, &id, JobState::Succeeded).await;
    worker.abort();
    assert_eq!(job.attempts, 1, "a retried job starts a fresh set of attempts");
    assert!(
        !queue.retry("acme", &id, 10).await.unwrap(),
        "only dead or failed jobs are retried"
    );
    assert!(
        !queue.retry("globex", &id, 10).await.unwrap(),
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
    let claimed = store.claim_jobs(now_ms(), 200, 10, 4).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store.claim_jobs(now_ms(), 200, 10, 4).await.unwrap().is_empty(),
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

/// Two tests of `check(&Store)` on two worker threads, the store holding tenants `acme` and
/// `globex`: `$sqlite` on a SQLite file of its own, `$postgres` on a PostgreSQL database of its own
/// (named after `$label`, dropped afterwards; skipped when `TEST_DATABASE_URL` names no server).
macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $label:literal, $check:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let (_dir, store) = sqlite_store().await;
            integrations_store::testing::add_tenant(&store, "globex")
                .await
                .unwrap();
            $check(&store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some((admin, name, store)) = scratch_postgres($label).await else {
                return;
            };
            $check(&store).await;
            store.close().await;
            sqlx_execute(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    };
}

/// A migrated PostgreSQL database of its own with tenants `acme` and `globex`, and the admin
/// connection that drops it; `None` without `TEST_DATABASE_URL`.
async fn scratch_postgres(label: &str) -> Option<(Store, String, Store)> {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return None;
    };
    let admin = Store::connect(&admin_url).await.unwrap();
    let name = format!("{label}_{}", std::process::id());
    sqlx_execute(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    sqlx_execute(&admin, &format!("CREATE DATABASE {name}")).await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let store = Store::connect(&format!("{base}/{name}")).await.unwrap();
    store.migrate().await.unwrap();
    for tenant in ["acme", "globex"] {
        integrations_store::testing::add_tenant(&store, tenant).await.unwrap();
    }
    Some((admin, name, store))
}

on_both_backends!(
    two_workers_share_the_queue_and_run_each_job_once,
    two_workers_on_postgres_run_each_job_once,
    "jobs_workers",
    two_workers_run_each_job_once
);

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

/// Holds every run until the test releases it; records which tenant's job started, in order, and
/// the most jobs of each tenant running at once.
struct Gate {
    started: Mutex<Vec<String>>,
    running: Mutex<HashMap<String, (usize, usize)>>,
    release: tokio::sync::Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            started: Mutex::default(),
            running: Mutex::default(),
            release: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Gate {
    fn started(&self) -> Vec<String> {
        self.started.lock().unwrap().clone()
    }

    fn started_of(&self, tenant: &str) -> usize {
        self.started().iter().filter(|t| *t == tenant).count()
    }

    /// The most of `tenant`'s jobs that ran at once.
    fn most_running(&self, tenant: &str) -> usize {
        self.running.lock().unwrap().get(tenant).map_or(0, |(_, most)| *most)
    }
}

#[async_trait]
impl JobHandler for Gate {
    async fn run(&self, job: &Job) -> JobOutcome {
        self.started.lock().unwrap().push(job.tenant_id.clone());
        {
            let mut running = self.running.lock().unwrap();
            let (now, most) = running.entry(job.tenant_id.clone()).or_default();
            *now += 1;
            *most = (*most).max(*now);
        }
        if let Ok(permit) = self.release.acquire().await {
            permit.forget();
        }
        if let Some((now, _)) = self.running.lock().unwrap().get_mut(&job.tenant_id) {
            *now -= 1;
        }
        JobOutcome::Succeeded(json!(null))
    }
}

/// Waits (generously) until `condition` holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..400 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

async fn queued_of(store: &Store, tenant: &str) -> usize {
    store
        .list_jobs(tenant, Some(JobState::Queued), None, 500, u64::MAX)
        .await
        .unwrap()
        .len()
}

on_both_backends!(
    a_tenant_backlog_holds_only_its_share_of_the_workers,
    a_tenant_backlog_holds_only_its_share_of_the_workers_on_postgres,
    "jobs_share",
    share_of_the_workers
);

/// Two replicas with three workers each, and a share of two per tenant: acme's twelve slow jobs
/// hold two workers across both replicas, and globex's job starts while acme's wait.
async fn share_of_the_workers(store: &Store) {
    let settings = JobSettings {
        concurrency: 3,
        max_running_per_tenant: 2,
        ..fast()
    };
    let gate = Arc::new(Gate::default());
    let replicas = [
        JobQueue::new(store.clone(), settings),
        JobQueue::new(store.clone(), settings),
    ];
    let workers: Vec<_> = replicas
        .iter()
        .map(|q| q.spawn(handlers("slow", gate.clone())))
        .collect();
    for _ in 0..12 {
        replicas[0].enqueue("acme", "slow", &json!({})).await.unwrap();
    }
    eventually("acme's first jobs start", || gate.started_of("acme") == 2).await;
    replicas[1].enqueue("globex", "slow", &json!({})).await.unwrap();
    eventually("globex's job starts", || gate.started_of("globex") == 1).await;
    assert_eq!(gate.started_of("acme"), 2, "acme ran past its share");
    assert_eq!(queued_of(store, "acme").await, 10);
    gate.release.add_permits(100);
    eventually("every job ends", || gate.started().len() == 13).await;
    for worker in workers {
        worker.abort();
    }
    assert_eq!(gate.most_running("acme"), 2);
}

on_both_backends!(
    a_free_worker_takes_the_job_of_a_tenant_with_none_running_first,
    a_free_worker_takes_the_job_of_a_tenant_with_none_running_first_on_postgres,
    "jobs_round_robin",
    round_robin
);

/// Two workers, both busy with acme's slow jobs (its share is larger): when one frees up, it
/// takes globex's job, queued after acme's eight others.
async fn round_robin(store: &Store) {
    let settings = JobSettings {
        concurrency: 2,
        max_running_per_tenant: 4,
        ..fast()
    };
    let gate = Arc::new(Gate::default());
    let queue = JobQueue::new(store.clone(), settings);
    let worker = queue.spawn(handlers("slow", gate.clone()));
    for _ in 0..10 {
        queue.enqueue("acme", "slow", &json!({})).await.unwrap();
    }
    eventually("both workers are busy", || gate.started().len() == 2).await;
    queue.enqueue("globex", "slow", &json!({})).await.unwrap();
    gate.release.add_permits(1);
    eventually("a third job starts", || gate.started().len() == 3).await;
    assert_eq!(gate.started()[2], "globex", "{:?}", gate.started());
    assert_eq!(queued_of(store, "acme").await, 8);
    gate.release.add_permits(100);
    eventually("every job ends", || gate.started().len() == 11).await;
    worker.abort();
}

on_both_backends!(
    a_tenant_at_its_limit_of_queued_jobs_enqueues_nothing,
    a_tenant_at_its_limit_of_queued_jobs_enqueues_nothing_on_postgres,
    "jobs_queued_limit",
    queued_limit
);

async fn queued_limit(store: &Store) {
    let queue = JobQueue::new(store.clone(), fast());
    for _ in 0..2 {
        queue.enqueue_within("acme", "echo", &json!({}), 2).await.unwrap();
    }
    let refused = queue.enqueue_within("acme", "echo", &json!({}), 2).await;
    assert!(
        matches!(refused, Err(EnqueueError::TooManyQueued { limit: 2 })),
        "{refused:?}"
    );
    assert_eq!(queued_of(store, "acme").await, 2);
    // Another tenant's jobs are its own.
    queue.enqueue_within("globex", "echo", &json!({}), 2).await.unwrap();
    // A job that ended no longer counts.
    let worker = queue.spawn(handlers("echo", Arc::new(Flaky::default())));
    eventually_async(|| async { queued_of(store, "acme").await == 0 }).await;
    worker.abort();
    queue.enqueue_within("acme", "echo", &json!({}), 2).await.unwrap();
}

/// Waits (generously) until `condition` resolves to true.
async fn eventually_async<F: std::future::Future<Output = bool>>(mut condition: impl FnMut() -> F) {
    for _ in 0..400 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_do_not_pass_the_limit_on_sqlite() {
    let (_dir, store) = sqlite_store().await;
    let queue = JobQueue::new(store.clone(), fast());
    let attempts = (0..20).map(|_| {
        let queue = queue.clone();
        tokio::spawn(async move { queue.enqueue_within("acme", "echo", &json!({}), 5).await.is_ok() })
    });
    let mut accepted = 0;
    for attempt in attempts {
        accepted += usize::from(attempt.await.unwrap());
    }
    assert_eq!(accepted, 5);
    assert_eq!(queued_of(&store, "acme").await, 5);
}

on_both_backends!(
    a_retry_past_the_limit_of_queued_jobs_is_refused,
    a_retry_past_the_limit_of_queued_jobs_is_refused_on_postgres,
    "jobs_retry_limit",
    retry_limit
);

async fn retry_limit(store: &Store) {
    let queue = JobQueue::new(store.clone(), fast());
    let worker = queue.spawn(handlers("refuse", Arc::new(Refusing)));
    let failed = queue.enqueue("acme", "refuse", &json!({})).await.unwrap();
    wait_for_state(store, &failed, JobState::Failed).await;
    worker.abort();
    queue.enqueue_within("acme", "other", &json!({}), 1).await.unwrap();
    assert!(
        !queue.retry("acme", &failed, 1).await.unwrap(),
        "a retry passed the limit"
    );
    assert!(queue.retry("acme", &failed, 2).await.unwrap());
}

#[tokio::test]
async fn finished_jobs_are_removed_after_the_retention_and_others_are_kept() {
    let (_dir, store) = sqlite_store().await;
    let settings = JobSettings {
        retention: Duration::from_secs(1),
        ..fast()
    };
    let queue = JobQueue::new(store.clone(), settings);
    let gate = Arc::new(Gate::default());
    let worker = queue.spawn(HashMap::from([
        ("echo".to_owned(), Arc::new(Flaky::default()) as Arc<dyn JobHandler>),
        ("refuse".to_owned(), Arc::new(Refusing) as Arc<dyn JobHandler>),
        ("slow".to_owned(), gate.clone() as Arc<dyn JobHandler>),
    ]));
    let succeeded = queue.enqueue("acme", "echo", &json!({})).await.unwrap();
    let failed = queue.enqueue("acme", "refuse", &json!({})).await.unwrap();
    let running = queue.enqueue("acme", "slow", &json!({})).await.unwrap();
    wait_for_state(&store, &succeeded, JobState::Succeeded).await;
    wait_for_state(&store, &failed, JobState::Failed).await;
    eventually_async(|| async {
        store.get_job("acme", &succeeded).await.unwrap().is_none()
            && store.get_job("acme", &failed).await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        store.get_job("acme", &running).await.unwrap().map(|job| job.state),
        Some(JobState::Running),
        "a running job was removed"
    );
    gate.release.add_permits(1);
    worker.abort();
}
