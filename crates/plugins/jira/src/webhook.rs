use integrations_core::{PluginConfig, VerifiedWebhook, WebhookError, WebhookOutcome, WebhookRequest};
use ring::hmac;

/// Verifies `X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, body)>`.
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

    let event_type = match serde_json::from_slice::<Envelope>(&request.body) {
        Ok(envelope) => envelope.webhook_event.and_then(EventName::into_string),
        // JSON that is not an object names no event; anything else is not JSON at all.
        Err(_) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(&request.body)
                .map_err(|_| WebhookError::Malformed("body is not JSON".into()))?;
            None
        }
    };
    Ok(WebhookOutcome::Event(VerifiedWebhook {
        delivery_id: request.header("x-atlassian-webhook-identifier").map(str::to_owned),
        event_type,
    }))
}

/// The one field read from a delivery; the rest of the body is checked to be JSON but not built
/// into a document (this runs for every delivery).
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "webhookEvent", borrow, default)]
    webhook_event: Option<EventName<'a>>,
}

/// `webhookEvent` as sent: a string names the event; any other JSON value names none.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum EventName<'a> {
    Name(#[serde(borrow)] std::borrow::Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

impl EventName<'_> {
    fn into_string(self) -> Option<String> {
        match self {
            Self::Name(name) => Some(name.into_owned()),
            Self::Other(_) => None,
        }
    }
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
        headers.insert("x-atlassian-webhook-identifier", "delivery-1".parse().unwrap());
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
    fn rejects_wrong_missing_or_unverifiable_signatures() {
        let body = br#"{"webhookEvent":"jira:issue_created"}"#;
        let wrong = sign("other", body);
        assert!(matches!(
            verify(&config(Some("s3cret")), &request(Some(&wrong), body)),
            Err(WebhookError::InvalidSignature)
        ));
        assert!(matches!(
            verify(&config(Some("s3cret")), &request(None, body)),
            Err(WebhookError::MissingSignature)
        ));
        assert!(matches!(
            verify(&config(Some("s3cret")), &request(Some("sha256=zz"), body)),
            Err(WebhookError::InvalidSignature)
        ));
        let good = sign("s3cret", body);
        assert!(matches!(
            verify(&config(None), &request(Some(&good), body)),
            Err(WebhookError::InvalidSignature)
        ));
        let tampered = br#"{"webhookEvent":"jira:issue_deleted"}"#;
        assert!(matches!(
            verify(&config(Some("s3cret")), &request(Some(&good), tampered)),
            Err(WebhookError::InvalidSignature)
        ));
    }
}
