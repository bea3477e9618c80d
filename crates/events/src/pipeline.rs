//! The pipeline: the log's consumer that turns stored webhook deliveries into events (handed
//! over in memory by ingest, or found by a scan of the database), and the retention that drops
//! old events and processed deliveries.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use integrations_core::{body_as_text_data, default_normalized_event, WebhookDelivery};
use integrations_store::{EventData, NewEvent, PendingWebhookDelivery, StoreError};
use tokio::task::JoinHandle;

use crate::ids::is_time_ordered;
use crate::json::decodes_as_json;
use crate::log::{now_millis, EventLog, POLL_INTERVAL};
use crate::new_event_id;

/// How the background work runs.
#[derive(Clone, Copy, Debug)]
pub struct PipelineSettings {
    /// How long events, and processed webhooks (so their delivery ids dedup), are kept.
    pub retention: Duration,
    /// Webhooks turned into events per transaction.
    pub batch: i64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(7 * 24 * 3600),
            batch: 256,
        }
    }
}

/// How long the pipeline waits for more webhooks once one arrives.
const GATHER: Duration = Duration::from_millis(10);

/// The scan leaves webhooks this young to the in-memory hand-off.
const HAND_OFF_GRACE_SECS: i64 = 2;

impl EventLog {
    /// Turns up to `batch` stored webhooks into events, found in the database (all those not
    /// processed yet); returns how many it processed.
    pub async fn process_pending_webhooks(&self, batch: i64) -> Result<usize, StoreError> {
        let pending = self.store.pending_webhooks(batch, i64::MAX).await?;
        self.process(&pending).await
    }

    /// Turns the given stored webhooks into events; one processed meanwhile (by the scan, or by
    /// another replica) is skipped with its events.
    async fn process(&self, pending: &[PendingWebhookDelivery]) -> Result<usize, StoreError> {
        if pending.is_empty() {
            return Ok(0);
        }
        let processed: Vec<(String, Vec<NewEvent>)> = pending
            .iter()
            .map(|webhook| (webhook.id.clone(), self.normalize(webhook)))
            .collect();
        let count = self.store.record_processed_webhooks(&processed).await?;
        if count > 0 {
            self.notify_appended();
        }
        Ok(pending.len())
    }

    fn normalize(&self, webhook: &PendingWebhookDelivery) -> Vec<NewEvent> {
        let delivery = WebhookDelivery {
            event_type: webhook.event_type.as_deref(),
            payload: &webhook.payload,
            received_at_ms: webhook.received_at.saturating_mul(1000),
        };
        let plugin = webhook.plugin.as_str();
        // A plugin that panics on odd bytes must not stop the pipeline for every tenant: its
        // delivery still becomes the default event.
        let normalized = match self.registry.get(plugin) {
            Some(registered) => std::panic::catch_unwind(AssertUnwindSafe(|| {
                registered.plugin.normalize_webhook(&delivery)
            }))
            .unwrap_or_else(|_| {
                tracing::error!(plugin, webhook = %webhook.id, "normalize_webhook panicked; using the default event");
                vec![default_normalized_event(plugin, &delivery)]
            }),
            // Installed before a rebuild without the connector.
            None => vec![default_normalized_event(plugin, &delivery)],
        };
        // Checked once, and only if some event carries the body, against what readers will
        // decode: a body that only looks like JSON (bytes that are not UTF-8 inside a string, a
        // lone surrogate escape, a number out of range) must not be stored as the data.
        let mut body_is_json: Option<bool> = None;
        // A webhook stored before ids were time-ordered keeps the old ways: events with ids of
        // their own and a copy of the body, since retention cannot tell its age by its id.
        let derived = is_time_ordered(&webhook.id);
        normalized
            .into_iter()
            .enumerate()
            .map(|(n, event)| NewEvent {
                id: if derived {
                    event_id_of_webhook(&webhook.id, n)
                } else {
                    new_event_id()
                },
                tenant_id: webhook.tenant_id.clone(),
                plugin: Some(plugin.to_owned()),
                event_type: format!(
                    "{plugin}.{}",
                    integrations_core::event_type_name(plugin, Some(&event.event_type))
                ),
                occurred_at: event.occurred_at_ms.unwrap_or(delivery.received_at_ms),
                data: match event.data {
                    integrations_core::EventData::Json(value) => EventData::Json(value),
                    integrations_core::EventData::Body => {
                        let is_json = *body_is_json.get_or_insert_with(|| decodes_as_json(&webhook.payload));
                        match (is_json, derived) {
                            (true, true) => EventData::WebhookBody(webhook.id.clone()),
                            (true, false) => serde_json::from_slice(&webhook.payload).map_or_else(
                                |_| EventData::Json(body_as_text_data(&webhook.payload)),
                                EventData::Json,
                            ),
                            (false, _) => EventData::Json(body_as_text_data(&webhook.payload)),
                        }
                    }
                },
                idempotency_key: None,
            })
            .collect()
    }

