use std::time::{SystemTime, UNIX_EPOCH};

use integrations_core::{PluginConfig, VerifiedWebhook, WebhookError, WebhookOutcome, WebhookRequest};
use ring::hmac;
use serde_json::Value;

/// Slack's replay window: a request signed longer ago than this (or this far ahead) is refused.
const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Verifies Slack's v0 request signature against the current clock.
pub fn verify(config: &PluginConfig, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    verify_at(config, request, now)
}

/// Verifies `X-Slack-Signature: v0=<hex HMAC-SHA256(signing_secret, "v0:{timestamp}:{body}")>` with
/// `X-Slack-Request-Timestamp` within five minutes of `now` (unix seconds), then reads the body.
fn verify_at(config: &PluginConfig, request: &WebhookRequest, now: i64) -> Result<WebhookOutcome, WebhookError> {
    let signature = request
        .header("x-slack-signature")
        .ok_or(WebhookError::MissingSignature)?;
    let timestamp = request
        .header("x-slack-request-timestamp")
        .ok_or(WebhookError::MissingSignature)?;
    // Without a configured secret nothing can be verified, so nothing is accepted.
    let secret = config.secret("signing_secret").ok_or(WebhookError::InvalidSignature)?;
    check_signature(secret.expose().as_bytes(), timestamp, &request.body, signature, now)?;

    let body: Value =
        serde_json::from_slice(&request.body).map_err(|_| WebhookError::Malformed("body is not JSON".into()))?;
    let kind = body.get("type").and_then(Value::as_str);
    if kind == Some("url_verification") {
        let challenge = body
            .get("challenge")
            .and_then(Value::as_str)
            .ok_or_else(|| WebhookError::Malformed("url_verification without a challenge".into()))?;
        return Ok(WebhookOutcome::Handshake {
            content_type: "text/plain".into(),
            body: challenge.as_bytes().to_vec(),
        });
    }
    let event_type = body.pointer("/event/type").and_then(Value::as_str).or(kind);
    Ok(WebhookOutcome::Event(VerifiedWebhook {
        // Events API retries carry the same `event_id`; other deliveries fall back to the body digest.
        delivery_id: body.get("event_id").and_then(Value::as_str).map(str::to_owned),
        event_type: event_type.map(str::to_owned),
    }))
}

