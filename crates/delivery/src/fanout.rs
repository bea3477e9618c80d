//! The event log's consumer that turns each event into one delivery per matching enabled
//! endpoint of its tenant. Deliveries and the cursor move in one transaction, and the cursor only
//! from where it was read, so a crash or a second replica never loses or doubles a delivery.

use std::sync::Arc;

use integrations_store::{NewDelivery, Store, StoreError};
use tokio::sync::{watch, Mutex, Notify};

use crate::{matches, now_millis, DeliverySettings, CONSUMER};

pub(crate) struct Fanout {
    store: Store,
    settings: DeliverySettings,
    appended: Mutex<watch::Receiver<u64>>,
    wake_dispatcher: Arc<Notify>,
    /// How far this replica has read past the stored cursor through events that matched no
    /// endpoint, and when it last stored the cursor. Such batches write nothing: moving the
    /// stored cursor over them is bookkeeping, done at most once a second, instead of a write
    /// transaction per batch competing with ingest for the database.
    skipped: std::sync::Mutex<(i64, std::time::Instant)>,
    /// The stored cursor as this replica last wrote or read it: read again only after another
    /// replica moved it first (a compare-and-set that failed), not on every step.
    stored: std::sync::Mutex<Option<i64>>,
}

/// How often the cursor is stored while events match no endpoint.
const IDLE_CURSOR_WRITE: std::time::Duration = std::time::Duration::from_secs(1);
/// After a batch smaller than a full one, how long to let appends gather before the next read:
/// under load every commit wakes the fan-out, and reading a few events per commit costs more
/// than the milliseconds this adds to delivery.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

impl Fanout {
    pub(crate) fn new(
        store: Store,
        settings: DeliverySettings,
        appended: watch::Receiver<u64>,
        wake_dispatcher: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            settings,
            appended: Mutex::new(appended),
            wake_dispatcher,
            skipped: std::sync::Mutex::new((0, std::time::Instant::now())),
            stored: std::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn run(&self) {
        let mut appended = self.appended.lock().await;
        loop {
            // Marked seen before reading, so an append during the step wakes the next wait.
            appended.borrow_and_update();
            match self.step().await {
                Ok(read) if read >= self.settings.fanout_batch as usize => continue,
                Ok(0) => {}
                Ok(_) => {
                    tokio::time::sleep(GATHER).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "outbound fan-out failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            let _ = tokio::time::timeout(self.settings.poll_interval, appended.changed()).await;
        }
    }

    /// Fans out one span of the log; returns how many positions it covered (0: none left for now).
    pub(crate) async fn step(&self) -> Result<usize, StoreError> {
        let cached = *self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let from = match cached {
            Some(from) => from,
            None => self.store.event_cursor(CONSUMER).await?,
        };
        let (skipped_to, last_write) = *self.skipped.lock().unwrap_or_else(|p| p.into_inner());
        // An endpoint created meanwhile only takes events after its `start_seq`, so the events
        // skipped over can never need a delivery later.
        let read_from = from.max(skipped_to);
        // A span of the log rather than a number of events: which of them have endpoints is
        // left to the database.
        let to = self
            .store
            .last_event_seq()
            .await?
            .min(read_from.saturating_add(self.settings.fanout_batch));
        if to <= read_from {
            return Ok(0);
        }
        let first_attempt_at = now_millis() + self.settings.schedule.first_delay().as_millis() as i64;
        let deliveries: Vec<NewDelivery> = self
            .store
            .event_routes(read_from, to)
            .await?
            .into_iter()
            .filter(|route| matches(&route.event_types, &route.event_type))
            .map(|route| NewDelivery {
                tenant_id: route.tenant_id,
                endpoint_id: route.endpoint_id,
                event_seq: route.seq,
                next_attempt_at: first_attempt_at,
            })
            .collect();
        let span = (to - read_from) as usize;
        if deliveries.is_empty() && last_write.elapsed() < IDLE_CURSOR_WRITE {
            *self.skipped.lock().unwrap_or_else(|p| p.into_inner()) = (to, last_write);
            return Ok(span);
        }
        let written = match self.store.record_fanout(CONSUMER, from, to, &deliveries).await {
            Ok(written) => written,
            Err(error) => {
                // Whether it was written is unknown: read the stored cursor again.
                *self.stored.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Err(error);
            }
        };
        *self.stored.lock().unwrap_or_else(|p| p.into_inner()) = written.then_some(to);
        // Written, or another replica moved the cursor first: read on from the stored one.
        *self.skipped.lock().unwrap_or_else(|p| p.into_inner()) = (0, std::time::Instant::now());
        if written && !deliveries.is_empty() {
            self.wake_dispatcher.notify_one();
        }
        Ok(span)
    }
}
