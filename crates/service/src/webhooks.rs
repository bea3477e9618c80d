use integrations_core::{WebhookError, WebhookOutcome, WebhookRequest};
use integrations_secrets::random_bytes;
use integrations_store::NewWebhookEvent;
use serde::Serialize;

use crate::{now_unix, Service, ServiceError};

/// What the sender of a webhook is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookReceipt {
    /// Stored (or already stored: `duplicate`).
    Stored {
        /// Our event id.
        event_id: String,
        /// Whether this delivery had been stored before.
        duplicate: bool,
    },
    /// A handshake to answer verbatim.
    Handshake {
        /// Content type.
        content_type: String,
        /// Body.
        body: Vec<u8>,
    },
}

/// A stored event as the tenant API lists it.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookEventView {
    /// Our event id.
    pub id: String,
    /// The plugin.
    pub plugin: String,
    /// The sender's delivery id.
    pub delivery_id: String,
    /// The event name.
    pub event_type: Option<String>,
    /// Arrival time, unix seconds.
    pub received_at: i64,
    /// The payload as JSON when it is JSON, else as a string.
    pub payload: serde_json::Value,
}

impl Service {
    /// Verifies and stores an inbound webhook before it is acknowledged. Unknown tenants, and
    /// plugins not installed, disabled or not allowed, all look alike: not found.
    pub async fn receive_webhook(
        &self,
        plugin: &str,
        tenant_id: &str,
        request: WebhookRequest,
    ) -> Result<WebhookReceipt, ServiceError> {
        let not_found = || ServiceError::NotInstalled(plugin.to_owned());
        let registered = self.registry.get(plugin).ok_or_else(not_found)?;
        let gate = self.gate(tenant_id).await?.ok_or_else(not_found)?;
        gate.usable(self, plugin).ok_or_else(not_found)?;
        let config = self.plugin_config(&gate, plugin).await?;
        let outcome = registered.plugin.verify_webhook(&config, &request).map_err(|error| {
            tracing::info!(tenant = tenant_id, plugin, %error, "webhook refused");
            match error {
                WebhookError::Malformed(message) => ServiceError::WebhookMalformed(message),
                other => ServiceError::WebhookRejected(other.to_string()),
            }
        })?;
        let verified = match outcome {
            WebhookOutcome::Handshake { content_type, body } => {
                return Ok(WebhookReceipt::Handshake { content_type, body })
            }
            WebhookOutcome::Event(verified) => verified,
        };
        let event_id = format!("evt_{}", hex::encode(random_bytes::<12>()?));
        let event = NewWebhookEvent {
            // Without a sender id there is nothing to deduplicate on; each delivery is its own.
            delivery_id: verified.delivery_id.unwrap_or_else(|| event_id.clone()),
            id: event_id,
            tenant_id: tenant_id.to_owned(),
            plugin: plugin.to_owned(),
            event_type: verified.event_type,
            payload: request.body,
            received_at: now_unix(),
        };
        let (event_id, duplicate) = self.store.insert_webhook_event(&event).await?;
        tracing::info!(tenant = tenant_id, plugin, event_id, duplicate, "webhook stored");
        Ok(WebhookReceipt::Stored { event_id, duplicate })
    }

    /// A tenant's most recent webhook events, newest first.
    pub async fn list_webhook_events(
        &self,
        tenant_id: &str,
        plugin: Option<&str>,
        limit: i64,
    ) -> Result<Vec<WebhookEventView>, ServiceError> {
        let events = self
            .store
            .list_webhook_events(tenant_id, plugin, limit.clamp(1, 500))
            .await?;
        Ok(events
            .into_iter()
            .map(|e| WebhookEventView {
                payload: serde_json::from_slice(&e.payload)
                    .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&e.payload).into_owned())),
                id: e.id,
                plugin: e.plugin,
                delivery_id: e.delivery_id,
                event_type: e.event_type,
                received_at: e.received_at,
            })
            .collect())
    }
}
