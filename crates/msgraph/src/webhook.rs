//! Graph change notifications, as both connectors receive them on their webhook URL.
//!
//! Creating a subscription, Graph first sends `POST {notificationUrl}?validationToken=…` and expects
//! the decoded token back as `text/plain` within 10 s. That handshake needs no installation: the
//! host answers it before it looks the tenant up ([`validation_handshake`]), identically for every
//! tenant, so it reveals nothing of who has Teams or SharePoint. Notifications then arrive as
//! `{"value":[{subscriptionId, clientState, changeType, resource, …}]}`; Graph signs nothing, so the
//! `clientState` chosen at subscription time is the only proof of origin and every item must carry it.

use integrations_core::{
    EventData, HandshakeReply, NormalizedEvent, PluginConfig, VerifiedWebhook, WebhookDelivery, WebhookError,
    WebhookOutcome, WebhookRequest,
};
use ring::hmac;
use serde_json::Value;

/// The config field holding the subscription's `clientState`.
const CLIENT_STATE_FIELD: &str = "client_state";
/// Graph's validation tokens are a sentence and a request id (about 100 bytes); anything far
/// longer is not one, and the echo of an arbitrary text stays short.
pub const MAX_VALIDATION_TOKEN_BYTES: usize = 1024;
/// Event type of a batch whose items do not share one `changeType` (or `lifecycleEvent`).
const MIXED_EVENT_TYPE: &str = "change_notification";

/// Answers the validation handshake ([`validation_handshake`]), or accepts a batch of
/// notifications whose every `clientState` matches the installation's `client_state`. Without a
/// configured `client_state` no notification is accepted.
///
/// The delivery id is left to the host (the digest of the body: Graph retries a batch unchanged);
/// the event type is the batch's common `changeType` (`created`, `updated`, `deleted`) or
/// `lifecycleEvent` (`reauthorizationRequired`, …), else `change_notification`.
pub fn verify_change_notification(
    config: &PluginConfig,
    request: &WebhookRequest,
) -> Result<WebhookOutcome, WebhookError> {
    if let Some(handshake) = validation_handshake(request) {
        return handshake.map(|reply| WebhookOutcome::Handshake {
            content_type: reply.content_type.into(),
            body: reply.body,
        });
    }
    let client_state = config
        .secret(CLIENT_STATE_FIELD)
        .ok_or(WebhookError::InvalidSignature)?;
    let body: Value =
        serde_json::from_slice(&request.body).map_err(|_| WebhookError::Malformed("body is not JSON".into()))?;
    let items = body
        .get("value")
        .and_then(Value::as_array)
        .filter(|items| !items.is_empty())
        .ok_or_else(|| WebhookError::Malformed("no notifications in `value`".into()))?;
    let expected = ClientState::new(client_state.expose());
    for item in items {
        let sent = item.get("clientState").and_then(Value::as_str);
        if !sent.is_some_and(|sent| expected.matches(sent)) {
            return Err(WebhookError::InvalidSignature);
        }
    }
    Ok(WebhookOutcome::Event(VerifiedWebhook {
        delivery_id: None,
        event_type: Some(event_type(items)),
    }))
}

/// Graph's subscription validation: the decoded `validationToken` echoed as `text/plain`, the same
/// whatever the tenant or its config; `None` when the request carries no `validationToken`. An
/// empty token, or one over [`MAX_VALIDATION_TOKEN_BYTES`], is malformed.
pub fn validation_handshake(request: &WebhookRequest) -> Option<Result<HandshakeReply, WebhookError>> {
    let token = validation_token(request.query.as_deref())?;
    if token.is_empty() || token.len() > MAX_VALIDATION_TOKEN_BYTES {
        return Some(Err(WebhookError::Malformed(format!(
            "validationToken must be 1 to {MAX_VALIDATION_TOKEN_BYTES} bytes long"
        ))));
    }
    Some(Ok(HandshakeReply {
        content_type: "text/plain",
        body: token.into_bytes(),
    }))
}

/// The `validationToken` query parameter, percent- and `+`-decoded as Graph encodes it.
fn validation_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "validationToken")
        .map(|(_, value)| value.into_owned())
}

