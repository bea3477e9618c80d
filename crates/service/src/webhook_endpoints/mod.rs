//! Tenants' outbound webhook endpoints: create (with a signing secret shown once), list, change,
//! delete, rotate the secret, list attempts, replay events. Delivery itself is the delivery crate's.

mod fields;
mod views;

use integrations_core::{EndpointId, TenantId};
use integrations_delivery::{matches, normalize_endpoint_url, SigningSecret, ROTATION_OVERLAP};
use integrations_secrets::random_bytes;
use integrations_store::{NewDelivery, Store, WebhookEndpoint, WebhookEndpointSettings};

pub use fields::{ReplayRequest, ReplaySince, WebhookEndpointFields};
pub use views::{AttemptPage, AttemptView, CreatedWebhookEndpoint, ReplayReport, WebhookEndpointView};

use crate::outbound::seal_endpoint_secret;
use crate::state::TenantState;
use crate::{now_unix, FieldError, Service, ServiceError};
use views::{attempt_view, decode_cursor, encode_cursor, view};

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

impl Service {
    /// Creates an endpoint (`url` required) with a fresh signing secret.
    pub async fn create_webhook_endpoint(
        &self,
        tenant_id: &TenantId,
        fields: WebhookEndpointFields,
    ) -> Result<CreatedWebhookEndpoint, ServiceError> {
        let state = self.existing_gate(tenant_id).await?;
        let input = fields.checked()?;
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
            tenant_id: tenant_id.to_string(),
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
        tenant_id: &TenantId,
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
    pub async fn webhook_endpoint(
        &self,
        tenant_id: &TenantId,
        id: &EndpointId,
    ) -> Result<WebhookEndpointView, ServiceError> {
        Ok(view(&self.endpoint_row(tenant_id, id).await?))
    }

    /// Changes the fields given; enabling an endpoint the service disabled clears its reason.
    pub async fn update_webhook_endpoint(
        &self,
        tenant_id: &TenantId,
        id: &EndpointId,
        fields: WebhookEndpointFields,
    ) -> Result<WebhookEndpointView, ServiceError> {
        let state = self.existing_gate(tenant_id).await?;
        let input = fields.checked()?;
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
    pub async fn delete_webhook_endpoint(&self, tenant_id: &TenantId, id: &EndpointId) -> Result<(), ServiceError> {
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
        tenant_id: &TenantId,
        id: &EndpointId,
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
        tenant_id: &TenantId,
        id: &EndpointId,
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
        tenant_id: &TenantId,
        id: &EndpointId,
        since: Option<ReplaySince>,
    ) -> Result<ReplayReport, ServiceError> {
        let endpoint = self.endpoint_row(tenant_id, id).await?;
        let since_ms = since.ok_or_else(|| invalid("since", "is required"))?.unix_millis;
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

    async fn endpoint_row(&self, tenant_id: &TenantId, id: &str) -> Result<WebhookEndpoint, ServiceError> {
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

fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::InvalidWebhookEndpoint(
        vec![FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        }]
        .into(),
    )
}
