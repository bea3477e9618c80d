use integrations_core::{PluginConfig, VerifiedWebhook, WebhookError, WebhookOutcome, WebhookRequest};
use ring::hmac;
use serde_json::Value;

/// Verifies `X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>` in constant time;
/// the delivery is `X-Request-UUID` (the same on Bitbucket's retries) and the event `X-Event-Key`.
pub fn verify(config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
    let signature = request
        .header("x-hub-signature")
        .ok_or(WebhookError::MissingSignature)?;
    // Without a configured secret nothing can be verified, so nothing is accepted.
    let secret = config.secret("webhook_secret").ok_or(WebhookError::InvalidSignature)?;
    let tag = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|hex_tag| hex::decode(hex_tag).ok())
        .ok_or(WebhookError::InvalidSignature)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    hmac::verify(&key, &request.body, &tag).map_err(|_| WebhookError::InvalidSignature)?;

    serde_json::from_slice::<Value>(&request.body).map_err(|_| WebhookError::Malformed("body is not JSON".into()))?;
    Ok(WebhookOutcome::Event(VerifiedWebhook {
        delivery_id: request.header("x-request-uuid").map(str::to_owned),
        event_type: request.header("x-event-key").map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use integrations_core::Secret;
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

    fn sign(secret: &str, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
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
    fn rejects_wrong_missing_or_unverifiable_signatures() {
        let body = br#"{"pullrequest":{"id":1}}"#;
        let good = sign("s3cret", body);
        let wrong = sign("other", body);
        let rejected = |config: PluginConfig, signature: Option<&str>, body: &[u8]| {
            verify(&config, &request(signature, body)).err()
        };
        assert!(matches!(
            rejected(config(Some("s3cret")), Some(&wrong), body),
            Some(WebhookError::InvalidSignature)
        ));
        assert!(matches!(
            rejected(config(Some("s3cret")), None, body),
            Some(WebhookError::MissingSignature)
        ));
        assert!(matches!(
            rejected(config(Some("s3cret")), Some("sha256=zz"), body),
            Some(WebhookError::InvalidSignature)
        ));
        assert!(matches!(
            rejected(config(None), Some(&good), body),
            Some(WebhookError::InvalidSignature)
        ));
        assert!(matches!(
            rejected(config(Some("s3cret")), Some(&good), br#"{"pullrequest":{"id":2}}"#),
            Some(WebhookError::InvalidSignature)
        ));
    }
}
