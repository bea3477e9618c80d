//! The SQLite webhook writer thread: drains the group-commit queue, one transaction per batch,
//! on a connection of its own (WAL, synchronous FULL: a batch is durable when its commit returns).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::{mpsc, Mutex};

use crate::batch::{answer_batch, Pending, MAX_BATCH};
use crate::webhook_event::NewWebhookEvent;
use crate::StoreError;

const INSERT: &str =
    "INSERT INTO webhook_events (id, tenant_id, plugin, delivery_id, event_type, payload, received_at) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant_id, plugin, delivery_id) DO NOTHING";
const EXISTING: &str = "SELECT id FROM webhook_events WHERE tenant_id = ?1 AND plugin = ?2 AND delivery_id = ?3";

/// Runs until every sender (every clone of the store) is gone.
pub(crate) fn run(
    path: &Path,
    writer: Option<Arc<Mutex<()>>>,
    mut queue: mpsc::Receiver<Pending>,
    commits: Arc<AtomicU64>,
) {
    let mut connection = match open(path) {
        Ok(connection) => connection,
        Err(error) => {
            tracing::error!(%error, "the webhook writer cannot open the database");
            while let Some(pending) = queue.blocking_recv() {
                let _ = pending.reply.send(Err(StoreError::Unavailable));
            }
            return;
        }
    };
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let _turn = writer.as_ref().map(|lock| lock.blocking_lock());
        let events: Vec<&NewWebhookEvent> = batch.iter().map(|p| &p.event).collect();
        tracing::trace!(size = events.len(), "webhook batch");
        let written = insert_all(&mut connection, &events);
        commits.fetch_add(1, Ordering::Relaxed);
        for pending in answer_batch(&mut batch, written.map_err(StoreError::from)) {
            let outcome = insert_all(&mut connection, &[&pending.event])
                .map_err(StoreError::from)
                .and_then(|mut outcomes| outcomes.pop().ok_or(StoreError::Unavailable));
            let _ = pending.reply.send(outcome);
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

fn insert_all(connection: &mut Connection, events: &[&NewWebhookEvent]) -> rusqlite::Result<Vec<(String, bool)>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        let mut existing = tx.prepare_cached(EXISTING)?;
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
    }
    tx.commit()?;
    Ok(outcomes)
}
