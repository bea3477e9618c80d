//! The group-commit writer for a server database (PostgreSQL): tasks that take a batch each and
//! send it as a few multi-row statements in one transaction.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, Mutex};

use crate::batch::{answer_batch, Pending, MAX_BATCH};
use crate::multi_row::{power_of_two_chunks, row_placeholders, statement_for_rows};
use crate::webhook_event::NewWebhookEvent;
use crate::StoreError;

/// Concurrent writer tasks on PostgreSQL.
pub(crate) const SERVER_WRITERS: usize = 4;

/// Writes batches until the queue closes.
pub(crate) async fn write_batches(
    pool: AnyPool,
    writer: Option<Arc<Mutex<()>>>,
    queue: Arc<Mutex<mpsc::Receiver<Pending>>>,
    commits: Arc<AtomicU64>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    // The queue is held only while taking a batch, so the next writer can take the next one.
    while queue.lock().await.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let _turn = match &writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let events: Vec<&NewWebhookEvent> = batch.iter().map(|p| &p.event).collect();
        // The turn is SQLite's (an in-memory database, which has no writer thread of its own).
        let server = writer.is_none();
        let written = insert_all(&pool, &events, server).await;
        commits.fetch_add(1, Ordering::Relaxed);
        for pending in answer_batch(&mut batch, written) {
            let outcome = insert_all(&pool, &[&pending.event], server)
                .await
                .and_then(|mut outcomes| outcomes.pop().ok_or(StoreError::Unavailable));
            let _ = pending.reply.send(outcome);
        }
    }
}

/// Inserts events in one transaction, each new one entered in the backlog; for each, our id and
/// whether its delivery was stored before. `server`: PostgreSQL, which takes both inserts as one
/// statement (SQLite allows no insert inside `WITH`).
async fn insert_all(
    pool: &AnyPool,
    events: &[&NewWebhookEvent],
    server: bool,
) -> Result<Vec<(String, bool)>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut inserted: HashSet<String> = HashSet::with_capacity(events.len());
    for chunk in power_of_two_chunks(events) {
        let mut query = sqlx::query(insert_statement(chunk.len(), server));
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
            let id: String = row.get(0);
            if !server {
                sqlx::query("INSERT INTO webhook_backlog (id) VALUES ($1)")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
            inserted.insert(id);
        }
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
/// per size; with `backlog`, each new webhook is entered in the backlog in the same statement.
fn insert_statement(rows: usize, backlog: bool) -> &'static str {
    static WITH_BACKLOG: OnceLock<Vec<String>> = OnceLock::new();
    static ALONE: OnceLock<Vec<String>> = OnceLock::new();
    if backlog {
        statement_for_rows(&WITH_BACKLOG, rows, |rows| {
            format!(
                "WITH inserted AS ({}) INSERT INTO webhook_backlog (id) SELECT id FROM inserted RETURNING id",
                insert_webhooks(rows)
            )
        })
    } else {
        statement_for_rows(&ALONE, rows, insert_webhooks)
    }
}

fn insert_webhooks(rows: usize) -> String {
    format!(
        "INSERT INTO webhook_events (id, tenant_id, plugin, delivery_id, event_type, payload, received_at) \
         VALUES {} ON CONFLICT (tenant_id, plugin, delivery_id) DO NOTHING RETURNING id",
        row_placeholders(rows, 7)
    )
}
