//! The SQLite webhook writer thread: drains the group-commit queue, one transaction per batch,
//! on a connection of its own (WAL, synchronous FULL: a batch is durable when its commit returns).
//! The event pipeline's writes (webhooks taken out of the backlog, their events) ride in the same
//! transactions: SQLite has one writer, and sharing it through a lock cost ingest most of its rate.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, Mutex};

use crate::batch::{answer_batch, EventRow, Pending, ProcessedBatch, TenantAppend, WriterJob, WriterTask, MAX_BATCH};
use crate::sqlite_checkpointer::{COMMITS_PER_CHECKPOINT, WRITER_CHECKPOINT_PAGES};
use crate::webhook_deliveries::NewWebhookDelivery;
use crate::StoreError;

/// Runs until every sender (every clone of the store) is gone.
pub(crate) fn run(
    path: &Path,
    writer: Option<Arc<Mutex<()>>>,
    mut queue: mpsc::Receiver<WriterJob>,
    commits: Arc<AtomicU64>,
) {
    let mut connection = match open(path) {
        Ok(connection) => connection,
        Err(error) => {
            tracing::error!(%error, "the webhook writer cannot open the database");
            while let Some(job) = queue.blocking_recv() {
                match job {
                    WriterJob::Insert(pending) => drop(pending.reply.send(Err(StoreError::Unavailable))),
                    WriterJob::Processed(batch) => drop(batch.reply.send(Err(StoreError::Unavailable))),
                    WriterJob::Append(append) => drop(append.reply.send(Err(StoreError::Unavailable))),
                    WriterJob::Task(task) => task.finish(Err(StoreError::Unavailable)),
                }
            }
            return;
        }
    };
    let checkpoints = crate::sqlite_checkpointer::start(path);
    let mut inserts: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut processed: Vec<ProcessedBatch> = Vec::new();
    let mut appends: Vec<TenantAppend> = Vec::new();
    let mut tasks: Vec<Box<dyn WriterTask>> = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                WriterJob::Insert(pending) => inserts.push(pending),
                WriterJob::Processed(batch) => processed.push(batch),
                WriterJob::Append(append) => appends.push(append),
                WriterJob::Task(task) => tasks.push(task),
            }
            if inserts.len() + appends.len() + tasks.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        let _turn = writer.as_ref().map(|lock| lock.blocking_lock());
        let events: Vec<&NewWebhookDelivery> = inserts.iter().map(|p| &p.event).collect();
        let batches: Vec<&[(String, Vec<EventRow>)]> = processed.iter().map(|b| b.processed.as_slice()).collect();
        tracing::trace!(inserts = events.len(), processed = batches.len(), "writer batch");
        let emitted: Vec<&EventRow> = appends.iter().map(|a| &a.event).collect();
        let written = write_batch(&mut connection, &events, &batches, &emitted, &mut tasks);
        let committed = commits.fetch_add(1, Ordering::Relaxed) + 1;
        if committed.is_multiple_of(COMMITS_PER_CHECKPOINT) {
            if let Some(checkpoints) = &checkpoints {
                checkpoints.request();
            }
        }
        let (inserted, recorded, appended) = match written {
            Ok(Written {
                inserted,
                recorded,
                appended,
            }) => (Ok(inserted), Some(recorded), Some(appended)),
            Err(error) => (Err(StoreError::from(error)), None, None),
        };
        match appended {
            Some(outcomes) => {
                for (append, outcome) in appends.drain(..).zip(outcomes) {
                    let _ = append.reply.send(Ok(outcome));
                }
            }
            None => {
                for append in appends.drain(..) {
                    let outcome = write_all(&mut connection, &[], &[], &[&append.event])
                        .map_err(StoreError::from)
                        .and_then(|mut written| written.appended.pop().ok_or(StoreError::Unavailable));
                    let _ = append.reply.send(outcome);
                }
            }
        }
        // A failed transaction is retried in parts: each insert alone, each processed batch alone.
        for pending in answer_batch(&mut inserts, inserted) {
            let outcome = write_all(&mut connection, &[&pending.event], &[], &[])
                .map_err(StoreError::from)
                .and_then(|mut written| written.inserted.pop().ok_or(StoreError::Unavailable));
            let _ = pending.reply.send(outcome);
        }
        match recorded {
            Some(counts) => {
                for (batch, count) in processed.drain(..).zip(counts) {
                    let _ = batch.reply.send(Ok(count));
                }
            }
            None => {
                for batch in processed.drain(..) {
                    let outcome = write_all(&mut connection, &[], &[batch.processed.as_slice()], &[])
                        .map_err(StoreError::from)
                        .map(|written| written.recorded.first().copied().unwrap_or(0));
                    let _ = batch.reply.send(outcome);
                }
            }
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // The checkpoint thread copies the log as it grows; this connection only finishes the job.
    connection.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
    // Ingest's statements and the bookkeeping tasks' fixed ones all stay prepared (the default
    // holds 16).
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// What one transaction wrote.
#[derive(Default)]
struct Written {
    /// Each webhook insert's stored id and whether it was a duplicate, in order.
    inserted: Vec<(String, bool)>,
    /// How many webhooks of each processed batch this transaction took out of the backlog (one
    /// another replica took first is skipped).
    recorded: Vec<usize>,
    /// Each tenant event's id and whether its idempotency key had been used, in order.
    appended: Vec<(String, bool)>,
}

/// One transaction for everything queued: webhook inserts, processed webhooks with their events,
/// tenant events, and bookkeeping tasks. Each task runs in a savepoint of its own and is answered
/// here: its own failure undoes only its writes, and a failure of the ingest part (answered by
/// the caller, which retries it in parts) does not undo the tasks.
fn write_batch(
    connection: &mut Connection,
    events: &[&NewWebhookDelivery],
    processed: &[&[(String, Vec<EventRow>)]],
    emitted: &[&EventRow],
    tasks: &mut Vec<Box<dyn WriterTask>>,
) -> rusqlite::Result<Written> {
    if tasks.is_empty() {
        return write_all(connection, events, processed, emitted);
    }
    let tx = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            for task in tasks.drain(..) {
                task.finish(Err(StoreError::Unavailable));
            }
            return Err(error);
        }
    };
    let ingest = if events.is_empty() && processed.is_empty() && emitted.is_empty() {
        Ok(Written::default())
    } else {
        in_savepoint(&tx, |tx| write_ingest(tx, events, processed, emitted))
    };
    let mut finished = Vec::with_capacity(tasks.len());
    for mut task in tasks.drain(..) {
        // An error that ends the whole transaction (disk full, I/O) leaves no savepoint to roll
        // back to: a task run now would commit on its own, outside the batch. Not run.
        if tx.is_autocommit() {
            task.finish(Err(StoreError::Unavailable));
            continue;
        }
        match in_savepoint(&tx, |tx| task.run(tx)) {
            Ok(()) => finished.push(task),
            Err(error) => task.finish(Err(error)),
        }
    }
    let committed = tx.commit();
    for task in finished {
        task.finish(match &committed {
            Ok(()) => Ok(()),
            Err(error) => Err(StoreError::Sqlite(clone_error(error))),
        });
    }
    committed?;
    ingest
}

