//! The group-commit writer for a server database (PostgreSQL): tasks that take a batch each and
//! send it as one statement, its columns bound as arrays, in one transaction.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::postgres::PgPool;
use tokio::sync::{mpsc, Mutex};

use crate::batch::{answer_batch, Pending, MAX_BATCH};
use crate::webhook_deliveries::sql::EXISTING_WEBHOOK;
use crate::webhook_deliveries::NewWebhookDelivery;
use crate::StoreError;

/// Concurrent writer tasks on PostgreSQL.
pub(crate) const SERVER_WRITERS: usize = 4;

/// Writes batches until the queue closes.
pub(crate) async fn write_batches(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Pending>>>, commits: Arc<AtomicU64>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    // The queue is held only while taking a batch, so the next writer can take the next one.
    while queue.lock().await.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let events: Vec<&NewWebhookDelivery> = batch.iter().map(|p| &p.event).collect();
        let written = insert_all(&pool, &events).await;
        commits.fetch_add(1, Ordering::Relaxed);
        for pending in answer_batch(&mut batch, written) {
            let outcome = insert_all(&pool, &[&pending.event])
                .await
                .and_then(|mut outcomes| outcomes.pop().ok_or(StoreError::Unavailable));
            let _ = pending.reply.send(outcome);
        }
    }
}

/// Inserts events in one transaction, each new one entered in the backlog by the same statement;
/// for each, our id and whether its delivery was stored before.
async fn insert_all(pool: &PgPool, events: &[&NewWebhookDelivery]) -> Result<Vec<(String, bool)>, StoreError> {
    let mut tx = pool.begin().await?;
    // One text for every batch size (prepared once), each column an array.
    let inserted: HashSet<String> = sqlx::query_scalar(sql::INSERT_WEBHOOKS)
        .bind(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.tenant_id.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.plugin.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.delivery_id.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_type.as_deref()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.payload.as_slice()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.received_at).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        if inserted.contains(&event.id) {
            outcomes.push((event.id.clone(), false));
            continue;
        }
        // A delivery stored before (or earlier in this batch): report the stored event.
        let existing: String = sqlx::query_scalar(EXISTING_WEBHOOK)
            .bind(&event.tenant_id)
            .bind(&event.plugin)
            .bind(&event.delivery_id)
            .fetch_one(&mut *tx)
            .await?;
        outcomes.push((existing, true));
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The writer's statements.
pub(crate) mod sql {
    statements! {
        /// Webhooks given as one array per column (in order: a delivery id repeated within the
        /// batch keeps its first row), those whose delivery is new entered in the backlog, their
        /// ids returned.
        INSERT_WEBHOOKS = "WITH inserted AS (INSERT INTO webhook_events \
             (id, tenant_id, plugin, delivery_id, event_type, payload, received_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int8[]) \
             ON CONFLICT (tenant_id, plugin, delivery_id) DO NOTHING RETURNING id) \
             INSERT INTO webhook_backlog (id) SELECT id FROM inserted RETURNING id";
    }
}
