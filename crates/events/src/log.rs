use std::sync::Arc;
use std::time::Duration;

use integrations_core::PluginRegistry;
use integrations_store::{
    EventData, NewEvent, NewWebhookDelivery, PendingWebhookDelivery, Store, StoreError, StoredEvent,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::{new_event_id, rfc3339_millis};

/// How often a waiting reader or an idle pipeline looks at the database anyway: events appended by
/// another replica wake nobody here.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Longest a reader may wait for events.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Most events on one page.
pub const MAX_PAGE: i64 = 500;

/// Most bytes of event data on one page (a page holds one event at least, however large), as on
/// `GET /v1/webhook-events`.
pub const MAX_PAGE_DATA_BYTES: u64 = 4 * 1024 * 1024;

/// A lifecycle change of an installation, recorded as an event in the change's own transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleChange {
    /// `plugin.installed`
    Installed,
    /// `plugin.configured`
    Configured,
    /// `plugin.enabled`
    Enabled,
    /// `plugin.disabled`
    Disabled,
    /// `plugin.uninstalled`
    Uninstalled,
}

impl LifecycleChange {
    fn event_type(self) -> &'static str {
        match self {
            Self::Installed => "plugin.installed",
            Self::Configured => "plugin.configured",
            Self::Enabled => "plugin.enabled",
            Self::Disabled => "plugin.disabled",
            Self::Uninstalled => "plugin.uninstalled",
        }
    }
}

/// Why an event operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A tenant-emitted type that is not dot-separated words of letters, digits, `_` and `-`.
    #[error("type must be 1 to 128 characters: words of letters, digits, '_' or '-', separated by dots")]
    InvalidType,
    /// An `Idempotency-Key` that is empty, too long or not printable ASCII.
    #[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
    InvalidIdempotencyKey,
    /// A cursor that names none of the tenant's events: never handed out, or an event that
    /// retention has removed since.
    #[error("`after` names none of your events (an event older than the retention period is gone): read from the start without it")]
    InvalidCursor,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An event as tenants read it.
#[derive(Clone, Debug, Serialize)]
pub struct EventView {
    /// Our id; receivers drop a second delivery of the same id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The plugin it came from or is about; `null` for events the tenant emitted.
    pub plugin: Option<String>,
    /// `jira.issue_created`, `plugin.installed`, or the tenant's own type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339, UTC.
    pub occurred_at: String,
    /// The event's data, written out as stored: checked as JSON, never parsed into a tree.
    pub data: Box<RawValue>,
}

impl EventView {
    /// The tenant's view of a stored event (`null` data if what is stored is not JSON).
    pub fn from_stored(event: StoredEvent) -> Self {
        Self {
            data: RawValue::from_string(event.data).unwrap_or_else(|_| RawValue::NULL.to_owned()),
            id: event.id,
            tenant: event.tenant_id,
            plugin: event.plugin,
            event_type: event.event_type,
            occurred_at: rfc3339_millis(event.occurred_at),
        }
    }
}

/// One read of a tenant's events.
#[derive(Clone, Debug, Serialize)]
pub struct EventPage {
    /// Oldest first.
    pub events: Vec<EventView>,
    /// Pass as `after` to read on: the id of the last event read (the cursor given, or none,
    /// when nothing new arrived). It names the tenant's own event, never a position in the
    /// deployment-wide log, so it tells nothing of other tenants' traffic.
    pub next: Option<String>,
}

/// What `emit` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmittedEvent {
    /// The event's id.
    pub id: String,
    /// Whether an earlier request with the same `Idempotency-Key` had emitted it.
    #[serde(skip)]
    pub replayed: bool,
}

/// The log, with the wake-ups of this process's readers and pipeline.
pub struct EventLog {
    pub(crate) store: Store,
    pub(crate) registry: Arc<PluginRegistry>,
    pub(crate) appended: watch::Sender<u64>,
    /// Webhooks this process just stored, handed to the pipeline in memory so it need not read
    /// them back; the database scan still finds any the hand-off missed (a full channel, a crash).
    pub(crate) stored: mpsc::Sender<PendingWebhookDelivery>,
    pub(crate) stored_queue: std::sync::Mutex<Option<mpsc::Receiver<PendingWebhookDelivery>>>,
}

/// Webhooks handed over in memory, at most; past it the scan picks them up.
const HAND_OFF_CAPACITY: usize = 8192;

impl EventLog {
    /// The log over `store`, normalizing with the plugins of `registry`.
    pub fn new(store: Store, registry: Arc<PluginRegistry>) -> Arc<Self> {
        let (stored, stored_queue) = mpsc::channel(HAND_OFF_CAPACITY);
        Arc::new(Self {
            store,
            registry,
            appended: watch::Sender::new(0),
            stored,
            stored_queue: std::sync::Mutex::new(Some(stored_queue)),
        })
    }

