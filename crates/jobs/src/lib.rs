//! The durable job queue (what Celery did in the original design).
//!
//! Jobs live in the database: enqueued in a row (within the tenant's limit of queued jobs),
//! claimed with a lease, run at least once, retried with exponential backoff and jitter, dead
//! after their last allowed attempt, and removed a retention period after they end. A job whose
//! worker died is claimed again when its lease runs out; the attempt number fences the old run's
//! late finish. Leases outlast the longest run a handler allows (a tool call's deadline), so two
//! runs of one job never overlap.
//!
//! Claims are fair across tenants, and the database decides them, on every replica alike: round
//! robin between tenants, and at most [`JobSettings::max_running_per_tenant`] of one tenant's jobs
//! running at once, so one tenant's backlog of slow jobs keeps another tenant's job waiting for one
//! free worker at most. A message queue (the [`JobFeed`]) only wakes workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// With a feed, which wakes the worker for new jobs and for retries as they come due, how long
/// an idle worker waits before looking anyway (for jobs whose worker died, lost announcements).
const FEED_POLL: Duration = Duration::from_secs(5);

/// Finished jobs removed per statement by the retention sweep.
const SWEEP_BATCH: i64 = 500;

/// A message queue that announces runnable jobs to the workers of every replica (NATS JetStream),
/// so they need not poll the database often. An announcement only wakes a worker: the worker's
/// claim in the database decides which jobs run, fairly across tenants, and a job announced twice
/// still runs once at a time.
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
    /// Nothing more to do for it (a worker was woken for it, or it is done or held elsewhere).
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
    /// Jobs of one tenant running at once across every replica: the most of the workers one
    /// tenant's backlog can hold while other tenants' jobs wait.
    pub max_running_per_tenant: usize,
    /// How long a job that ended (succeeded, failed or dead) is kept before it is removed.
    pub retention: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(600),
            lease: Duration::from_secs(120),
            concurrency: 16,
            max_running_per_tenant: 4,
            retention: Duration::from_secs(7 * 24 * 3600),
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

/// Why a job was not enqueued.
#[derive(Debug)]
pub enum EnqueueError {
    /// The tenant already has this many jobs queued or running, the most it may have.
    TooManyQueued {
        /// The tenant's limit.
        limit: u32,
    },
    /// Storage failed.
    Store(StoreError),
}

impl std::fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooManyQueued { limit } => write!(f, "the tenant already has {limit} jobs queued or running"),
            Self::Store(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for EnqueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooManyQueued { .. } => None,
            Self::Store(error) => Some(error),
        }
    }
}

impl From<StoreError> for EnqueueError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// The queue of this process.
pub struct JobQueue {
    store: Store,
    settings: JobSettings,
    wake: Notify,
    feed: OnceLock<Arc<dyn JobFeed>>,
    /// Whether the feed is taking announcements (it wakes the worker, which then polls rarely).
    fed: AtomicBool,
}

