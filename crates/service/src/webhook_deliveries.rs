//! The webhook deliveries the tenant's vendors sent (what `/v1/webhook-events` lists, as they
//! arrived, before they became events), in pages bounded by count and by payload bytes.

use integrations_core::TenantId;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use integrations_store::{DeliveryPosition, WebhookDeliveryQuery};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Service, ServiceError};

/// Deliveries on a page unless the caller asks for another number.
pub const DEFAULT_DELIVERY_PAGE_LIMIT: i64 = 50;

/// Most deliveries a caller may ask for on one page; larger requests are clamped.
pub const MAX_DELIVERY_PAGE_LIMIT: i64 = 500;

/// Most payload bytes on one page (a page always holds at least one delivery, and deliveries are at
/// most 1 MiB on ingest, so a page never loads more than this plus one delivery).
pub const MAX_DELIVERY_PAGE_PAYLOAD_BYTES: u64 = 4 * 1024 * 1024;

/// A stored webhook delivery as the tenant API lists it.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookDeliveryView {
    /// Our id for the delivery.
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

/// One page of the listing.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookDeliveryPage {
    /// The deliveries, newest first (`events` in the API, as it always was).
    #[serde(rename = "events")]
    pub deliveries: Vec<WebhookDeliveryView>,
    /// Where the next page starts; `None` (JSON `null`) when there is no more.
    pub next: Option<DeliveryCursor>,
}

/// An opaque position in a tenant's listing. It only positions: the tenant scope comes from the
/// caller's credentials, so a cursor shown to another tenant reveals nothing of the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryCursor(DeliveryPosition);

/// A cursor string that no page handed out.
#[derive(Debug, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl fmt::Display for DeliveryCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = format!("{}:{}", self.0.received_at, self.0.id);
        f.write_str(&URL_SAFE_NO_PAD.encode(plain))
    }
}

impl FromStr for DeliveryCursor {
    type Err = InvalidCursor;

    fn from_str(encoded: &str) -> Result<Self, Self::Err> {
        let plain = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| InvalidCursor)?;
        let plain = String::from_utf8(plain).map_err(|_| InvalidCursor)?;
        let (received_at, id) = plain.split_once(':').ok_or(InvalidCursor)?;
        let received_at = received_at.parse().map_err(|_| InvalidCursor)?;
        let id_ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !id_ok {
            return Err(InvalidCursor);
        }
        Ok(Self(DeliveryPosition {
            received_at,
            id: id.to_owned(),
        }))
    }
}

impl Serialize for DeliveryCursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeliveryCursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let encoded = String::deserialize(deserializer)?;
        encoded.parse().map_err(serde::de::Error::custom)
    }
}

impl Service {
    /// A page of a tenant's webhook deliveries, newest first, after `after` when given. `limit` is
    /// clamped to 1..=[`MAX_DELIVERY_PAGE_LIMIT`]; the page also ends before exceeding
    /// [`MAX_DELIVERY_PAGE_PAYLOAD_BYTES`] of payload.
    pub async fn list_webhook_deliveries(
        &self,
        tenant_id: &TenantId,
        plugin: Option<&str>,
        after: Option<&DeliveryCursor>,
        limit: i64,
    ) -> Result<WebhookDeliveryPage, ServiceError> {
        let query = WebhookDeliveryQuery {
            plugin,
            after: after.map(|cursor| &cursor.0),
            limit: limit.clamp(1, MAX_DELIVERY_PAGE_LIMIT),
            max_payload_bytes: MAX_DELIVERY_PAGE_PAYLOAD_BYTES,
        };
        let page = self.store.webhook_delivery_page(tenant_id, &query).await?;
        let deliveries = page
            .deliveries
            .into_iter()
            .map(|e| WebhookDeliveryView {
                payload: serde_json::from_slice(&e.payload)
                    .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&e.payload).into_owned())),
                id: e.id,
                plugin: e.plugin,
                delivery_id: e.delivery_id,
                event_type: e.event_type,
                received_at: e.received_at,
            })
            .collect();
        Ok(WebhookDeliveryPage {
            deliveries,
            next: page.next.map(DeliveryCursor),
        })
    }
}
