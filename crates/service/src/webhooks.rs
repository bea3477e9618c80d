use integrations_core::{TenantId, WebhookError, WebhookOutcome, WebhookRequest};
use integrations_store::{InstallationState, NewWebhookDelivery};

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

impl Service {
    /// Verifies and stores an inbound webhook before it is acknowledged. Every refusal (unknown
    /// tenant or plugin; plugin not installed, disabled or not allowed; failed verification) is
    /// the same [`ServiceError::WebhookRejected`], so a sender learns nothing of who uses what; the
    /// reason goes to the log. A handshake the plugin answers without an installation (Graph's
    /// `validationToken`) is answered, or refused as [`ServiceError::InvalidHandshake`], alike for
    /// every tenant.
    pub async fn receive_webhook(
        &self,
        plugin: &str,
        tenant: &str,
        request: WebhookRequest,
    ) -> Result<WebhookReceipt, ServiceError> {
        let refuse = |reason: Refusal| {
            // The tenant and plugin are the sender's text from the URL: logged quoted (Debug) so
            // that they cannot forge log lines.
            tracing::info!(tenant = ?tenant, plugin = ?plugin, %reason, "webhook refused");
            ServiceError::WebhookRejected
        };
        let registered = self
            .registry
            .get(plugin)
            .ok_or_else(|| refuse(Refusal::UnknownPlugin))?;
        // Answered before the tenant is looked up: the same for every tenant, existing or not.
        if let Some(handshake) = registered.plugin.answer_handshake(&request) {
            return handshake
                .map(|reply| WebhookReceipt::Handshake {
                    content_type: reply.content_type.to_owned(),
                    body: reply.body,
                })
                .map_err(|error| ServiceError::InvalidHandshake(error.to_string()));
        }
        // The tenant is the sender's text: checked here, after the handshake, so that the handshake
        // is answered alike whatever it says.
        let tenant_id = &TenantId::parse(tenant).map_err(|_| refuse(Refusal::UnknownTenant))?;
        let gate = self
            .gate(tenant_id)
            .await?
            .ok_or_else(|| refuse(Refusal::UnknownTenant))?;
        let installation = gate.installation(plugin).ok_or_else(|| refuse(Refusal::NotInstalled))?;
        if installation.state != InstallationState::Enabled {
            return Err(refuse(Refusal::Disabled));
        }
        if !gate.allowed(self, plugin) {
            return Err(refuse(Refusal::NotAllowed));
        }
        let config = match self.plugin_config(&gate, plugin).await {
            Ok(config) => config,
            // Uninstalled since the gate was read: refused like any other target that is not there.
            Err(ServiceError::NotInstalled(_)) => return Err(refuse(Refusal::NotInstalled)),
            Err(other) => return Err(other),
        };
        let outcome = registered
            .plugin
            .verify_webhook(&config, &request)
            .map_err(|error| refuse(Refusal::Verification(error)))?;
        let verified = match outcome {
            WebhookOutcome::Handshake { content_type, body } => {
                return Ok(WebhookReceipt::Handshake { content_type, body })
            }
            WebhookOutcome::Event(verified) => verified,
        };
        // Counted once verified, so that nobody but the vendor can spend the tenant's webhooks
        // (and a 429 tells an unsigned sender nothing); vendors retry a 429.
        self.admit(tenant_id, crate::RateScope::Webhooks).await?;
        let event_id = integrations_events::new_event_id();
        let event = NewWebhookDelivery {
            // Jira signs only the body, not its delivery id header. Without a sender id the body's
            // digest is the delivery's identity, so a signed body replayed without its header is a
            // duplicate rather than a new event.
            delivery_id: verified.delivery_id.unwrap_or_else(|| body_digest(&request.body)),
            id: event_id,
            tenant_id: tenant_id.to_string(),
            plugin: plugin.to_owned(),
            event_type: verified.event_type,
            payload: request.body,
            received_at: now_unix(),
        };
        let (event_id, duplicate) = self.events.ingest(event).await?;
        tracing::info!(tenant = %tenant_id, plugin, event_id, duplicate, "webhook stored");
        Ok(WebhookReceipt::Stored { event_id, duplicate })
    }
}

/// Why a webhook was refused: logged, never told to the sender.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("no such plugin compiled in")]
    UnknownPlugin,
    #[error("no such tenant")]
    UnknownTenant,
    #[error("plugin not installed")]
    NotInstalled,
    #[error("installation disabled")]
    Disabled,
    #[error("plugin not allowed by flags")]
    NotAllowed,
    #[error("verification failed: {0}")]
    Verification(WebhookError),
}

/// The delivery id of a delivery that carries none: `sha256:<hex digest of the body>`.
fn body_digest(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!("sha256:{}", hex::encode(digest.as_ref()))
}
