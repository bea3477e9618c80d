//! Tenants' outbound webhook endpoints: create (with a signing secret shown once), list, change,
//! delete, rotate the secret, list attempts, replay events. Delivery itself is the delivery crate's.

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use integrations_delivery::{
    matches, normalize_endpoint_url, validate_filters, InvalidFilter, SigningSecret, ROTATION_OVERLAP,
};
use integrations_events::{parse_rfc3339_millis, rfc3339_millis};
use integrations_secrets::random_bytes;
use integrations_store::{NewDelivery, Store, StoredAttempt, WebhookEndpoint, WebhookEndpointSettings};
use serde::Serialize;
use serde_json::Value;

use crate::outbound::seal_endpoint_secret;
use crate::state::TenantState;
use crate::{now_unix, FieldError, Service, ServiceError};

/// Most attempts on one page.
pub const MAX_ATTEMPT_PAGE: i64 = 100;

/// Most endpoints on one page of the list.
pub const MAX_ENDPOINT_PAGE: i64 = 500;

/// Most events one replay sends again; `truncated` says when there were more.
pub const MAX_REPLAY_EVENTS: usize = 10_000;

/// Events a replay reads per query (and deliveries it writes per transaction).
const REPLAY_PAGE: i64 = 500;

/// How long a replay's mark keeps others off its endpoint if its replica dies before clearing it.
const REPLAY_MARK: std::time::Duration = std::time::Duration::from_secs(600);

/// Highest `rate_limit_per_sec` accepted.
pub const MAX_ENDPOINT_RATE_PER_SEC: u32 = 10_000;

/// Longest description accepted.
const MAX_DESCRIPTION_CHARS: usize = 1024;

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
    /// Whether more than [`MAX_REPLAY_EVENTS`] matched: replay again from a later time.
    pub truncated: bool,
}

/// The fields of a create or change request.
#[derive(Default)]
struct EndpointInput {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
    /// `Some(None)`: set to unlimited.
    rate_limit_per_sec: Option<Option<u32>>,
}

impl Service {
    /// Creates an endpoint (`url` required) with a fresh signing secret.
    pub async fn create_webhook_endpoint(
        &self,
        tenant_id: &str,
        body: Value,
    ) -> Result<CreatedWebhookEndpoint, ServiceError> {
        let state = self.existing_gate(tenant_id).await?;
        let input = parse_input(body)?;
        let Some(url) = input.url else {
            return Err(invalid("url", "is required"));
        };
        let url = self.check_endpoint_url(&state, &url).await?;
        let secret = SigningSecret::generate().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let id = format!("ep_{}", hex::encode(random_bytes::<12>()?));
        let key = self.data_key(tenant_id).await?;
        let now = now_unix();
        let endpoint = WebhookEndpoint {
            secret: seal_endpoint_secret(&key, tenant_id, &id, &secret)?,
            id,
            tenant_id: tenant_id.to_owned(),
            url,
            event_types: input.event_types.unwrap_or_default(),
            description: input.description.unwrap_or_default(),
            enabled: input.enabled.unwrap_or(true),
            disabled_reason: None,
            previous_secret: None,
            previous_secret_expires_at: None,
            failing_since: None,
            start_seq: 0,
            created_at: now,
            updated_at: now,
            rate_limit_per_sec: input.rate_limit_per_sec.flatten(),
        };
        let limit = self.effective_limits(tenant_id).await?.max_webhook_endpoints;
        let Some(stored) = self.store.insert_webhook_endpoint(&endpoint, limit).await? else {
            return Err(ServiceError::QuotaExceeded {
                resource: "webhook endpoints",
                limit,
            });
        };
        Ok(CreatedWebhookEndpoint {
            endpoint: view(&stored),
            secret: secret.expose_whsec(),
        })
    }

    /// A page of the tenant's endpoints, oldest first, after `after` (the `next` of an earlier
    /// page); `limit` is clamped to 1..=[`MAX_ENDPOINT_PAGE`]. Returns the page and the `next`
    /// cursor, `None` at the end.
    pub async fn list_webhook_endpoints(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<WebhookEndpointView>, Option<String>), ServiceError> {
        self.existing_gate(tenant_id).await?;
        let after = after
            .map(|cursor| decode_cursor(cursor).ok_or_else(|| ServiceError::InvalidRequest("invalid cursor".into())))
            .transpose()?;
        let limit = limit.clamp(1, MAX_ENDPOINT_PAGE);
        let mut endpoints = self
            .store
            .webhook_endpoints_page(tenant_id, after.as_ref().map(|(at, id)| (*at, id.as_str())), limit + 1)
            .await?;
        let more = endpoints.len() as i64 > limit;
        endpoints.truncate(limit as usize);
        let next = endpoints
            .last()
            .filter(|_| more)
            .map(|last| encode_cursor(last.created_at, &last.id));
        Ok((endpoints.iter().map(view).collect(), next))
    }

