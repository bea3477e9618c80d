//! The durable job queue (what Celery did in the original design).
//!
//! Jobs live in the database: enqueued in a row, claimed with a lease (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL, so replicas share the work and never claim one job twice), run at least once,
//! retried with exponential backoff and jitter, and dead after their last allowed attempt. A job
//! whose worker died is claimed again when its lease runs out; the attempt number fences the old
//! run's late finish. Leases outlast the longest run a handler allows (a tool call's deadline), so
//! two runs of one job never overlap.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
pub use integrations_store::Job;
use integrations_store::{JobClaim, JobState, NewJob, Store, StoreError};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

/// How an idle worker waits before looking for due jobs (retries come due with time, and other
/// replicas enqueue without waking this one).
const IDLE_POLL: Duration = Duration::from_millis(200);

/// With a feed, the database is polled only for jobs the feed should have announced this long ago.
const FEED_GRACE: Duration = Duration::from_secs(5);

/// A message queue that announces runnable jobs to the workers of every replica (NATS JetStream),
/// so they need not poll the database for them. The database stays the record: a worker claims an
/// announced job there, so a job announced twice still runs once at a time.
#[async_trait]
pub trait JobFeed: Send + Sync + 'static {
    /// Announces a runnable job.
    async fn announce(&self, job_id: &str) -> Result<(), String>;
    /// The next announced job; `None` once the feed has ended.
    async fn next(&self) -> Option<FedJob>;
}

/// An announced job, and how to settle its announcement when the attempt ends.
pub struct FedJob {
    /// The job's id.
    pub job_id: String,
    /// Where the worker says what became of it.
    pub settle: oneshot::Sender<Settle>,
}

/// What becomes of an announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Nothing more to do for it (done, dead, failed, or another worker holds the job).
    Done,
    /// Announce it again after this wait (a retry, or a job not due yet).
    Later(Duration),
}

/// How the queue runs jobs.
#[derive(Clone, Copy, Debug)]
pub struct JobSettings {
    /// Attempts a job gets before it is dead.
    pub max_attempts: i64,
    /// Wait before the first retry; doubles with each further attempt.
    pub backoff_base: Duration,
    /// Longest wait between attempts.
    pub backoff_cap: Duration,
    /// How long a claim lasts; must outlast the longest run of any handler.
    pub lease: Duration,
    /// Jobs run at once by this process.
    pub concurrency: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(600),
            lease: Duration::from_secs(120),
            concurrency: 16,
        }
    }
}

/// How one run of a job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// Done, with its result.
    Succeeded(Value),
    /// Failed in a way another attempt may not (a vendor outage): retried while attempts remain.
    Retry(Value),
    /// Failed in a way no retry changes (refused arguments): failed for good.
    Fail(Value),
}

/// Runs the jobs of one kind.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt of `job`.
    async fn run(&self, job: &Job) -> JobOutcome;
}

/// The queue of this process.
pub struct JobQueue {
    store: Store,
    settings: JobSettings,
    wake: Notify,
    feed: OnceLock<Arc<dyn JobFeed>>,
}

impl JobQueue {
    /// A queue over `store`'s jobs table.
    pub fn new(store: Store, settings: JobSettings) -> Arc<Self> {
        Arc::new(Self {
            store,
            settings,
            wake: Notify::new(),
            feed: OnceLock::new(),
        })
    }

    /// Announces jobs through `feed` from now on, and lets the worker take them from it (set it
    /// before [`JobQueue::spawn`]); a second feed is refused.
    pub fn set_feed(&self, feed: Arc<dyn JobFeed>) -> Result<(), String> {
        self.feed
            .set(feed)
            .map_err(|_| "the job queue has a feed already".to_owned())
    }

    async fn announce(&self, job_id: &str) {
        if let Some(feed) = self.feed.get() {
            // The database poll still finds the job, a little later.
            if let Err(error) = feed.announce(job_id).await {
                tracing::warn!(job = job_id, %error, "could not announce a job");
            }
        }
    }

    /// Adds a job of `kind` for `tenant`; returns its id.
    pub async fn enqueue(&self, tenant: &str, kind: &str, payload: &Value) -> Result<String, StoreError> {
        let job = NewJob {
            id: new_job_id(),
            tenant_id: tenant.to_owned(),
            kind: kind.to_owned(),
            payload: payload.to_string(),
            max_attempts: self.settings.max_attempts,
        };
        self.store.enqueue_job(&job, now_ms()).await?;
        self.wake.notify_one();
        self.announce(&job.id).await;
        Ok(job.id)
    }

    /// Queues a dead or failed job again; false when it is neither (or not the tenant's).
    pub async fn retry(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let retried = self.store.retry_job(tenant, id, now_ms()).await?;
        if retried {
            self.wake.notify_one();
            self.announce(id).await;
        }
        Ok(retried)
    }

    /// The wait before attempt `attempt + 1`, after `attempt` failed: base × 2^(attempt−1), at most
    /// the cap, ±20% jitter so that jobs failing together do not retry together.
    pub fn backoff(&self, attempt: i64) -> Duration {
        backoff(&self.settings, attempt)
    }

    /// Starts the worker with a handler per job kind; abort the handle to stop it.
    pub fn spawn(self: &Arc<Self>, handlers: HashMap<String, Arc<dyn JobHandler>>) -> JoinHandle<()> {
        let queue = self.clone();
        let handlers = Arc::new(handlers);
        tokio::spawn(async move { queue.work(handlers).await })
    }