    /// The event recording a lifecycle change; the store appends it in the change's transaction.
    pub fn lifecycle_event(tenant: &str, plugin: &str, change: LifecycleChange) -> NewEvent {
        NewEvent {
            id: new_event_id(),
            tenant_id: tenant.to_owned(),
            plugin: Some(plugin.to_owned()),
            event_type: change.event_type().to_owned(),
            occurred_at: now_millis(),
            data: EventData::Json(serde_json::json!({"plugin": plugin})),
            idempotency_key: None,
        }
    }

    /// Wakes this process's waiting readers: something was appended here.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever this process appends to the log: consumers wait on it instead of polling
    /// fast (they still poll slowly for other replicas' appends).
    pub fn appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Ingests a verified webhook delivery: stores it (once per tenant, plugin and delivery id)
    /// and hands it to the pipeline, which turns it into events after it was acknowledged.
    /// Returns the delivery's id, the first one's for a duplicate, and whether it was one.
    pub async fn ingest(&self, delivery: NewWebhookDelivery) -> Result<(String, bool), StoreError> {
        let (id, duplicate) = self.store.insert_webhook_delivery(&delivery).await?;
        if !duplicate {
            // A full hand-off is no loss: the scan finds the row a little later.
            let _ = self.stored.try_send(PendingWebhookDelivery {
                id: id.clone(),
                tenant_id: delivery.tenant_id,
                plugin: delivery.plugin,
                event_type: delivery.event_type,
                payload: delivery.payload,
                received_at: delivery.received_at,
            });
        }
        Ok((id, duplicate))
    }

    /// Appends an event the tenant emits. The same `Idempotency-Key` again gives the first id and
    /// appends nothing.
    pub async fn emit(
        &self,
        tenant: &str,
        event_type: &str,
        data: Value,
        idempotency_key: Option<String>,
    ) -> Result<EmittedEvent, EventError> {
        if !valid_tenant_event_type(event_type) {
            return Err(EventError::InvalidType);
        }
        if let Some(key) = &idempotency_key {
            let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
            if key.is_empty() || key.len() > 255 || !printable {
                return Err(EventError::InvalidIdempotencyKey);
            }
        }
        let event = NewEvent {
            id: new_event_id(),
            tenant_id: tenant.to_owned(),
            plugin: None,
            event_type: event_type.to_owned(),
            occurred_at: now_millis(),
            data: EventData::Json(data),
            idempotency_key,
        };
        let (id, replayed) = self.store.append_tenant_event(&event).await?;
        if !replayed {
            self.notify_appended();
        }
        Ok(EmittedEvent { id, replayed })
    }

    /// The tenant's events after `after` (from the start without one), waiting up to `wait`
    /// (at most [`MAX_WAIT`]) for the first one when there are none yet: at most `limit` (up to
    /// [`MAX_PAGE`]) and [`MAX_PAGE_DATA_BYTES`] of them.
    pub async fn read(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: i64,
        wait: Duration,
    ) -> Result<EventPage, EventError> {
        let cursor = after.filter(|id| !id.is_empty());
        let after = match cursor {
            None => 0,
            Some(id) => self
                .store
                .tenant_event_seq(tenant, id)
                .await?
                .ok_or(EventError::InvalidCursor)?,
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut appended = self.appended.subscribe();
        loop {
            // Marked seen before the read, so an append between the read and the wait still wakes us.
            appended.borrow_and_update();
            let events = self
                .store
                .tenant_events_after(tenant, after, limit, MAX_PAGE_DATA_BYTES)
                .await?;
            if let Some(last) = events.last() {
                return Ok(EventPage {
                    next: Some(last.id.clone()),
                    events: events.into_iter().map(EventView::from_stored).collect(),
                });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(EventPage {
                    events: Vec::new(),
                    next: cursor.map(str::to_owned),
                });
            }
            let nap = (deadline - now).min(POLL_INTERVAL);
            let _ = tokio::time::timeout(nap, appended.changed()).await;
        }
    }
}

/// Dot-separated words of ASCII letters, digits, `_` and `-`; at most 128 characters.
fn valid_tenant_event_type(event_type: &str) -> bool {
    !event_type.is_empty()
        && event_type.len() <= 128
        && event_type.split('.').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_event_types_are_dotted_words() {
        assert!(valid_tenant_event_type("order.created"));
        assert!(valid_tenant_event_type("invoice-paid"));
        for bad in ["", ".a", "a.", "a..b", "a b", "a/b", &"x".repeat(129)] {
            assert!(!valid_tenant_event_type(bad), "{bad:?}");
        }
    }
}