    /// One of the tenant's endpoints; another tenant's is not found.
    pub async fn webhook_endpoint(&self, tenant_id: &str, id: &str) -> Result<WebhookEndpointView, ServiceError> {
        Ok(view(&self.endpoint_row(tenant_id, id).await?))
    }

    /// Changes the fields given; enabling an endpoint the service disabled clears its reason.
    pub async fn update_webhook_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        body: Value,
    ) -> Result<WebhookEndpointView, ServiceError> {
        let state = self.existing_gate(tenant_id).await?;
        let input = parse_input(body)?;
        let current = self.endpoint_row(tenant_id, id).await?;
        let url = match &input.url {
            Some(url) => self.check_endpoint_url(&state, url).await?,
            None => current.url,
        };
        let settings = WebhookEndpointSettings {
            url,
            event_types: input.event_types.unwrap_or(current.event_types),
            description: input.description.unwrap_or(current.description),
            enabled: input.enabled.unwrap_or(current.enabled),
            rate_limit_per_sec: input.rate_limit_per_sec.unwrap_or(current.rate_limit_per_sec),
        };
        if !self.store.update_webhook_endpoint(tenant_id, id, &settings).await? {
            return Err(ServiceError::WebhookEndpointNotFound);
        }
        if settings.enabled {
            // Deliveries held while it was disabled are due again.
            self.wake_outbound();
        }
        self.webhook_endpoint(tenant_id, id).await
    }

    /// Deletes an endpoint with its pending deliveries and its attempts.
    pub async fn delete_webhook_endpoint(&self, tenant_id: &str, id: &str) -> Result<(), ServiceError> {
        self.existing_gate(tenant_id).await?;
        if !self.store.delete_webhook_endpoint(tenant_id, id).await? {
            return Err(ServiceError::WebhookEndpointNotFound);
        }
        Ok(())
    }

    /// Replaces the signing secret; the old one keeps signing deliveries for 24 hours, so
    /// receivers can switch without losing any.
    pub async fn rotate_webhook_endpoint_secret(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<CreatedWebhookEndpoint, ServiceError> {
        self.endpoint_row(tenant_id, id).await?;
        let secret = SigningSecret::generate().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let key = self.data_key(tenant_id).await?;
        let sealed = seal_endpoint_secret(&key, tenant_id, id, &secret)?;
        let expires = now_unix() + ROTATION_OVERLAP.as_secs() as i64;
        if !self
            .store
            .rotate_webhook_endpoint_secret(tenant_id, id, &sealed, expires)
            .await?
        {
            return Err(ServiceError::WebhookEndpointNotFound);
        }
        Ok(CreatedWebhookEndpoint {
            endpoint: self.webhook_endpoint(tenant_id, id).await?,
            secret: secret.expose_whsec(),
        })
    }

    /// The endpoint's attempts, newest first, older than `before` (a `next` of an earlier page).
    pub async fn list_webhook_attempts(
        &self,
        tenant_id: &str,
        id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<AttemptPage, ServiceError> {
        self.endpoint_row(tenant_id, id).await?;
        let before = before
            .map(|cursor| cursor.parse::<i64>().ok().filter(|n| *n > 0))
            .map(|parsed| parsed.ok_or_else(|| ServiceError::InvalidRequest("invalid cursor".into())))
            .transpose()?;
        let limit = limit.clamp(1, MAX_ATTEMPT_PAGE);
        let mut rows = self.store.webhook_attempts(tenant_id, id, before, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(|row| row.id.to_string())).flatten();
        Ok(AttemptPage {
            attempts: rows.into_iter().map(attempt_view).collect(),
            next,
        })
    }

    /// Sends the tenant's events matching the endpoint's filters that occurred since `since`
    /// (RFC 3339 or unix seconds) again, as new deliveries carrying each event's id as before.
    /// Only the events' positions and types are read. One replay per endpoint at a time: another
    /// while one is being written is [`ServiceError::ReplayInProgress`].
    pub async fn replay_webhook_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        since: &Value,
    ) -> Result<ReplayReport, ServiceError> {
        let endpoint = self.endpoint_row(tenant_id, id).await?;
        let since_ms = parse_since(since)?;
        let now_ms = now_unix_millis();
        let mark = now_ms + REPLAY_MARK.as_millis() as i64;
        if !self.store.begin_replay(tenant_id, id, now_ms, mark).await? {
            return match self.store.webhook_endpoint(tenant_id, id).await? {
                Some(_) => Err(ServiceError::ReplayInProgress),
                None => Err(ServiceError::WebhookEndpointNotFound),
            };
        }
        // Written by a task of its own, so a caller that goes away does not stop it halfway and
        // leave the endpoint marked until the mark lapses.
        let first_delay_ms = self.first_attempt_at(0);
        let store = self.store.clone();
        let replay = tokio::spawn(async move {
            let report = write_replay(&store, &endpoint, since_ms, first_delay_ms).await;
            if let Err(error) = store.end_replay(&endpoint.id, mark).await {
                tracing::warn!(%error, endpoint = %endpoint.id, "could not clear a replay's mark; it lapses");
            }
            report
        });
        let report = replay
            .await
            .map_err(|error| ServiceError::Internal(format!("replay task: {error}")))??;
        self.wake_outbound();
        Ok(report)
    }

    async fn endpoint_row(&self, tenant_id: &str, id: &str) -> Result<WebhookEndpoint, ServiceError> {
        self.existing_gate(tenant_id).await?;
        self.store
            .webhook_endpoint(tenant_id, id)
            .await?
            .ok_or(ServiceError::WebhookEndpointNotFound)
    }

    /// Parses the URL as given (refusing what does not parse cleanly) and checks its normalised
    /// form by the same rules as a tenant's vendor URLs (the tenant's own client decides);
    /// returns that form, the one to store and deliver to.
    async fn check_endpoint_url(&self, state: &TenantState, given: &str) -> Result<String, ServiceError> {
        let url = normalize_endpoint_url(given).map_err(|error| invalid("url", &error.to_string()))?;
        self.tenant_http(state)?
            .check_destination(&url)
            .await
            .map_err(|error| invalid("url", &error.to_string()))?;
        Ok(url)
    }
}