/// Runs `work` in a savepoint of the open transaction, rolled back to if it fails.
fn in_savepoint<T, E: From<rusqlite::Error>>(
    tx: &rusqlite::Transaction<'_>,
    work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    tx.execute_batch(sql::SAVEPOINT)?;
    match work(tx) {
        Ok(value) => match tx.execute_batch(sql::RELEASE) {
            Ok(()) => Ok(value),
            Err(error) => {
                // Not released: undone, so it cannot commit with the batch after all.
                let _ = undo(tx);
                Err(error.into())
            }
        },
        Err(error) => {
            undo(tx)?;
            Err(error)
        }
    }
}

/// Undoes the savepoint's writes and ends it.
fn undo(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(sql::ROLLBACK)?;
    tx.execute_batch(sql::RELEASE)
}

/// rusqlite's errors are not `Clone`; the failed commit's reason, for each task it failed.
fn clone_error(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => rusqlite::Error::ToSqlConversionFailure(other.to_string().into()),
    }
}

/// One transaction for the ingest part alone (no tasks): a batch without bookkeeping, or a
/// failed batch's parts retried one by one.
fn write_all(
    connection: &mut Connection,
    events: &[&NewWebhookDelivery],
    processed: &[&[(String, Vec<EventRow>)]],
    emitted: &[&EventRow],
) -> rusqlite::Result<Written> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let written = write_ingest(&tx, events, processed, emitted)?;
    tx.commit()?;
    Ok(written)
}

