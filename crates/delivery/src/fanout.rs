//! The event log's consumer that turns each event into one delivery per matching enabled
//! endpoint of its tenant. Deliveries and the cursor move in one transaction, and the cursor only
//! from where it was read, so a crash or a second replica never loses or doubles a delivery.
//!
//! A transaction writes at most `fanout_max_deliveries` deliveries: the cursor can stop inside
//! an event (after one of its endpoints), so a tenant with thousands of endpoints never holds the
//! database's writer for long, and other tenants' writes go between its transactions.

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
    /// The stored cursor (`(seq, endpoint)`, see `Store::fanout_cursor`) as this replica last
    /// wrote or read it: read again only after another replica moved it first (a compare-and-set
    /// that failed), not on every step.
    stored: std::sync::Mutex<Option<(i64, String)>>,
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

    /// Fans out one span of the log, or as much of it as one transaction may write; returns how
    /// many positions it covered (a full batch when it stopped inside the span: read on at once;
    /// 0: none left for now).
    pub(crate) async fn step(&self) -> Result<usize, StoreError> {
        let cached = self.stored.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let from = match cached {
            Some(from) => from,
            None => self.store.fanout_cursor(CONSUMER).await?,
        };
        let (skipped_to, last_write) = *self.skipped.lock().unwrap_or_else(|p| p.into_inner());
        // An endpoint created meanwhile only takes events after its `start_seq`, so the events
        // skipped over can never need a delivery later.
        let read_from = if skipped_to > from.0 {
            (skipped_to, String::new())
        } else {
            from.clone()
        };
        // A span of the log rather than a number of events: which of them have endpoints is
        // left to the database.
        let to = self
            .store
            .last_event_seq()
            .await?
            .min(read_from.0.saturating_add(self.settings.fanout_batch));
        if to <= read_from.0 {
            return Ok(0);
        }
        let most = self.settings.fanout_max_deliveries.max(1);
        let mut routes = self
            .store
            .event_routes((read_from.0, &read_from.1), to, most as i64 + 1)
            .await?;
        let complete = routes.len() <= most;
        routes.truncate(most);
        let next = match routes.last() {
            // More than one transaction's worth: stop after the last endpoint taken.
            Some(last) if !complete => (last.seq - 1, last.endpoint_id.clone()),
            _ => (to, String::new()),
        };
        let first_attempt_at = now_millis() + self.settings.schedule.first_delay().as_millis() as i64;
        let deliveries: Vec<NewDelivery> = routes
            .into_iter()
            .filter(|route| matches(&route.event_types, &route.event_type))
            .map(|route| NewDelivery {
                tenant_id: route.tenant_id,
                endpoint_id: route.endpoint_id,
                event_seq: route.seq,
                next_attempt_at: first_attempt_at,
            })
            .collect();
        let span = if complete {
            (to - read_from.0) as usize
        } else {
            self.settings.fanout_batch.max(1) as usize
        };
        if complete && deliveries.is_empty() && last_write.elapsed() < IDLE_CURSOR_WRITE {
            *self.skipped.lock().unwrap_or_else(|p| p.into_inner()) = (to, last_write);
            return Ok(span);
        }
        let written = self
            .store
            .record_fanout(CONSUMER, (from.0, &from.1), (next.0, &next.1), &deliveries)
            .await;
        let written = match written {
            Ok(written) => written,
            Err(error) => {
                // Whether it was written is unknown: read the stored cursor again.
                *self.stored.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Err(error);
            }
        };
        *self.stored.lock().unwrap_or_else(|p| p.into_inner()) = written.then_some(next);
        // Written, or another replica moved the cursor first: read on from the stored one.
        *self.skipped.lock().unwrap_or_else(|p| p.into_inner()) = (0, std::time::Instant::now());
        if written && !deliveries.is_empty() {
            self.wake_dispatcher.notify_one();
        }
        Ok(span)
    }
}

#[cfg(test)]
mod tests {
    use integrations_store::testing::add_tenant;
    use sqlx::Row;

    use super::*;
    use crate::testing::{emit, endpoint, sqlite_store};

    /// Every (event, endpoint) pair written, as (seq, endpoint).
    async fn written(store: &Store) -> Vec<(i64, String)> {
        sqlx::query("SELECT event_seq, endpoint_id FROM webhook_deliveries ORDER BY event_seq, endpoint_id")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// 40 endpoints (one filtering every event out) and 25 events: 937 deliveries, written at
    /// most 64 per transaction by two replicas' fan-outs taking turns, each exactly once.
    #[tokio::test]
    async fn many_endpoints_are_fanned_out_in_bounded_transactions_each_pair_once() {
        let (_dir, store) = sqlite_store().await;
        add_tenant(&store, "acme").await.unwrap();
        add_tenant(&store, "beta").await.unwrap();
        for n in 0..40 {
            let types = if n == 7 { vec!["invoice.paid".into()] } else { vec![] };
            let stored = store
                .insert_webhook_endpoint(&endpoint(format!("ep_{n:02}"), "acme", types), 100)
                .await
                .unwrap();
            assert!(stored.is_some());
        }
        store
            .insert_webhook_endpoint(&endpoint("ep_beta".into(), "beta", vec![]), 100)
            .await
            .unwrap()
            .unwrap();
        for n in 0..25 {
            emit(&store, if n == 12 { "beta" } else { "acme" }, n, 0).await;
        }
        let settings = DeliverySettings {
            fanout_max_deliveries: 64,
            ..DeliverySettings::default()
        };
        let replica = |store: &Store| {
            let (_, appended) = watch::channel(0);
            Fanout::new(store.clone(), settings.clone(), appended, Arc::new(Notify::new()))
        };
        let (one, two) = (replica(&store), replica(&store));
        let mut before = 0;
        for step in 0..100 {
            let fanout = if step % 3 == 0 { &two } else { &one };
            if fanout.step().await.unwrap() == 0 && one.step().await.unwrap() == 0 {
                break;
            }
            let now = written(&store).await.len();
            assert!(now - before <= 64, "one transaction wrote {} deliveries", now - before);
            before = now;
        }
        let pairs = written(&store).await;
        assert_eq!(pairs.len(), 24 * 39 + 1);
        let mut distinct = pairs.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), pairs.len(), "a pair was written twice");
        assert!(pairs.iter().all(|(_, endpoint)| endpoint != "ep_07"));
    }
}