fn event_type(items: &[Value]) -> String {
    let common = |field: &str| {
        let first = items[0].get(field).and_then(Value::as_str)?;
        items
            .iter()
            .all(|item| item.get(field).and_then(Value::as_str) == Some(first))
            .then(|| first.to_owned())
    };
    common("changeType")
        .or_else(|| common("lifecycleEvent"))
        .unwrap_or_else(|| MIXED_EVENT_TYPE.to_owned())
}

/// The configured `clientState`, compared in constant time: both sides go through HMAC under a
/// fixed key and `ring` compares the tags, so timing reveals neither content nor length.
struct ClientState {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl ClientState {
    fn new(expected: &str) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"integrations-msgraph clientState");
        let tag = hmac::sign(&key, expected.as_bytes());
        Self { key, tag }
    }

    fn matches(&self, sent: &str) -> bool {
        hmac::verify(&self.key, sent.as_bytes(), self.tag.as_ref()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use integrations_core::Secret;
    use serde_json::{json, Map};

    use super::*;

    fn config(client_state: Option<&str>) -> PluginConfig {
        let mut secrets = BTreeMap::new();
        if let Some(state) = client_state {
            secrets.insert("client_state".to_owned(), Secret::new(state));
        }
        PluginConfig::new(Map::new(), secrets)
    }

    fn request(query: Option<&str>, body: &Value) -> WebhookRequest {
        WebhookRequest {
            headers: http::HeaderMap::new(),
            query: query.map(str::to_owned),
            body: if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
        }
    }

    fn notification(client_state: &str, change: &str) -> Value {
        json!({
            "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
            "clientState": client_state,
            "changeType": change,
            "resource": "teams('t')/channels('c')/messages('1')",
            "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            "resourceData": {"id": "1"}
        })
    }

    #[test]
    fn the_validation_token_is_echoed_decoded_as_text() {
        let query =
            "validationToken=Validation%3a+Testing+client+application+reachability+for+subscription+Request-Id%3a+b8a9";
        let outcome = verify_change_notification(&config(Some("s")), &request(Some(query), &Value::Null)).unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Handshake {
                content_type: "text/plain".into(),
                body: b"Validation: Testing client application reachability for subscription Request-Id: b8a9".to_vec()
            }
        );
        // The same answer without any config: the host gives it before looking the tenant up.
        assert_eq!(
            verify_change_notification(&config(None), &request(Some(query), &Value::Null)).unwrap(),
            outcome
        );
        assert_eq!(
            validation_handshake(&request(Some(query), &Value::Null))
                .unwrap()
                .unwrap(),
            HandshakeReply {
                content_type: "text/plain",
                body: b"Validation: Testing client application reachability for subscription Request-Id: b8a9".to_vec()
            }
        );
        assert!(validation_handshake(&request(Some("other=1"), &Value::Null)).is_none());
        assert!(validation_handshake(&request(None, &Value::Null)).is_none());
    }

    #[test]
    fn a_validation_token_empty_or_over_the_limit_is_malformed() {
        let longest = format!("validationToken={}", "a".repeat(MAX_VALIDATION_TOKEN_BYTES));
        assert!(matches!(
            validation_handshake(&request(Some(&longest), &Value::Null)),
            Some(Ok(_))
        ));
        // Counted decoded: 1,023 characters plus one percent-encoded byte is 1,024 bytes.
        let encoded = format!("validationToken={}%3A", "a".repeat(MAX_VALIDATION_TOKEN_BYTES - 1));
        assert!(matches!(
            validation_handshake(&request(Some(&encoded), &Value::Null)),
            Some(Ok(_))
        ));
        for query in [
            format!("validationToken={}", "a".repeat(MAX_VALIDATION_TOKEN_BYTES + 1)),
            "validationToken=".to_owned(),
        ] {
            assert!(matches!(
                verify_change_notification(&config(Some("s")), &request(Some(&query), &Value::Null)),
                Err(WebhookError::Malformed(_))
            ));
        }
    }

    #[test]
    fn notifications_whose_every_client_state_matches_are_accepted() {
        let body = json!({"value": [notification("s3cret", "created"), notification("s3cret", "created")]});
        let outcome = verify_change_notification(&config(Some("s3cret")), &request(None, &body)).unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Event(VerifiedWebhook {
                delivery_id: None,
                event_type: Some("created".into())
            })
        );
        let mixed = json!({"value": [notification("s3cret", "created"), notification("s3cret", "deleted")]});
        let WebhookOutcome::Event(verified) =
            verify_change_notification(&config(Some("s3cret")), &request(None, &mixed)).unwrap()
        else {
            panic!()
        };
        assert_eq!(verified.event_type.as_deref(), Some("change_notification"));
        let lifecycle = json!({"value": [{"clientState": "s3cret", "lifecycleEvent": "reauthorizationRequired"}]});
        let WebhookOutcome::Event(verified) =
            verify_change_notification(&config(Some("s3cret")), &request(None, &lifecycle)).unwrap()
        else {
            panic!()
        };
        assert_eq!(verified.event_type.as_deref(), Some("reauthorizationRequired"));
    }

    #[test]
    fn a_single_wrong_or_missing_client_state_rejects_the_batch() {
        let cases = [
            json!({"value": [notification("s3cret", "created"), notification("other", "created")]}),
            json!({"value": [notification("s3cre", "created")]}),
            json!({"value": [notification("s3cret!", "created")]}),
            json!({"value": [{"changeType": "created"}]}),
            json!({"value": [{"clientState": 1}]}),
        ];
        for body in cases {
            assert!(
                matches!(
                    verify_change_notification(&config(Some("s3cret")), &request(None, &body)),
                    Err(WebhookError::InvalidSignature)
                ),
                "{body}"
            );
        }
        let good = json!({"value": [notification("s3cret", "created")]});
        assert!(matches!(
            verify_change_notification(&config(None), &request(None, &good)),
            Err(WebhookError::InvalidSignature)
        ));
        for malformed in [json!({"value": []}), json!({"other": 1}), json!([1])] {
            assert!(matches!(
                verify_change_notification(&config(Some("s3cret")), &request(None, &malformed)),
                Err(WebhookError::Malformed(_))
            ));
        }
    }
}

