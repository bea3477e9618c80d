//! Normalized events: what a verified webhook means, in the host's one event shape.

use serde_json::{json, Value};

/// A stored webhook delivery, as the host hands it back to its plugin to normalize.
#[derive(Clone, Copy, Debug)]
pub struct WebhookDelivery<'a> {
    /// The event name the plugin found when it verified the delivery.
    pub event_type: Option<&'a str>,
    /// The raw body.
    pub payload: &'a [u8],
    /// When it arrived, unix milliseconds.
    pub received_at_ms: i64,
}

/// One event a delivery yields; the host adds the id, tenant and plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedEvent {
    /// The type without the plugin prefix (`issue_created`); the host publishes it as
    /// `<plugin>.<event_type>` (`jira.issue_created`). Lowercase letters, digits, `_` and `.`.
    pub event_type: String,
    /// When it happened, unix milliseconds, when the vendor says; else the delivery's arrival.
    pub occurred_at_ms: Option<i64>,
    /// The event's data.
    pub data: EventData,
}

/// What an event carries as its data.
#[derive(Clone, Debug, PartialEq)]
pub enum EventData {
    /// The delivery's body itself, when it is JSON (the host checks; a body that is not JSON
    /// becomes `{"body": "<the body as text>"}`). The host stores it once, with the delivery,
    /// instead of decoding it and storing a second copy.
    Body,
    /// Data the plugin built.
    Json(Value),
}

/// The default normalization: one event per delivery, typed from its event name, carrying the
/// body (as JSON, or for a body that is not JSON, as text under `body`).
pub fn default_normalized_event(plugin: &str, delivery: &WebhookDelivery<'_>) -> NormalizedEvent {
    NormalizedEvent {
        event_type: event_type_name(plugin, delivery.event_type),
        occurred_at_ms: None,
        data: EventData::Body,
    }
}

/// The data of a [`EventData::Body`] event whose body is not JSON: the body as text.
pub fn body_as_text_data(payload: &[u8]) -> Value {
    json!({"body": String::from_utf8_lossy(payload)})
}

/// A vendor's event name as an event type: `jira:issue_created` → `issue_created` (the plugin's own
/// prefix is implied), `pullrequest:created` → `pullrequest_created`, none → `webhook`.
pub fn event_type_name(plugin: &str, vendor_name: Option<&str>) -> String {
    let raw = vendor_name.unwrap_or_default().trim().to_ascii_lowercase();
    let raw = raw
        .strip_prefix(plugin)
        .and_then(|rest| rest.strip_prefix([':', '.', '_']))
        .unwrap_or(&raw);
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' };
        let separator = |c: char| c == '_' || c == '.';
        if !(separator(c) && name.ends_with(separator)) {
            name.push(c);
        }
    }
    let name = name.trim_matches(['_', '.']);
    if name.is_empty() {
        "webhook".to_owned()
    } else {
        name.chars().take(100).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_event_names_become_event_types() {
        assert_eq!(event_type_name("jira", Some("jira:issue_created")), "issue_created");
        assert_eq!(
            event_type_name("bitbucket", Some("pullrequest:created")),
            "pullrequest_created"
        );
        assert_eq!(event_type_name("slack", Some("message")), "message");
        assert_eq!(event_type_name("slack", None), "webhook");
        assert_eq!(event_type_name("x", Some("Weird Name/..!")), "weird_name");
    }

    #[test]
    fn the_default_event_carries_the_body() {
        let delivery = WebhookDelivery {
            event_type: Some("jira:issue_created"),
            payload: br#"{"issue":{"key":"A-1"}}"#,
            received_at_ms: 5,
        };
        let event = default_normalized_event("jira", &delivery);
        assert_eq!(event.event_type, "issue_created");
        assert_eq!(event.data, EventData::Body);
        assert_eq!(
            body_as_text_data(b"token=x&text=hi"),
            json!({"body": "token=x&text=hi"})
        );
    }
}
