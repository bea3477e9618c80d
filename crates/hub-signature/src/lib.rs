//! `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`, the signature Jira and
//! Bitbucket Cloud put on their webhooks. One implementation, so that a fix to how the header is
//! read reaches every connector that uses it. [`verify_delivery`] is the whole webhook handler
//! those connectors share: the signature, the body checked to be JSON, and the delivery's id and
//! event type read from where the vendor puts them.

mod delivery;

pub use delivery::{verify_delivery, Delivery, EventTypeFrom};
use integrations_core::{PluginConfig, WebhookError, WebhookRequest};
use ring::hmac;

/// The header the signature comes in.
pub const HEADER: &str = "x-hub-signature";

/// The config secret the tenant stores the signing secret under.
pub const SECRET: &str = "webhook_secret";

/// Checks the request's `X-Hub-Signature` against the body with the tenant's `webhook_secret`;
/// the tag is compared in constant time.
pub fn verify(config: &PluginConfig, request: &WebhookRequest) -> Result<(), WebhookError> {
    let signature = request.header(HEADER).ok_or(WebhookError::MissingSignature)?;
    // Without a configured secret nothing can be verified, so nothing is accepted.
    let secret = config.secret(SECRET).ok_or(WebhookError::InvalidSignature)?;
    let tag = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|hex_tag| hex::decode(hex_tag).ok())
        .ok_or(WebhookError::InvalidSignature)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    hmac::verify(&key, &request.body, &tag).map_err(|_| WebhookError::InvalidSignature)
}

/// The header value a sender with `secret` puts on `body`: for tests, the bench, and anyone
/// writing a stand-in sender.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use integrations_core::Secret;
    use serde_json::Map;

    use super::*;

    const BODY: &[u8] = br#"{"webhookEvent":"jira:issue_created"}"#;

    fn config(secret: Option<&str>) -> PluginConfig {
        let mut secrets = BTreeMap::new();
        if let Some(s) = secret {
            secrets.insert(SECRET.to_owned(), Secret::new(s));
        }
        PluginConfig::new(Map::new(), secrets)
    }

    fn request(signature: Option<&str>, body: &[u8]) -> WebhookRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(s) = signature {
            headers.insert(HEADER, s.parse().unwrap());
        }
        WebhookRequest {
            headers,
            query: None,
            body: body.to_vec(),
        }
    }

    fn verdict(secret: Option<&str>, signature: Option<&str>, body: &[u8]) -> Result<(), WebhookError> {
        verify(&config(secret), &request(signature, body))
    }

    #[test]
    fn accepts_the_senders_signature_with_or_without_surrounding_space() {
        let signature = sign("s3cret", BODY);
        assert!(verdict(Some("s3cret"), Some(&signature), BODY).is_ok());
        assert!(verdict(Some("s3cret"), Some(&format!(" {signature} ")), BODY).is_ok());
    }

    #[test]
    fn a_known_answer_pins_the_scheme() {
        // HMAC-SHA256 of "The quick brown fox jumps over the lazy dog" under "key", the widely
        // published example.
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn refuses_what_the_secret_did_not_sign() {
        let good = sign("s3cret", BODY);
        let missing = verdict(Some("s3cret"), None, BODY);
        assert!(matches!(missing, Err(WebhookError::MissingSignature)), "{missing:?}");
        let refused = [
            (
                "another secret",
                verdict(Some("s3cret"), Some(&sign("other", BODY)), BODY),
            ),
            ("no secret configured", verdict(None, Some(&good), BODY)),
            (
                "a changed body",
                verdict(Some("s3cret"), Some(&good), br#"{"webhookEvent":"x"}"#),
            ),
            ("not hex", verdict(Some("s3cret"), Some("sha256=zz"), BODY)),
            (
                "another algorithm",
                verdict(Some("s3cret"), Some(&good.replacen("sha256", "sha1", 1)), BODY),
            ),
            (
                "a truncated tag",
                verdict(Some("s3cret"), Some(&good[..good.len() - 2]), BODY),
            ),
            ("an empty tag", verdict(Some("s3cret"), Some("sha256="), BODY)),
        ];
        for (case, verdict) in refused {
            assert!(
                matches!(verdict, Err(WebhookError::InvalidSignature)),
                "{case}: {verdict:?}"
            );
        }
    }
}
