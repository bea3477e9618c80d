//! The vendors' webhook deliveries as the service meets them: stored through the group commit
//! (the types and statements are [`crate::webhook_deliveries`]'), and listed back.

use crate::group_commit::GroupCommit;
use crate::webhook_deliveries::{NewWebhookDelivery, StoredWebhookDelivery};
use crate::{Store, StoreError, WebhookDeliveryQuery};

impl Store {
    /// Records a delivery unless its delivery id was seen for this tenant and plugin. Returns the
    /// id of the stored delivery and whether this one was a duplicate.
    pub async fn insert_webhook_delivery(&self, event: &NewWebhookDelivery) -> Result<(String, bool), StoreError> {
        self.group_commit().insert(event.clone()).await
    }

    /// The group-commit writer, started on first use.
    pub(crate) fn group_commit(&self) -> &GroupCommit {
        self.group_commit
            .get_or_init(|| GroupCommit::start(self.ingest.clone()))
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