    async fn work(self: Arc<Self>, handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let grace = match self.feed.get() {
            Some(feed) => {
                tokio::spawn(
                    self.clone()
                        .take_from_feed(feed.clone(), handlers.clone(), slots.clone()),
                );
                FEED_GRACE.as_millis() as i64
            }
            None => 0,
        };
        loop {
            let free = slots.available_permits() as i64;
            let claimed = if free == 0 {
                Vec::new()
            } else {
                let lease = self.settings.lease.as_millis() as i64;
                let now = now_ms();
                match self.store.claim_due_jobs(now, now - grace, lease, free).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(%error, "could not claim jobs");
                        Vec::new()
                    }
                }
            };
            let full_batch = !claimed.is_empty() && claimed.len() as i64 == free;
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (queue, handlers) = (self.clone(), handlers.clone());
                tokio::spawn(async move {
                    let recorded = queue.run(&handlers, job.clone()).await;
                    drop(permit);
                    queue.wake.notify_one();
                    if let Some((JobState::Queued, _)) = recorded {
                        // A retry: the feed redelivers it when it is due.
                        queue.announce(&job.id).await;
                    }
                });
            }
            if !full_batch {
                let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
            } else {
                // Every slot is busy: wait for one to free up.
                let _ = tokio::time::timeout(IDLE_POLL, slots.acquire()).await;
            }
        }
    }

    /// Runs the jobs the feed announces, claiming each in the database first.
    async fn take_from_feed(
        self: Arc<Self>,
        feed: Arc<dyn JobFeed>,
        handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>,
        slots: Arc<Semaphore>,
    ) {
        while let Some(fed) = feed.next().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (queue, handlers) = (self.clone(), handlers.clone());
            tokio::spawn(async move {
                let lease = queue.settings.lease.as_millis() as i64;
                let settle = match queue.store.claim_job(&fed.job_id, now_ms(), lease).await {
                    Ok(JobClaim::Claimed(job)) => match queue.run(&handlers, job).await {
                        Some((JobState::Queued, run_at)) => Settle::Later(until(run_at)),
                        _ => Settle::Done,
                    },
                    Ok(JobClaim::NotDue(run_at)) => Settle::Later(until(run_at)),
                    Ok(JobClaim::Unavailable) => Settle::Done,
                    Err(error) => {
                        tracing::warn!(job = %fed.job_id, %error, "could not claim an announced job");
                        Settle::Later(Duration::from_secs(1))
                    }
                };
                drop(permit);
                let _ = fed.settle.send(settle);
            });
        }
        tracing::warn!("the job feed ended; jobs are found by polling the database");
    }

    /// Runs one attempt and records it; returns the state and next run time it recorded.
    async fn run(&self, handlers: &HashMap<String, Arc<dyn JobHandler>>, job: Job) -> Option<(JobState, i64)> {
        let outcome = match handlers.get(&job.kind) {
            Some(handler) => handler.run(&job).await,
            None => JobOutcome::Fail(serde_json::json!({"detail": format!("no handler for job kind {}", job.kind)})),
        };
        let now = now_ms();
        let (state, result, error, run_at) = match &outcome {
            JobOutcome::Succeeded(result) => (JobState::Succeeded, Some(result.to_string()), None, now),
            JobOutcome::Retry(error) if job.attempts < job.max_attempts => {
                let wait = self.backoff(job.attempts).as_millis() as i64;
                (JobState::Queued, None, Some(error.to_string()), now + wait)
            }
            JobOutcome::Retry(error) => (JobState::Dead, None, Some(error.to_string()), now),
            JobOutcome::Fail(error) => (JobState::Failed, None, Some(error.to_string()), now),
        };
        match self
            .store
            .finish_job(
                &job.id,
                job.attempts,
                state,
                result.as_deref(),
                error.as_deref(),
                run_at,
                now,
            )
            .await
        {
            Ok(true) => {
                tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, state = state.as_str(), "job attempt finished");
                Some((state, run_at))
            }
            Ok(false) => {
                tracing::warn!(job = %job.id, attempt = job.attempts, "job attempt finished after its lease ran out; its outcome is dropped");
                None
            }
            // The lease runs out and the job is claimed again: at least once.
            Err(error) => {
                tracing::warn!(job = %job.id, %error, "could not record a job's outcome");
                None
            }
        }
    }
}

/// The wait from now until `at` (unix milliseconds), zero when it has passed.
fn until(at: i64) -> Duration {
    Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64)
}

fn backoff(settings: &JobSettings, attempt: i64) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let wait = settings
        .backoff_base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(settings.backoff_cap);
    wait.mul_f64(0.8 + 0.4 * unit_random())
}

/// `job_` + milliseconds (12 hex digits) + 80 random bits: unguessable, listed in creation order.
fn new_job_id() -> String {
    let mut random = [0u8; 10];
    if SystemRandom::new().fill(&mut random).is_err() {
        static FALLBACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = FALLBACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        random[..8].copy_from_slice(&n.to_be_bytes());
    }
    format!(
        "job_{:012x}{}",
        (now_ms() as u64) & 0xffff_ffff_ffff,
        hex::encode(random)
    )
}

fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Now, unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
