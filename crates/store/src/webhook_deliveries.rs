//! The webhook deliveries vendors sent (the `webhook_events` rows): what is inserted and what is
//! read back. The events they become are the event log's.

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
