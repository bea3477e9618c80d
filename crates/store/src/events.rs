use crate::group_commit::GroupCommit;
use crate::{EventPageQuery, Store, StoreError};

/// A verified inbound webhook to record.
#[derive(Clone, Debug)]
pub struct NewWebhookEvent {
    /// Our id for the event.
    pub id: String,
    /// The tenant it was addressed to.
    pub tenant_id: String,
    /// The plugin that verified it.
    pub plugin: String,
    /// The sender's delivery id (dedup key).
    pub delivery_id: String,
    /// The event name, when the plugin found one.
    pub event_type: Option<String>,
    /// The raw body.
    pub payload: Vec<u8>,
    /// Arrival time, unix seconds.
    pub received_at: i64,
}

/// A recorded webhook event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWebhookEvent {
    /// Our id for the event.
    pub id: String,
    /// The plugin that verified it.
    pub plugin: String,
    /// The sender's delivery id.
    pub delivery_id: String,
    /// The event name.
    pub event_type: Option<String>,
    /// The raw body.
    pub payload: Vec<u8>,
    /// Arrival time, unix seconds.
    pub received_at: i64,
}

impl Store {
    /// Records an event unless its delivery id was seen for this tenant and plugin. Returns the id
    /// of the stored event and whether this delivery was a duplicate.
    pub async fn insert_webhook_event(&self, event: &NewWebhookEvent) -> Result<(String, bool), StoreError> {
        let group = self
            .group_commit
            .get_or_init(|| GroupCommit::start(self.pool.clone(), self.sqlite_file.clone(), self.writer.clone()));
        group.insert(event.clone()).await
    }

    /// How many webhook transactions this store has committed (group commit makes it far fewer
    /// than the events).
    pub fn webhook_commits(&self) -> u64 {
        self.group_commit.get().map_or(0, GroupCommit::commits)
    }

    /// A tenant's most recent events, newest first, optionally for one plugin, without a byte
    /// budget: for operations outside the request path. The API pages with
    /// [`Store::webhook_event_page`].
    pub async fn list_webhook_events(
        &self,
        tenant_id: &str,
        plugin: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredWebhookEvent>, StoreError> {
        let query = EventPageQuery {
            plugin,
            after: None,
            limit,
            max_payload_bytes: u64::MAX,
        };
        Ok(self.webhook_event_page(tenant_id, &query).await?.events)
    }
}
