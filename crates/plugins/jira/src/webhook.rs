use integrations_core::{PluginConfig, WebhookError, WebhookOutcome, WebhookRequest};
use integrations_hub_signature::{Delivery, EventTypeFrom};

/// A Jira admin webhook: `X-Atlassian-Webhook-Identifier` (the same on Jira's retries) and the
/// body's `webhookEvent`.
const DELIVERY: Delivery = Delivery {
    id_header: "x-atlassian-webhook-identifier",
    event_type: EventTypeFrom::BodyField("webhookEvent"),
};

/// Verifies `X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, body)>`.
pub fn verify(config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
    integrations_hub_signature::verify_delivery(config, request, &DELIVERY)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use integrations_core::{Secret, VerifiedWebhook};
    use integrations_hub_signature::sign;
    use serde_json::Map;

    use super::*;

    fn config(secret: Option<&str>) -> PluginConfig {
        let mut secrets = BTreeMap::new();
        if let Some(s) = secret {
            secrets.insert("webhook_secret".to_owned(), Secret::new(s));
        }
        PluginConfig::new(Map::new(), secrets)
    }

    fn request(signature: Option<&str>, body: &[u8]) -> WebhookRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(s) = signature {
            headers.insert("x-hub-signature", s.parse().unwrap());
        }
        headers.insert("x-atlassian-webhook-identifier", "delivery-1".parse().unwrap());
        WebhookRequest {
            headers,
            query: None,
            body: body.to_vec(),
        }
    }

    #[test]
    fn accepts_a_valid_signature() {
        let body = br#"{"webhookEvent":"jira:issue_created"}"#;
        let outcome = verify(&config(Some("s3cret")), &request(Some(&sign("s3cret", body)), body)).unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Event(VerifiedWebhook {
                delivery_id: Some("delivery-1".into()),
                event_type: Some("jira:issue_created".into())
            })
        );
    }

    #[test]
    fn refuses_a_signature_the_secret_did_not_make_or_none() {
        // The scheme's other refusals are tested with it, in integrations-hub-signature.
        let body = br#"{"webhookEvent":"jira:issue_created"}"#;
        assert!(matches!(
            verify(&config(Some("s3cret")), &request(Some(&sign("other", body)), body)),
            Err(WebhookError::InvalidSignature)
        ));
        assert!(matches!(
            verify(&config(Some("s3cret")), &request(None, body)),
            Err(WebhookError::MissingSignature)
        ));
    }
}
