//! Group commit of webhook events: concurrent inserts share one transaction, so one fsync makes
//! many events durable. Each caller still learns its own outcome only after the commit.
//!
//! A writer drains whatever has queued while its previous batch was committing; under
//! light load a batch is one event and nothing waits, under heavy load batches grow by themselves.
//! A caller that goes away after queueing (a client that disconnected) does not cancel its
//! insert: what was queued is committed, and a retried delivery is then found as a duplicate.
//!
//! On SQLite the writer is a thread of its own with a direct connection: sqlx hands every
//! statement to a connection thread and back, and on this hot path those hand-offs (context
//! switches) cost more than the inserts. On PostgreSQL a few tasks each send a batch as one
//! statement of arrays (`postgres_writer`).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::batch::{EventRow, Inserted, Pending, ProcessedBatch, Task, TenantAppend, WriterJob};
use crate::event_log::NewEvent;
use crate::postgres_writer::{write_batches, SERVER_WRITERS};
use crate::webhook_deliveries::NewWebhookDelivery;
use crate::StoreError;

/// Queued events beyond this make callers wait to queue (back-pressure, bounded memory).
const QUEUE_CAPACITY: usize = 4096;

/// Where the webhook writer writes.
#[derive(Clone)]
pub(crate) enum Target {
    /// A SQLite file, written by a thread with its own connection; `turn` is SQLite's
    /// single-writer turn, shared with the store's other writes.
    Sqlite {
        file: PathBuf,
        turn: Option<std::sync::Arc<Mutex<()>>>,
    },
    /// A PostgreSQL server, through a pool of the native driver of its own: a batch is bound as
    /// arrays, which sqlx's `Any` driver cannot bind.
    Postgres(PgPool),
}

impl Target {
    /// The writers' pool for the PostgreSQL server `url` names, connecting on first use.
    pub(crate) fn postgres(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(SERVER_WRITERS as u32)
            .connect_lazy_with(PgConnectOptions::from_str(url)?);
        Ok(Self::Postgres(pool))
    }
}

/// The queue in front of the writer task.
pub(crate) struct GroupCommit {
    queue: Queue,
    commits: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("commits", &self.commits()).finish()
    }
}

/// The SQLite writer thread takes processed webhooks too; PostgreSQL's writers take inserts only.
enum Queue {
    Sqlite(mpsc::Sender<WriterJob>),
    Postgres(mpsc::Sender<Pending>),
}

impl GroupCommit {
    /// Starts the writer: a thread with its own connection for a SQLite file, else tasks on the
    /// current runtime.
    pub(crate) fn start(target: Target) -> Self {
        let commits = std::sync::Arc::new(AtomicU64::new(0));
        let queue = match target {
            Target::Sqlite { file, turn } => {
                let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
                let counter = commits.clone();
                let spawned = std::thread::Builder::new()
                    .name("webhook-writer".into())
                    .spawn(move || crate::sqlite_writer::run(&file, turn, receiver, counter));
                if let Err(error) = spawned {
                    // Callers then get `Unavailable` as their queue closes.
                    tracing::error!(%error, "cannot start the webhook writer thread");
                }
                Queue::Sqlite(queue)
            }
            Target::Postgres(pool) => {
                let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
                // A server database commits several transactions at once (and groups their
                // fsyncs itself), so a few writers keep it busy while each waits for a round trip.
                let receiver = std::sync::Arc::new(Mutex::new(receiver));
                for _ in 0..SERVER_WRITERS {
                    tokio::spawn(write_batches(pool.clone(), receiver.clone(), commits.clone()));
                }
                Queue::Postgres(queue)
            }
        };
        Self { queue, commits }
    }

    /// Transactions committed so far.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues an event and waits until its batch is committed.
    pub(crate) async fn insert(&self, event: NewWebhookDelivery) -> Inserted {
        let (reply, outcome) = oneshot::channel();
        let pending = Pending { event, reply };
        let sent = match &self.queue {
            Queue::Sqlite(queue) => queue.send(WriterJob::Insert(pending)).await.is_ok(),
            Queue::Postgres(queue) => queue.send(pending).await.is_ok(),
        };
        if !sent {
            return Err(StoreError::Unavailable);
        }
        outcome.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Appends a tenant's event through the SQLite writer thread (group-committed); `None` on
    /// PostgreSQL (the caller appends it itself).
    pub(crate) async fn append_tenant_event(&self, event: NewEvent) -> Option<Inserted> {
        // Checked before the event is serialized for the writer.
        if !self.has_writer_thread() {
            return None;
        }
        let event = event.into();
        self.submit(|reply| WriterJob::Append(TenantAppend { event, reply }))
            .await
    }

    /// Hands processed webhooks to the SQLite writer thread; `None` on PostgreSQL (the caller
    /// writes them itself).
    pub(crate) async fn record_processed(
        &self,
        processed: Vec<(String, Vec<NewEvent>)>,
    ) -> Option<Result<usize, StoreError>> {
        if !self.has_writer_thread() {
            return None;
        }
        let processed = processed
            .into_iter()
            .map(|(webhook, events)| (webhook, events.into_iter().map(EventRow::from).collect()))
            .collect();
        self.submit(|reply| WriterJob::Processed(ProcessedBatch { processed, reply }))
            .await
    }

    /// Runs `work` on the SQLite writer thread, in the transaction of its next batch, and returns
    /// its result once that has committed; `None` on PostgreSQL (the caller does the work itself).
    pub(crate) async fn run_on_writer<T, F>(&self, work: F) -> Option<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnMut(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(|reply| WriterJob::Task(Box::new(Task::new(work, reply))))
            .await
    }

    fn has_writer_thread(&self) -> bool {
        matches!(self.queue, Queue::Sqlite(_))
    }

    /// Queues the job `make` builds around its reply channel for the SQLite writer thread and
    /// waits for the answer; `None` on PostgreSQL.
    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriterJob,
    ) -> Option<Result<T, StoreError>> {
        let Queue::Sqlite(queue) = &self.queue else {
            return None;
        };
        let (reply, outcome) = oneshot::channel();
        if queue.send(make(reply)).await.is_err() {
            return Some(Err(StoreError::Unavailable));
        }
        Some(outcome.await.unwrap_or(Err(StoreError::Unavailable)))
    }
}
