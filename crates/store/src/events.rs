use crate::group_commit::GroupCommit;
use crate::webhook_event::{NewWebhookEvent, StoredWebhookEvent};
use crate::{EventPageQuery, Store, StoreError};

impl Store {
    /// Records an event unless its delivery id was seen for this tenant and plugin. Returns the id
    /// of the stored event and whether this delivery was a duplicate.
    pub async fn insert_webhook_event(&self, event: &NewWebhookEvent) -> Result<(String, bool), StoreError> {
        self.group_commit().insert(event.clone()).await
    }

    /// The group-commit writer, started on first use.
    pub(crate) fn group_commit(&self) -> &GroupCommit {
        self.group_commit
            .get_or_init(|| GroupCommit::start(self.pool.clone(), self.sqlite_file.clone(), self.writer.clone()))
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