impl JobQueue {
    /// A queue over `store`'s jobs table.
    pub fn new(store: Store, settings: JobSettings) -> Arc<Self> {
        Arc::new(Self {
            store,
            settings,
            wake: Notify::new(),
            feed: OnceLock::new(),
            fed: AtomicBool::new(false),
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

    /// Adds a job of `kind` for `tenant`, whatever the tenant has queued; returns its id.
    pub async fn enqueue(&self, tenant: &str, kind: &str, payload: &Value) -> Result<String, EnqueueError> {
        self.enqueue_within(tenant, kind, payload, u32::MAX).await
    }

    /// Adds a job of `kind` for `tenant` unless the tenant already has `max_queued` jobs queued or
    /// running; returns its id.
    pub async fn enqueue_within(
        &self,
        tenant: &str,
        kind: &str,
        payload: &Value,
        max_queued: u32,
    ) -> Result<String, EnqueueError> {
        let job = NewJob {
            id: new_job_id(),
            tenant_id: tenant.to_owned(),
            kind: kind.to_owned(),
            payload: payload.to_string(),
            max_attempts: self.settings.max_attempts,
        };
        if !self.store.enqueue_job(&job, now_ms(), max_queued).await? {
            return Err(EnqueueError::TooManyQueued { limit: max_queued });
        }
        self.wake.notify_one();
        self.announce(&job.id).await;
        Ok(job.id)
    }

    /// Queues a dead or failed job again, unless the tenant already has `max_queued` jobs queued
    /// or running; false when it is neither dead nor failed (or not the tenant's), or at the limit.
    pub async fn retry(&self, tenant: &str, id: &str, max_queued: u32) -> Result<bool, StoreError> {
        let retried = self.store.retry_job(tenant, id, now_ms(), max_queued).await?;
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

    /// Starts the worker with a handler per job kind, the feed's listener and the retention
    /// sweep; abort the handle to stop them all.
    pub fn spawn(self: &Arc<Self>, handlers: HashMap<String, Arc<dyn JobHandler>>) -> JoinHandle<()> {
        let queue = self.clone();
        let handlers = Arc::new(handlers);
        tokio::spawn(async move {
            let listen = async {
                if let Some(feed) = queue.feed.get() {
                    queue.take_from_feed(feed.clone()).await;
                }
            };
            tokio::join!(queue.clone().work(handlers), listen, queue.sweep());
        })
    }

    async fn work(self: Arc<Self>, handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let lease = self.settings.lease.as_millis() as i64;
        let per_tenant = self.settings.max_running_per_tenant.max(1) as i64;
        loop {
            let free = slots.available_permits() as i64;
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self.store.claim_jobs(now_ms(), lease, free, per_tenant).await {
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
                    // A slot is free, and the tenant has one job fewer running.
                    queue.wake.notify_one();
                    if let Some((JobState::Queued, _)) = recorded {
                        // A retry: the feed redelivers it when it is due.
                        queue.announce(&job.id).await;
                    }
                });
            }
            let poll = if self.fed.load(Ordering::Relaxed) {
                FEED_POLL
            } else {
                IDLE_POLL
            };
            if !full_batch {
                let _ = tokio::time::timeout(poll, self.wake.notified()).await;
            } else {
                // Every slot is busy: wait for one to free up.
                let _ = tokio::time::timeout(poll, slots.acquire()).await;
            }
        }
    }

    /// Wakes the worker for each job the feed announces that a claim may take now; a job not due
    /// yet is announced again when it is.
    async fn take_from_feed(&self, feed: Arc<dyn JobFeed>) {
        self.fed.store(true, Ordering::Relaxed);
        while let Some(fed) = feed.next().await {
            let settle = match self.store.job_claim(&fed.job_id, now_ms()).await {
                Ok(JobClaim::Due) => {
                    self.wake.notify_one();
                    Settle::Done
                }
                Ok(JobClaim::NotDue(run_at)) => Settle::Later(until(run_at)),
                Ok(JobClaim::Unavailable) => Settle::Done,
                Err(error) => {
                    tracing::warn!(job = %fed.job_id, %error, "could not look up an announced job");
                    Settle::Later(Duration::from_secs(1))
                }
            };
            let _ = fed.settle.send(settle);
        }
        self.fed.store(false, Ordering::Relaxed);
        tracing::warn!("the job feed ended; jobs are found by polling the database");
    }

    /// Removes jobs that ended longer ago than the retention, in batches, every tenth of the
    /// retention (between a second and ten minutes).
    async fn sweep(&self) {
        let retention = self.settings.retention;
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        loop {
            tokio::time::sleep(every).await;
            let before = now_ms().saturating_sub(retention.as_millis() as i64);
            let mut removed = 0u64;
            loop {
                match self.store.expire_jobs(before, SWEEP_BATCH).await {
                    Ok(deleted) => {
                        removed += deleted;
                        if deleted < SWEEP_BATCH as u64 {
                            break;
                        }
                        // Other writers take their turn between batches.
                        tokio::task::yield_now().await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "job retention failed");
                        break;
                    }
                }
            }
            if removed > 0 {
                tracing::info!(removed, "removed jobs past their retention");
            }
        }
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
