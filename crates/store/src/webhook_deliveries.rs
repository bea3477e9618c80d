//! The webhook deliveries vendors sent (the `webhook_events` rows): what is inserted and what is
//! read back. The events they become are the event log's.

use crate::group_commit::GroupCommit;
use crate::{Store, StoreError, WebhookDeliveryQuery};

/// A verified inbound webhook to record.
#[derive(Clone, Debug)]
pub struct NewWebhookDelivery {
    /// Our id for the delivery.
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

/// A recorded webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWebhookDelivery {
    /// Our id for the delivery.
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

/// The webhook rows' statements both backends' writers share.
pub(crate) mod sql {
    statements! {
        /// The stored webhook with this delivery id (the one a duplicate delivery refers to).
        EXISTING_WEBHOOK = "SELECT id FROM webhook_events WHERE tenant_id = $1 AND plugin = $2 AND delivery_id = $3";
    }
}

impl Store {
    /// Records a delivery unless its delivery id was seen for this tenant and plugin. Returns the
    /// id of the stored delivery and whether this one was a duplicate.
    pub async fn insert_webhook_delivery(&self, event: &NewWebhookDelivery) -> Result<(String, bool), StoreError> {
        self.group_commit().insert(event.clone()).await
    }

    /// The group-commit writer, started on first use.
    pub(crate) fn group_commit(&self) -> &GroupCommit {
        self.group_commit
            .get_or_init(|| GroupCommit::start(self.pool.clone(), self.sqlite_file.clone(), self.writer.clone()))
    }

    /// How many webhook transactions this store has committed (group commit makes it far fewer
    /// than the deliveries).
    pub fn webhook_commits(&self) -> u64 {
        self.group_commit.get().map_or(0, GroupCommit::commits)
    }

    /// A tenant's most recent deliveries, newest first, optionally for one plugin, without a byte
    /// budget: for operations outside the request path. The API pages with
    /// [`Store::webhook_delivery_page`].
    pub async fn list_webhook_deliveries(
        &self,
        tenant_id: &str,
        plugin: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredWebhookDelivery>, StoreError> {
        let query = WebhookDeliveryQuery {
            plugin,
            after: None,
            limit,
            max_payload_bytes: u64::MAX,
        };
        Ok(self.webhook_delivery_page(tenant_id, &query).await?.deliveries)
    }
}