    /// Starts the background work: the webhook pipeline and retention. Abort the handles to stop.
    pub fn spawn(self: &Arc<Self>, settings: PipelineSettings) -> Vec<JoinHandle<()>> {
        let pipeline = {
            let log = self.clone();
            tokio::spawn(async move { log.run_pipeline(settings.batch).await })
        };
        let retention = {
            let log = self.clone();
            tokio::spawn(async move { log.run_retention(settings.retention).await })
        };
        vec![pipeline, retention]
    }

    async fn run_pipeline(&self, batch: i64) {
        let Some(mut handed_off) = self.stored_queue.lock().ok().and_then(|mut q| q.take()) else {
            return;
        };
        let mut next_scan = tokio::time::Instant::now();
        let mut received = Vec::with_capacity(batch as usize);
        loop {
            // What this process stored comes from memory, in batches of what queued meanwhile.
            if let Ok(n) =
                tokio::time::timeout(POLL_INTERVAL, handed_off.recv_many(&mut received, batch as usize)).await
            {
                if n == 0 {
                    return;
                }
                // A moment's more webhooks in the same transaction: each one that carries a batch
                // rewrites the last pages of the log, its indexes and the backlog.
                let gathered = tokio::time::Instant::now() + GATHER;
                while received.len() < batch as usize {
                    let room = batch as usize - received.len();
                    match tokio::time::timeout_at(gathered, handed_off.recv_many(&mut received, room)).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                if let Err(error) = self.process(&received).await {
                    // Still stored: the scan takes them up.
                    tracing::warn!(%error, "webhook pipeline failed; the scan retries");
                }
                received.clear();
            }
            // Older unprocessed webhooks: from before a restart, another replica's, or missed.
            if tokio::time::Instant::now() >= next_scan {
                let cutoff = now_millis() / 1000 - HAND_OFF_GRACE_SECS;
                loop {
                    match self.store.pending_webhooks(batch, cutoff).await {
                        Ok(pending) => match self.process(&pending).await {
                            Ok(_) if pending.len() as i64 >= batch => continue,
                            Ok(_) => {}
                            Err(error) => tracing::warn!(%error, "webhook pipeline failed; retrying"),
                        },
                        Err(error) => tracing::warn!(%error, "webhook pipeline scan failed; retrying"),
                    }
                    break;
                }
                next_scan = tokio::time::Instant::now() + POLL_INTERVAL;
            }
        }
    }

    async fn run_retention(&self, retention: Duration) {
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        loop {
            tokio::time::sleep(every).await;
            let before = now_millis() / 1000 - retention.as_secs() as i64;
            match self.store.expire_events(before).await {
                Ok(expired) if expired.webhooks + expired.events > 0 => {
                    tracing::info!(
                        webhooks = expired.webhooks,
                        events = expired.events,
                        "expired old events"
                    )
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "event retention failed"),
            }
        }
    }
}

/// The id of a webhook's `n`th event: the webhook's own id, then `_n` after the first. The same
/// however often the webhook is processed, so a redone processing cannot give an event a second
/// id; and in the webhook's place in time, so retention (which goes by id) removes a webhook and
/// the events carrying its body together.
fn event_id_of_webhook(webhook_id: &str, n: usize) -> String {
    if n == 0 {
        webhook_id.to_owned()
    } else {
        format!("{webhook_id}_{n}")
    }
}
