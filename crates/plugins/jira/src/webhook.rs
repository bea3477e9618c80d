use integrations_core::{PluginConfig, VerifiedWebhook, WebhookError, WebhookOutcome, WebhookRequest};

/// Verifies `X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, body)>`.
pub fn verify(config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
    integrations_hub_signature::verify(config, request)?;
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
