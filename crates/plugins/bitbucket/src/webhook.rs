use integrations_core::{PluginConfig, WebhookError, WebhookOutcome, WebhookRequest};
use integrations_hub_signature::{Delivery, EventTypeFrom};

/// A Bitbucket webhook: `X-Request-UUID` (the same on Bitbucket's retries) and `X-Event-Key`.
const DELIVERY: Delivery = Delivery {
    id_header: "x-request-uuid",
    event_type: EventTypeFrom::Header("x-event-key"),
};

/// Verifies `X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>` in constant time.
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
        headers.insert(
            "x-request-uuid",
            "2f1ad0e6-6c0a-4c5e-9c4e-0f5b1d1c1a01".parse().unwrap(),
        );
        headers.insert("x-event-key", "pullrequest:created".parse().unwrap());
        WebhookRequest {
            headers,
            query: None,
            body: body.to_vec(),
        }
    }

    #[test]
    fn accepts_a_valid_signature() {
        let body = br#"{"pullrequest":{"id":1}}"#;
        let outcome = verify(&config(Some("s3cret")), &request(Some(&sign("s3cret", body)), body)).unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Event(VerifiedWebhook {
                delivery_id: Some("2f1ad0e6-6c0a-4c5e-9c4e-0f5b1d1c1a01".into()),
                event_type: Some("pullrequest:created".into())
            })
        );
    }

    #[test]
    fn refuses_a_signature_the_secret_did_not_make_or_none() {
        // The scheme's other refusals are tested with it, in integrations-hub-signature.
        let body = br#"{"pullrequest":{"id":1}}"#;
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
