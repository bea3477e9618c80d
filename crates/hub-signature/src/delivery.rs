//! The webhook handler of the connectors whose vendors sign with `X-Hub-Signature` (Jira,
//! Bitbucket Cloud): they differ only in where a delivery names its id and its event type.

use std::borrow::Cow;
use std::fmt;

use integrations_core::{PluginConfig, VerifiedWebhook, WebhookError, WebhookOutcome, WebhookRequest};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Where a vendor's deliveries name themselves.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// The header carrying the delivery's id, the same on the vendor's retries (the host stores a
    /// delivery once by it).
    pub id_header: &'static str,
    /// Where the event type is read.
    pub event_type: EventTypeFrom,
}

/// Where a delivery's event type is.
#[derive(Clone, Copy, Debug)]
pub enum EventTypeFrom {
    /// A request header (Bitbucket's `X-Event-Key`).
    Header(&'static str),
    /// A top-level string member of the JSON body (Jira's `webhookEvent`); a body that is not an
    /// object, or a member that is not a string, names no event.
    BodyField(&'static str),
}

/// Verifies the request's `X-Hub-Signature` with the tenant's `webhook_secret` (see [`verify`](crate::verify)),
/// checks that the body is JSON without building it into a document (this runs for every
/// delivery), and reads the delivery's id and event type as `delivery` says.
pub fn verify_delivery(
    config: &PluginConfig,
    request: &WebhookRequest,
    delivery: &Delivery,
) -> Result<WebhookOutcome, WebhookError> {
    crate::verify(config, request)?;
    let malformed = |_| WebhookError::Malformed("body is not JSON".into());
    let mut body = serde_json::Deserializer::from_slice(&request.body);
    let event_type = match delivery.event_type {
        EventTypeFrom::Header(name) => {
            IgnoredAny::deserialize(&mut body).map_err(malformed)?;
            request.header(name).map(str::to_owned)
        }
        EventTypeFrom::BodyField(field) => TopLevelString(field).deserialize(&mut body).map_err(malformed)?,
    };
    body.end().map_err(malformed)?;
    Ok(WebhookOutcome::Event(VerifiedWebhook {
        delivery_id: request.header(delivery.id_header).map(str::to_owned),
        event_type,
    }))
}

/// Reads one top-level string member of a JSON value and skips everything else.
struct TopLevelString(&'static str);

impl<'de> DeserializeSeed<'de> for TopLevelString {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevelString {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.0 {
                found = map.next_value::<StringOrOther>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A member's value: a string names the event; any other JSON value names none.
struct StringOrOther(Option<String>);

impl<'de> Deserialize<'de> for StringOrOther {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Named;
        impl<'de> Visitor<'de> for Named {
            type Value = Option<String>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
                Ok(Some(name.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        deserializer.deserialize_any(Named).map(StringOrOther)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use integrations_core::Secret;
    use serde_json::Map;

    use super::*;
    use crate::{sign, HEADER, SECRET};

    const BY_HEADER: Delivery = Delivery {
        id_header: "x-request-uuid",
        event_type: EventTypeFrom::Header("x-event-key"),
    };
    const BY_BODY: Delivery = Delivery {
        id_header: "x-atlassian-webhook-identifier",
        event_type: EventTypeFrom::BodyField("webhookEvent"),
    };

    fn config() -> PluginConfig {
        let mut secrets = BTreeMap::new();
        secrets.insert(SECRET.to_owned(), Secret::new("s3cret"));
        PluginConfig::new(Map::new(), secrets)
    }

    fn signed(body: &[u8]) -> WebhookRequest {
        let mut headers = http::HeaderMap::new();
        headers.insert(HEADER, sign("s3cret", body).parse().unwrap());
        headers.insert("x-request-uuid", "uuid-1".parse().unwrap());
        headers.insert("x-atlassian-webhook-identifier", "jira-1".parse().unwrap());
        headers.insert("x-event-key", "pullrequest:created".parse().unwrap());
        WebhookRequest {
            headers,
            query: None,
            body: body.to_vec(),
        }
    }

    fn event(delivery: &Delivery, body: &[u8]) -> Result<Option<String>, WebhookError> {
        match verify_delivery(&config(), &signed(body), delivery)? {
            WebhookOutcome::Event(verified) => Ok(verified.event_type),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn reads_the_id_and_event_type_from_where_the_vendor_puts_them() {
        let body = br#"{"webhookEvent":"jira:issue_created","issue":{"key":"A-1"}}"#;
        let outcome = verify_delivery(&config(), &signed(body), &BY_BODY).unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Event(VerifiedWebhook {
                delivery_id: Some("jira-1".into()),
                event_type: Some("jira:issue_created".into())
            })
        );
        let outcome = verify_delivery(&config(), &signed(br#"{"pullrequest":{}}"#), &BY_HEADER).unwrap();
        assert_eq!(
            outcome,
            WebhookOutcome::Event(VerifiedWebhook {
                delivery_id: Some("uuid-1".into()),
                event_type: Some("pullrequest:created".into())
            })
        );
    }

    #[test]
    fn a_body_event_field_is_read_only_at_the_top_level_and_only_as_a_string() {
        assert_eq!(event(&BY_BODY, br#"{"a":{"webhookEvent":"nested"}}"#).unwrap(), None);
        assert_eq!(event(&BY_BODY, br#"{"webhookEvent":7}"#).unwrap(), None);
        assert_eq!(event(&BY_BODY, br#"{"webhookEvent":{"x":["y"]}}"#).unwrap(), None);
        assert_eq!(event(&BY_BODY, br#"["webhookEvent"]"#).unwrap(), None);
        assert_eq!(event(&BY_BODY, br#""webhookEvent""#).unwrap(), None);
        assert_eq!(event(&BY_BODY, b"null").unwrap(), None);
        assert_eq!(
            event(&BY_BODY, br#"{"webhook\u0045vent":"escaped"}"#).unwrap(),
            Some("escaped".into())
        );
    }

    #[test]
    fn a_signed_body_that_is_not_json_is_malformed() {
        for delivery in [&BY_BODY, &BY_HEADER] {
            for body in [&b"not json"[..], b"{\"a\":1", b"{} trailing", b""] {
                assert!(
                    matches!(event(delivery, body), Err(WebhookError::Malformed(_))),
                    "{delivery:?} {body:?}"
                );
            }
        }
    }

    #[test]
    fn the_signature_is_checked_before_the_body_is_read() {
        let mut request = signed(b"not json");
        request.headers.remove(HEADER);
        assert!(matches!(
            verify_delivery(&config(), &request, &BY_BODY),
            Err(WebhookError::MissingSignature)
        ));
    }
}
