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
//! switches) cost more than the inserts. On PostgreSQL a few tasks each send a batch as a few
//! multi-row statements (`postgres_writer`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::batch::{Inserted, Pending};
use crate::postgres_writer::{write_batches, SERVER_WRITERS};
use crate::webhook_event::NewWebhookEvent;
use crate::StoreError;

/// Queued events beyond this make callers wait to queue (back-pressure, bounded memory).
const QUEUE_CAPACITY: usize = 4096;

/// The queue in front of the writer task.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    commits: std::sync::Arc<AtomicU64>,
}

impl GroupCommit {
    /// Starts the writer: a thread with its own connection for a SQLite file, else a task on the
    /// current runtime. `writer` is SQLite's single-writer turn, shared with the store's other writes.
    pub(crate) fn start(
        pool: AnyPool,
        sqlite_file: Option<PathBuf>,
        writer: Option<std::sync::Arc<Mutex<()>>>,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let commits = std::sync::Arc::new(AtomicU64::new(0));
        match sqlite_file {
            Some(path) => {
                let counter = commits.clone();
                let spawned = std::thread::Builder::new()
                    .name("webhook-writer".into())
                    .spawn(move || crate::sqlite_writer::run(&path, writer, receiver, counter));
                if let Err(error) = spawned {
                    // Callers then get `Unavailable` as their queue closes.
                    tracing::error!(%error, "cannot start the webhook writer thread");
                }
            }
            None => {
                // A server database commits several transactions at once (and groups their
                // fsyncs itself), so a few writers keep it busy while each waits for a round trip.
                let receiver = std::sync::Arc::new(Mutex::new(receiver));
                let writers = if writer.is_some() { 1 } else { SERVER_WRITERS };
                for _ in 0..writers {
                    tokio::spawn(write_batches(
                        pool.clone(),
                        writer.clone(),
                        receiver.clone(),
                        commits.clone(),
                    ));
                }
            }
        }
        Self { queue, commits }
    }

    /// Transactions committed so far.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues an event and waits until its batch is committed.
    pub(crate) async fn insert(&self, event: NewWebhookEvent) -> Inserted {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Pending { event, reply })
            .await
            .map_err(|_| StoreError::Unavailable)?;
        outcome.await.map_err(|_| StoreError::Unavailable)?
    }
}