/// The v0 scheme itself, over the raw body as Slack signed it (form or JSON alike).
fn check_signature(secret: &[u8], timestamp: &str, body: &[u8], signature: &str, now: i64) -> Result<(), WebhookError> {
    let signed_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::Malformed("X-Slack-Request-Timestamp is not a number".into()))?;
    if now.abs_diff(signed_at) > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(WebhookError::Malformed(
            "X-Slack-Request-Timestamp is too far from now".into(),
        ));
    }
    let tag = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|hex_tag| hex::decode(hex_tag).ok())
        .ok_or(WebhookError::InvalidSignature)?;
    let mut base = Vec::with_capacity(body.len() + timestamp.len() + 4);
    base.extend_from_slice(b"v0:");
    base.extend_from_slice(timestamp.as_bytes());
    base.push(b':');
    base.extend_from_slice(body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, &base, &tag).map_err(|_| WebhookError::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use integrations_core::Secret;
    use serde_json::Map;

    use super::*;

    /// Slack's published test vector (python-slack-sdk's signature tests).
    const VECTOR_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const VECTOR_TIMESTAMP: &str = "1531420618";
    const VECTOR_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const VECTOR_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: i64 = 1_531_420_618;

    fn config(secret: Option<&str>) -> PluginConfig {
        let mut secrets = BTreeMap::new();
        if let Some(s) = secret {
            secrets.insert("signing_secret".to_owned(), Secret::new(s));
        }
        PluginConfig::new(Map::new(), secrets)
    }

    fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut base = format!("v0:{timestamp}:").into_bytes();
        base.extend_from_slice(body);
        format!("v0={}", hex::encode(hmac::sign(&key, &base).as_ref()))
    }

    fn request(signature: Option<&str>, timestamp: Option<&str>, body: &[u8]) -> WebhookRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(s) = signature {
            headers.insert("x-slack-signature", s.parse().unwrap());
        }
        if let Some(t) = timestamp {
            headers.insert("x-slack-request-timestamp", t.parse().unwrap());
        }
        WebhookRequest {
            headers,
            query: None,
            body: body.to_vec(),
        }
    }

    #[test]
    fn slacks_published_test_vector_verifies() {
        let secret = VECTOR_SECRET.as_bytes();
        let body = VECTOR_BODY.as_bytes();
        check_signature(secret, VECTOR_TIMESTAMP, body, VECTOR_SIGNATURE, NOW).unwrap();
        assert_eq!(sign(VECTOR_SECRET, VECTOR_TIMESTAMP, body), VECTOR_SIGNATURE);
        let mut tampered = body.to_vec();
        tampered[0] = b'T';
        assert!(matches!(
            check_signature(secret, VECTOR_TIMESTAMP, &tampered, VECTOR_SIGNATURE, NOW),
            Err(WebhookError::InvalidSignature)
        ));
        assert!(matches!(
            check_signature(b"other", VECTOR_TIMESTAMP, body, VECTOR_SIGNATURE, NOW),
            Err(WebhookError::InvalidSignature)
        ));
    }

    #[test]
    fn timestamps_outside_five_minutes_are_refused_even_when_signed() {
        let body = VECTOR_BODY.as_bytes();
        let secret = VECTOR_SECRET.as_bytes();
        check_signature(secret, VECTOR_TIMESTAMP, body, VECTOR_SIGNATURE, NOW + 300).unwrap();
        check_signature(secret, VECTOR_TIMESTAMP, body, VECTOR_SIGNATURE, NOW - 300).unwrap();
        for now in [NOW + 301, NOW - 301] {
            assert!(matches!(
                check_signature(secret, VECTOR_TIMESTAMP, body, VECTOR_SIGNATURE, now),
                Err(WebhookError::Malformed(_))
            ));
        }
        assert!(matches!(
            check_signature(secret, "soon", body, VECTOR_SIGNATURE, NOW),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn events_name_their_type_and_event_id() {
        let body = br#"{"type":"event_callback","event_id":"Ev123","event":{"type":"message","text":"hi"}}"#;
        let signature = sign("s3cret", VECTOR_TIMESTAMP, body);
        let outcome = verify_at(
            &config(Some("s3cret")),
            &request(Some(&signature), Some(VECTOR_TIMESTAMP), body),
            NOW,
        )
        .unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Event(VerifiedWebhook {
                delivery_id: Some("Ev123".into()),
                event_type: Some("message".into())
            })
        );
        let bare = br#"{"type":"app_rate_limited"}"#;
        let signature = sign("s3cret", VECTOR_TIMESTAMP, bare);
        let outcome = verify_at(
            &config(Some("s3cret")),
            &request(Some(&signature), Some(VECTOR_TIMESTAMP), bare),
            NOW,
        )
        .unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Event(VerifiedWebhook {
                delivery_id: None,
                event_type: Some("app_rate_limited".into())
            })
        );
    }

    #[test]
    fn url_verification_is_answered_with_the_challenge_only_when_signed() {
        let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let signature = sign("s3cret", VECTOR_TIMESTAMP, body);
        let outcome = verify_at(
            &config(Some("s3cret")),
            &request(Some(&signature), Some(VECTOR_TIMESTAMP), body),
            NOW,
        )
        .unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Handshake {
                content_type: "text/plain".into(),
                body: b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".to_vec()
            }
        );
        let forged = sign("other", VECTOR_TIMESTAMP, body);
        assert!(matches!(
            verify_at(
                &config(Some("s3cret")),
                &request(Some(&forged), Some(VECTOR_TIMESTAMP), body),
                NOW
            ),
            Err(WebhookError::InvalidSignature)
        ));
    }

    #[test]
    fn missing_headers_or_secret_are_refused() {
        let body = br#"{"type":"event_callback"}"#;
        let signature = sign("s3cret", VECTOR_TIMESTAMP, body);
        let cases = [
            (config(Some("s3cret")), request(None, Some(VECTOR_TIMESTAMP), body)),
            (config(Some("s3cret")), request(Some(&signature), None, body)),
            (config(None), request(Some(&signature), Some(VECTOR_TIMESTAMP), body)),
            (
                config(Some("s3cret")),
                request(Some("v0=zz"), Some(VECTOR_TIMESTAMP), body),
            ),
            (
                config(Some("s3cret")),
                request(Some("v1=00"), Some(VECTOR_TIMESTAMP), body),
            ),
        ];
        for (config, request) in cases {
            assert!(verify_at(&config, &request, NOW).is_err());
        }
    }
}
