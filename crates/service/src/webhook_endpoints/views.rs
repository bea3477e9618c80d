//! What the tenant is shown of its endpoints and their attempts, and the endpoint list's cursor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use integrations_events::rfc3339_millis;
use integrations_store::{StoredAttempt, WebhookEndpoint};
use serde::Serialize;

use crate::now_unix;

/// An endpoint as the tenant sees it; never a secret.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookEndpointView {
    /// `ep_…`.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Type filters; empty means every type.
    pub event_types: Vec<String>,
    /// The tenant's note.
    pub description: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Most deliveries per second it receives (more wait their turn); `null`: unlimited.
    pub rate_limit_per_sec: Option<u32>,
    /// Why the service disabled it (410 Gone, failing for days), if it did.
    pub disabled_reason: Option<String>,
    /// Until when the secret replaced by the last rotation still signs (RFC 3339).
    pub previous_secret_expires_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// An endpoint with its signing secret: the answer to create and rotate, the only times the
/// secret is shown.
#[derive(Clone, Serialize)]
pub struct CreatedWebhookEndpoint {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: WebhookEndpointView,
    /// `whsec_<base64>`.
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhookEndpoint")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// One delivery attempt as the tenant lists it.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptView {
    /// Position in the listing.
    pub id: String,
    /// The `webhook-id` sent: the event's id.
    pub webhook_id: String,
    /// The event's type.
    pub event_type: String,
    /// 1 for a delivery's first attempt.
    pub attempt: i64,
    /// RFC 3339.
    pub attempted_at: String,
    /// The endpoint's status, when it answered.
    pub status_code: Option<i64>,
    /// Why there was no answer (timeout, refused destination, connection error).
    pub error: Option<String>,
    /// Time to the answer or the error.
    pub latency_ms: i64,
    /// The first 4 KiB of the answer.
    pub response_body: String,
    /// Whether the endpoint took it (2xx).
    pub succeeded: bool,
    /// The delivery now: `pending` (another attempt is due), `succeeded` or `failed` (no more).
    pub delivery_status: String,
}

/// A page of attempts, newest first.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptPage {
    /// The attempts.
    pub attempts: Vec<AttemptView>,
    /// Pass as `before` for older ones; `null` at the end.
    pub next: Option<String>,
}

/// What a replay queued.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    /// New deliveries, one per matching event.
    pub replayed: usize,
    /// Whether more than [`super::MAX_REPLAY_EVENTS`] matched: replay again from a later time.
    pub truncated: bool,
}

pub(super) fn view(endpoint: &WebhookEndpoint) -> WebhookEndpointView {
    let now = now_unix();
    WebhookEndpointView {
        id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        event_types: endpoint.event_types.clone(),
        description: endpoint.description.clone(),
        enabled: endpoint.enabled,
        rate_limit_per_sec: endpoint.rate_limit_per_sec,
        disabled_reason: endpoint.disabled_reason.clone(),
        previous_secret_expires_at: endpoint
            .previous_secret_expires_at
            .filter(|expires| *expires > now)
            .map(|secs| rfc3339_millis(secs * 1000)),
        created_at: rfc3339_millis(endpoint.created_at * 1000),
        updated_at: rfc3339_millis(endpoint.updated_at * 1000),
    }
}

pub(super) fn attempt_view(row: StoredAttempt) -> AttemptView {
    AttemptView {
        id: row.id.to_string(),
        webhook_id: row.record.event_id,
        event_type: row.event_type,
        attempt: row.record.attempt,
        attempted_at: rfc3339_millis(row.record.attempted_at),
        status_code: row.record.status_code,
        error: row.record.error,
        latency_ms: row.record.latency_ms,
        response_body: row.record.response_body,
        succeeded: row.record.succeeded,
        delivery_status: row.delivery_status,
    }
}

/// The opaque `next` of an endpoint page: where the page ended (creation time and id).
pub(super) fn encode_cursor(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

/// A cursor [`encode_cursor`] made; `None` for any other string.
pub(super) fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let plain = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (created_at, id) = plain.split_once(':')?;
    let id_ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    Some((created_at.parse().ok()?, id.to_owned())).filter(|_| id_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_cursors_round_trip_and_others_are_refused() {
        let cursor = encode_cursor(1_700_000_000, "ep_0a1b");
        assert_eq!(decode_cursor(&cursor), Some((1_700_000_000, "ep_0a1b".to_owned())));
        for bad in [
            "",
            "abc",
            "!!",
            &URL_SAFE_NO_PAD.encode("x:ep_1"),
            &URL_SAFE_NO_PAD.encode("5:ep 1"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }
}