/// Writes a replay's deliveries a page of events at a time (positions and types only).
async fn write_replay(
    store: &Store,
    endpoint: &WebhookEndpoint,
    since_ms: i64,
    first_delay_ms: i64,
) -> Result<ReplayReport, ServiceError> {
    let (mut after, mut replayed, mut truncated) = (0, 0, false);
    loop {
        let events = store
            .tenant_event_types_since(&endpoint.tenant_id, since_ms, after, REPLAY_PAGE)
            .await?;
        let Some((last, _)) = events.last() else { break };
        after = *last;
        let next_attempt_at = now_unix_millis() + first_delay_ms;
        let mut deliveries = Vec::new();
        for (seq, _) in events
            .iter()
            .filter(|(_, event_type)| matches(&endpoint.event_types, event_type))
        {
            if replayed == MAX_REPLAY_EVENTS {
                truncated = true;
                break;
            }
            deliveries.push(NewDelivery {
                tenant_id: endpoint.tenant_id.clone(),
                endpoint_id: endpoint.id.clone(),
                event_seq: *seq,
                next_attempt_at,
            });
            replayed += 1;
        }
        store.insert_deliveries(&deliveries).await?;
        if truncated {
            break;
        }
    }
    Ok(ReplayReport { replayed, truncated })
}

/// Now, unix milliseconds.
fn now_unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The opaque `next` of an endpoint page: where the page ended (creation time and id).
fn encode_cursor(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

/// A cursor [`encode_cursor`] made; `None` for any other string.
fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let plain = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (created_at, id) = plain.split_once(':')?;
    let id_ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    Some((created_at.parse().ok()?, id.to_owned())).filter(|_| id_ok)
}

fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::InvalidWebhookEndpoint(
        vec![FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        }]
        .into(),
    )
}

/// Reads the known fields, naming each wrong one.
fn parse_input(body: Value) -> Result<EndpointInput, ServiceError> {
    let Value::Object(fields) = body else {
        return Err(invalid("", "must be a JSON object"));
    };
    let mut errors = Vec::new();
    let mut error = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        })
    };
    let mut input = EndpointInput::default();
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("rate_limit_per_sec", Value::Null) => input.rate_limit_per_sec = Some(None),
            ("rate_limit_per_sec", Value::Number(rate)) if rate_in_range(&rate) => {
                input.rate_limit_per_sec = Some(rate.as_u64().and_then(|r| u32::try_from(r).ok()))
            }
            ("rate_limit_per_sec", _) => error(
                "rate_limit_per_sec",
                &format!("must be null or a whole number from 1 to {MAX_ENDPOINT_RATE_PER_SEC}"),
            ),
            (_, Value::Null) if name != "url" => {}
            ("url", Value::String(url)) => input.url = Some(url),
            ("url", _) => error("url", "must be a string"),
            ("description", Value::String(text)) if text.chars().count() <= MAX_DESCRIPTION_CHARS => {
                input.description = Some(text)
            }
            ("description", _) => error(
                "description",
                &format!("must be a string of at most {MAX_DESCRIPTION_CHARS} characters"),
            ),
            ("enabled", Value::Bool(enabled)) => input.enabled = Some(enabled),
            ("enabled", _) => error("enabled", "must be true or false"),
            ("event_types", value) => match event_types(value) {
                Ok(types) => input.event_types = Some(types),
                Err((field, message)) => error(&field, &message),
            },
            (other, _) => error(other, "is not a field of a webhook endpoint"),
        }
    }
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(ServiceError::InvalidWebhookEndpoint(errors.into()))
    }
}