/// Webhook inserts, processed webhooks with their events, and tenant events, in the open
/// transaction.
fn write_ingest(
    tx: &rusqlite::Transaction<'_>,
    events: &[&NewWebhookDelivery],
    processed: &[&[(String, Vec<EventRow>)]],
    emitted: &[&EventRow],
) -> rusqlite::Result<Written> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut counts = Vec::with_capacity(processed.len());
    let mut appended = Vec::with_capacity(emitted.len());
    {
        let mut insert = cached(tx, sql::INSERT_WEBHOOK)?;
        let mut backlog = cached(tx, sql::INTO_BACKLOG)?;
        let mut existing = cached(tx, crate::webhook_deliveries::sql::EXISTING_WEBHOOK)?;
        for event in events {
            let inserted = insert.execute(params![
                event.id,
                event.tenant_id,
                event.plugin,
                event.delivery_id,
                event.event_type,
                event.payload,
                event.received_at
            ])?;
            if inserted > 0 {
                backlog.execute(params![event.id])?;
                outcomes.push((event.id.clone(), false));
            } else {
                // A delivery stored before (or earlier in this batch): report the stored event.
                let id: String = existing
                    .query_row(params![event.tenant_id, event.plugin, event.delivery_id], |row| {
                        row.get(0)
                    })?;
                outcomes.push((id, true));
            }
        }
        let mut take = cached(tx, sql::OUT_OF_BACKLOG)?;
        let mut append = cached(tx, crate::event_log::sql::INSERT_EVENT)?;
        let now = crate::now_unix();
        for batch in processed {
            let mut count = 0;
            for (webhook_id, normalized) in batch.iter() {
                if take.execute(params![webhook_id])? == 0 {
                    continue;
                }
                for event in normalized {
                    append_event(&mut append, event, now)?;
                }
                count += 1;
            }
            counts.push(count);
        }
        let mut idempotent = cached(tx, crate::event_log::sql::IDEMPOTENT_EVENT)?;
        for event in emitted {
            if let Some(key) = &event.idempotency_key {
                let earlier: Option<String> = idempotent
                    .query_row(params![event.tenant_id, key], |row| row.get(0))
                    .optional()?;
                if let Some(id) = earlier {
                    appended.push((id, true));
                    continue;
                }
            }
            append_event(&mut append, event, now)?;
            appended.push((event.id.clone(), false));
        }
    }
    Ok(Written {
        inserted: outcomes,
        recorded: counts,
        appended,
    })
}

/// The writer's cached statement for `sql`. rusqlite binds parameters by position, sqlx (the
/// same texts on PostgreSQL) by their number: in debug builds each parameter is checked to be
/// the one its position names (`$1` first, then `$2`, …).
pub(crate) fn cached<'c>(connection: &'c Connection, sql: &str) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let statement = connection.prepare_cached(sql)?;
    #[cfg(debug_assertions)]
    for index in 1..=statement.parameter_count() {
        let name = statement.parameter_name(index);
        debug_assert!(
            name.is_none_or(|name| name[1..] == index.to_string()),
            "parameter {index} of {sql:?} is {name:?}"
        );
    }
    Ok(statement)
}

/// Appends one event with the writer's prepared statement.
fn append_event(statement: &mut rusqlite::CachedStatement<'_>, event: &EventRow, now: i64) -> rusqlite::Result<()> {
    statement.execute(params![
        event.id,
        event.tenant_id,
        event.plugin,
        event.event_type,
        event.occurred_at,
        event.data,
        event.idempotency_key,
        now,
        event.webhook_id
    ])?;
    Ok(())
}

/// The writer's own statements (its event appends are the log's, `event_log::sql`).
pub(crate) mod sql {
    statements! {
        /// A webhook, unless its delivery was stored before.
        INSERT_WEBHOOK = "INSERT INTO webhook_events (id, tenant_id, plugin, delivery_id, event_type, payload, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant_id, plugin, delivery_id) DO NOTHING";
        /// A new webhook into the backlog.
        INTO_BACKLOG = "INSERT INTO webhook_backlog (id) VALUES (?1)";
        /// A processed webhook out of the backlog.
        OUT_OF_BACKLOG = "DELETE FROM webhook_backlog WHERE id = ?1";
        /// Opens the savepoint a part of a batch runs in.
        SAVEPOINT = "SAVEPOINT part";
        /// Keeps a part's writes.
        RELEASE = "RELEASE part";
        /// Undoes a part's writes (then released).
        ROLLBACK = "ROLLBACK TO part";
    }
}