/// One event per notification of a stored batch, typed `change_notification`, with the item as
/// data minus its `clientState` (the installation's secret proof of origin, not event data).
pub fn normalize_change_notifications(delivery: &WebhookDelivery<'_>) -> Vec<NormalizedEvent> {
    let items = serde_json::from_slice::<Value>(delivery.payload)
        .ok()
        .and_then(|mut body| match body.get_mut("value").map(Value::take) {
            Some(Value::Array(items)) if !items.is_empty() => Some(items),
            _ => None,
        });
    let Some(items) = items else {
        // Verification admitted only batches; anything else keeps the default shape.
        return vec![NormalizedEvent {
            event_type: MIXED_EVENT_TYPE.into(),
            occurred_at_ms: None,
            data: EventData::Json(integrations_core::body_as_text_data(delivery.payload)),
        }];
    };
    items
        .into_iter()
        .map(|mut item| {
            if let Some(fields) = item.as_object_mut() {
                fields.remove("clientState");
            }
            NormalizedEvent {
                event_type: MIXED_EVENT_TYPE.into(),
                occurred_at_ms: None,
                data: EventData::Json(item),
            }
        })
        .collect()
}

#[cfg(test)]
mod normalize_tests {
    use super::*;

    #[test]
    fn each_notification_becomes_an_event_without_its_client_state() {
        let body = br#"{"value":[{"changeType":"created","clientState":"s3cret","resource":"a"},{"changeType":"deleted","clientState":"s3cret","resource":"b"}]}"#;
        let events = normalize_change_notifications(&WebhookDelivery {
            event_type: Some("created"),
            payload: body,
            received_at_ms: 1,
        });
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.event_type == "change_notification"));
        assert_eq!(
            events[0].data,
            EventData::Json(serde_json::json!({"changeType": "created", "resource": "a"}))
        );
        assert_eq!(
            events[1].data,
            EventData::Json(serde_json::json!({"changeType": "deleted", "resource": "b"}))
        );
        assert!(!format!("{events:?}").contains("s3cret"));
    }
}