fn rate_in_range(rate: &serde_json::Number) -> bool {
    rate.as_u64()
        .is_some_and(|rate| (1..=u64::from(MAX_ENDPOINT_RATE_PER_SEC)).contains(&rate))
}

fn event_types(value: Value) -> Result<Vec<String>, (String, String)> {
    let Value::Array(items) = value else {
        return Err(("event_types".into(), "must be a list of event types".into()));
    };
    let mut types = Vec::with_capacity(items.len());
    for (position, item) in items.into_iter().enumerate() {
        match item {
            Value::String(text) => types.push(text),
            _ => return Err((format!("event_types.{position}"), "must be a string".into())),
        }
    }
    match validate_filters(&types) {
        Ok(()) => {
            // Order kept, repeats dropped.
            let mut seen = BTreeSet::new();
            types.retain(|t| seen.insert(t.clone()));
            Ok(types)
        }
        Err(InvalidFilter::Malformed(position)) => Err((
            format!("event_types.{position}"),
            "must be dot-separated words of letters, digits, '_' or '-', optionally ending in \".*\", or \"*\"".into(),
        )),
        Err(too_many) => Err(("event_types".into(), too_many.to_string())),
    }
}

/// RFC 3339, or unix seconds as a number or a string of digits, as unix milliseconds.
fn parse_since(since: &Value) -> Result<i64, ServiceError> {
    let invalid_since = || invalid("since", "must be an RFC 3339 time or unix seconds");
    match since {
        Value::Number(number) => number
            .as_i64()
            .filter(|secs| *secs >= 0)
            .map(|secs| secs.saturating_mul(1000))
            .ok_or_else(invalid_since),
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text
            .parse::<i64>()
            .map(|secs| secs.saturating_mul(1000))
            .map_err(|_| invalid_since()),
        Value::String(text) => parse_rfc3339_millis(text).ok_or_else(invalid_since),
        Value::Null => Err(invalid("since", "is required")),
        _ => Err(invalid_since()),
    }
}

fn view(endpoint: &WebhookEndpoint) -> WebhookEndpointView {
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

fn attempt_view(row: StoredAttempt) -> AttemptView {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

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

    #[test]
    fn since_is_rfc3339_or_unix_seconds() {
        assert_eq!(parse_since(&json!(1_700_000_000)).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_since(&json!("1700000000")).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_since(&json!("2023-11-14T22:13:20Z")).unwrap(), 1_700_000_000_000);
        for bad in [json!(null), json!(-1), json!(1.5), json!("soon"), json!([1])] {
            assert!(parse_since(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_read_strictly_and_repeated_filters_dropped() {
        let input =
            parse_input(json!({"url": "https://x.example/h", "event_types": ["a.*", "b", "a.*"], "description": null}))
                .unwrap();
        assert_eq!(input.event_types.unwrap(), ["a.*", "b"]);
        assert_eq!(input.description, None);
        let Err(ServiceError::InvalidWebhookEndpoint(errors)) =
            parse_input(json!({"url": null, "enabled": 1, "event_types": [1], "secret": "x"}))
        else {
            panic!("refused expected");
        };
        let fields: Vec<&str> = errors.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["enabled", "event_types.0", "secret", "url"]);
    }

    #[test]
    fn a_rate_limit_is_a_whole_number_in_range_or_null_for_none() {
        let rate = |value: Value| parse_input(json!({"rate_limit_per_sec": value})).map(|i| i.rate_limit_per_sec);
        assert_eq!(rate(json!(2)).unwrap(), Some(Some(2)));
        assert_eq!(
            rate(json!(MAX_ENDPOINT_RATE_PER_SEC)).unwrap(),
            Some(Some(MAX_ENDPOINT_RATE_PER_SEC))
        );
        assert_eq!(rate(json!(null)).unwrap(), Some(None));
        assert_eq!(
            parse_input(json!({})).unwrap().rate_limit_per_sec,
            None,
            "absent: unchanged"
        );
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("2"),
            json!(MAX_ENDPOINT_RATE_PER_SEC + 1),
        ] {
            let Err(ServiceError::InvalidWebhookEndpoint(errors)) = rate(bad.clone()) else {
                panic!("{bad} refused expected");
            };
            assert_eq!(errors.errors[0].field, "rate_limit_per_sec");
        }
    }
}
