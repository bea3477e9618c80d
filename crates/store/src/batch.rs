//! One batch of queued webhook inserts and how its callers are answered.

use tokio::sync::oneshot;

use crate::event_log::NewEvent;
use crate::webhook_deliveries::NewWebhookDelivery;
use crate::StoreError;

/// Most events in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// The outcome of one insert: the stored event's id and whether the delivery was a duplicate.
pub(crate) type Inserted = Result<(String, bool), StoreError>;

/// An insert waiting in the queue, with the caller to answer.
pub(crate) struct Pending {
    pub(crate) event: NewWebhookDelivery,
    pub(crate) reply: oneshot::Sender<Inserted>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("id", &self.event.id).finish()
    }
}

/// Answers every caller of a committed batch. A failed batch is handed back to be inserted one
/// event per transaction: one bad event (its tenant deleted meanwhile, say) must not fail its
/// neighbours.
pub(crate) fn answer_batch(batch: &mut Vec<Pending>, written: Result<Vec<(String, bool)>, StoreError>) -> Vec<Pending> {
    match written {
        Ok(outcomes) => {
            for (pending, outcome) in batch.drain(..).zip(outcomes) {
                let _ = pending.reply.send(Ok(outcome));
            }
            Vec::new()
        }
        Err(error) => {
            tracing::debug!(%error, size = batch.len(), "batch failed; inserting one by one");
            std::mem::take(batch)
        }
    }
}

/// Stored webhooks turned into events, to be recorded by the SQLite writer in the transaction of
/// its next batch (one writer, one fsync for both).
pub(crate) struct ProcessedBatch {
    pub(crate) processed: Vec<(String, Vec<EventRow>)>,
    pub(crate) reply: oneshot::Sender<Result<usize, StoreError>>,
}

/// An event a tenant emits, to append in the writer's next transaction.
pub(crate) struct TenantAppend {
    pub(crate) event: EventRow,
    pub(crate) reply: oneshot::Sender<Inserted>,
}

/// An event as the SQLite writer inserts it: its data already serialized, by the task that
/// queued it, so the one writer thread spends its time on the database alone.
pub(crate) struct EventRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) plugin: Option<String>,
    pub(crate) event_type: String,
    pub(crate) occurred_at: i64,
    pub(crate) data: String,
    /// The webhook whose body is the data (then `data` is empty).
    pub(crate) webhook_id: Option<String>,
    pub(crate) idempotency_key: Option<String>,
}

impl From<NewEvent> for EventRow {
    fn from(event: NewEvent) -> Self {
        let (data, webhook_id) = event.data.columns();
        let webhook_id = webhook_id.map(str::to_owned);
        Self {
            data,
            webhook_id,
            id: event.id,
            tenant_id: event.tenant_id,
            plugin: event.plugin,
            event_type: event.event_type,
            occurred_at: event.occurred_at,
            idempotency_key: event.idempotency_key,
        }
    }
}

/// What the SQLite writer thread is asked to write.
pub(crate) enum WriterJob {
    /// A webhook to insert.
    Insert(Pending),
    /// Webhooks to take out of the backlog, with their events.
    Processed(ProcessedBatch),
    /// A tenant's event to append (idempotency key honoured).
    Append(TenantAppend),
    /// Bookkeeping to run in the next transaction.
    Task(Box<dyn WriterTask>),
}

/// Work run on the SQLite writer thread inside its next transaction (in a savepoint of its own,
/// so its failure undoes only its own writes), answered once that transaction has committed.
/// The event pipeline's bookkeeping (fan-out, delivery claims, attempt records) goes this way:
/// through sqlx each statement is a round trip to a connection thread, and each transaction a
/// turn of SQLite's one writer taken from ingest.
pub(crate) trait WriterTask: Send {
    /// Does the work in the writer's open transaction.
    fn run(&mut self, connection: &rusqlite::Connection) -> Result<(), StoreError>;
    /// Answers the caller: the work's result once committed, or why it was not.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

/// A closure and the caller waiting for its result.
pub(crate) struct Task<T, F> {
    work: F,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Task<T, F> {
    pub(crate) fn new(work: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Self {
            work,
            result: None,
            reply,
        }
    }
}

impl<T, F> WriterTask for Task<T, F>
where
    T: Send,
    F: FnMut(&rusqlite::Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &rusqlite::Connection) -> Result<(), StoreError> {
        self.result = Some((self.work)(connection)?);
        Ok(())
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let Self { result, reply, .. } = *self;
        let _ = reply.send(committed.and_then(|()| result.ok_or(StoreError::Unavailable)));
    }
}
