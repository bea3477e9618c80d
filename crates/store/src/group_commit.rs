//! Group commit of webhook events: concurrent inserts share one transaction, so one fsync makes
//! many events durable. Each caller still learns its own outcome only after the commit.
//!
//! One writer task drains whatever has queued while the previous batch was committing; under
//! light load a batch is one event and nothing waits, under heavy load batches grow by themselves.
//! A caller that goes away after queueing (a client that disconnected) does not cancel its
//! insert: what was queued is committed, and a retried delivery is then found as a duplicate.
//!
//! On SQLite the writer is a thread of its own with a direct connection: sqlx hands every
//! statement to a connection thread and back, and on this hot path those hand-offs (context
//! switches) cost more than the inserts. On PostgreSQL it is a task that sends each batch as a
//! few multi-row statements.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::events::NewWebhookEvent;
use crate::StoreError;

/// Most events in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Concurrent writer tasks on PostgreSQL.
const SERVER_WRITERS: usize = 4;
/// Queued events beyond this make callers wait to queue (back-pressure, bounded memory).
const QUEUE_CAPACITY: usize = 4096;

/// The outcome of one insert: the stored event's id and whether the delivery was a duplicate.
pub(crate) type Inserted = Result<(String, bool), StoreError>;

pub(crate) struct Pending {
    pub(crate) event: NewWebhookEvent,
    pub(crate) reply: oneshot::Sender<Inserted>,
}

/// The queue in front of the writer task.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    commits: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("id", &self.event.id).finish()
    }
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

async fn write_batches(
    pool: AnyPool,
    writer: Option<std::sync::Arc<Mutex<()>>>,
    queue: std::sync::Arc<Mutex<mpsc::Receiver<Pending>>>,
    commits: std::sync::Arc<AtomicU64>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    // The queue is held only while taking a batch, so the next writer can take the next one.
    while queue.lock().await.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let _turn = match &writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let events: Vec<&NewWebhookEvent> = batch.iter().map(|p| &p.event).collect();
        let written = insert_all(&pool, &events).await;
        commits.fetch_add(1, Ordering::Relaxed);
        match written {
            Ok(outcomes) => {
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = pending.reply.send(Ok(outcome));
                }
            }
            // One bad event (its tenant deleted meanwhile, say) must not fail its neighbours:
            // each goes again in a transaction of its own.
            Err(error) => {
                tracing::debug!(%error, size = batch.len(), "batch failed; inserting one by one");
                for pending in batch.drain(..) {
                    let outcome = insert_all(&pool, &[&pending.event])
                        .await
                        .and_then(|mut outcomes| outcomes.pop().ok_or(StoreError::Unavailable));
                    let _ = pending.reply.send(outcome);
                }
            }
        }
    }
}

/// Inserts events in one transaction; for each, our id and whether its delivery was stored before.
async fn insert_all(pool: &AnyPool, events: &[&NewWebhookEvent]) -> Result<Vec<(String, bool)>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut inserted: HashSet<String> = HashSet::with_capacity(events.len());
    // Multi-row statements in power-of-two sizes: one round trip per chunk instead of per event,
    // and few distinct statements for the prepared-statement cache.
    let mut rest = events;
    while !rest.is_empty() {
        let size = 1usize << rest.len().ilog2();
        let (chunk, tail) = rest.split_at(size);
        let mut query = sqlx::query(insert_statement(size));
        for event in chunk {
            query = query
                .bind(&event.id)
                .bind(&event.tenant_id)
                .bind(&event.plugin)
                .bind(&event.delivery_id)
                .bind(event.event_type.clone())
                .bind(&event.payload)
                .bind(event.received_at);
        }
        for row in query.fetch_all(&mut *tx).await? {
            inserted.insert(row.get(0));
        }
        rest = tail;
    }
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        if inserted.contains(&event.id) {
            outcomes.push((event.id.clone(), false));
            continue;
        }
        // A delivery stored before (or earlier in this batch): report the stored event.
        let existing: String =
            sqlx::query("SELECT id FROM webhook_events WHERE tenant_id = $1 AND plugin = $2 AND delivery_id = $3")
                .bind(&event.tenant_id)
                .bind(&event.plugin)
                .bind(&event.delivery_id)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
        outcomes.push((existing, true));
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// `INSERT … VALUES (…), (…) … ON CONFLICT DO NOTHING RETURNING id` for `rows` rows, built once
/// per size.
fn insert_statement(rows: usize) -> &'static str {
    static STATEMENTS: OnceLock<Vec<String>> = OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        (0..=MAX_BATCH.ilog2())
            .map(|power| {
                let values: Vec<String> = (0..1usize << power)
                    .map(|row| {
                        let first = row * 7;
                        let params: Vec<String> = (1..=7).map(|column| format!("${}", first + column)).collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!(
                    "INSERT INTO webhook_events (id, tenant_id, plugin, delivery_id, event_type, payload, received_at) \
                     VALUES {} ON CONFLICT (tenant_id, plugin, delivery_id) DO NOTHING RETURNING id",
                    values.join(", ")
                )
            })
            .collect()
    });
    &statements[rows.ilog2() as usize]
}
