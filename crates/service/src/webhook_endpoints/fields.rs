//! What a tenant sends to create, change or replay an endpoint, as typed inputs: the edge
//! deserializes them (naming the field it could not read), and the service checks what types
//! cannot say (ranges, filters, lengths), naming every wrong field at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use integrations_delivery::{validate_filters, InvalidFilter};
use integrations_events::parse_rfc3339_millis;
use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};

use crate::{FieldError, ServiceError};

/// Highest `rate_limit_per_sec` accepted.
pub const MAX_ENDPOINT_RATE_PER_SEC: u32 = 10_000;

/// Longest description accepted.
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// The fields of a create or change request. A field left out (or `null`, but for `url`) is left
/// as it is; `rate_limit_per_sec: null` sets no limit.
#[derive(Debug, Default, Deserialize)]
pub struct WebhookEndpointFields {
    /// Where events are POSTed; required to create.
    #[serde(default, deserialize_with = "not_null")]
    pub url: Option<String>,
    /// Type filters; empty means every type.
    pub event_types: Option<Vec<String>>,
    /// The tenant's note.
    pub description: Option<String>,
    /// Whether deliveries are made.
    pub enabled: Option<bool>,
    /// `Some(None)`: unlimited.
    #[serde(default, deserialize_with = "nullable")]
    pub rate_limit_per_sec: Option<Option<u32>>,
    /// Anything else sent, refused by name.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, IgnoredAny>,
}

impl WebhookEndpointFields {
    /// Checks what the types cannot, naming every wrong field; repeated filters are dropped,
    /// their order kept.
    pub(super) fn checked(mut self) -> Result<Self, ServiceError> {
        let mut errors = Vec::new();
        let mut error = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            })
        };
        if let Some(Some(rate)) = self.rate_limit_per_sec {
            if !(1..=MAX_ENDPOINT_RATE_PER_SEC).contains(&rate) {
                error("rate_limit_per_sec", rate_message());
            }
        }
        if let Some(text) = &self.description {
            if text.chars().count() > MAX_DESCRIPTION_CHARS {
                error(
                    "description",
                    format!("must be a string of at most {MAX_DESCRIPTION_CHARS} characters"),
                );
            }
        }
        if let Some(types) = &mut self.event_types {
            match validate_filters(types) {
                Ok(()) => {
                    let mut seen = BTreeSet::new();
                    types.retain(|t| seen.insert(t.clone()));
                }
                Err(InvalidFilter::Malformed(position)) => error(
                    &format!("event_types.{position}"),
                    "must be dot-separated words of letters, digits, '_' or '-', optionally ending in \".*\", or \"*\""
                        .into(),
                ),
                Err(too_many) => error("event_types", too_many.to_string()),
            }
        }
        for name in self.unknown.keys() {
            error(name, "is not a field of a webhook endpoint".into());
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(ServiceError::InvalidWebhookEndpoint(errors.into()))
        }
    }
}

fn rate_message() -> String {
    format!("must be null or a whole number from 1 to {MAX_ENDPOINT_RATE_PER_SEC}")
}

/// A present value that must not be `null`.
fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A present value, `null` included: `Some(None)` for `null`, while a field left out is `None`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The body of a replay.
#[derive(Debug, Deserialize)]
pub struct ReplayRequest {
    /// Events that occurred since then are sent again.
    #[serde(default)]
    pub since: Option<ReplaySince>,
}

/// When a replay starts: an RFC 3339 time, or unix seconds as a number or a string of digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaySince {
    /// Unix milliseconds.
    pub unix_millis: i64,
}

impl<'de> Deserialize<'de> for ReplaySince {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SinceVisitor)
    }
}

struct SinceVisitor;

impl Visitor<'_> for SinceVisitor {
    type Value = ReplaySince;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an RFC 3339 time or unix seconds")
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<ReplaySince, E> {
        let seconds = i64::try_from(seconds).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(seconds), &self))?;
        Ok(ReplaySince {
            unix_millis: seconds.saturating_mul(1000),
        })
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<ReplaySince, E> {
        match u64::try_from(seconds) {
            Ok(seconds) => self.visit_u64(seconds),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(seconds), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ReplaySince, E> {
        let invalid = || E::invalid_value(de::Unexpected::Str(text), &self);
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<u64>()
                .map_err(|_| invalid())
                .and_then(|s| self.visit_u64(s));
        }
        parse_rfc3339_millis(text)
            .map(|unix_millis| ReplaySince { unix_millis })
            .ok_or_else(invalid)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn fields(body: Value) -> Result<WebhookEndpointFields, ServiceError> {
        serde_json::from_value::<WebhookEndpointFields>(body)
            .map_err(|error| ServiceError::InvalidRequest(error.to_string()))?
            .checked()
    }

    fn refused_fields(body: Value) -> Vec<String> {
        match fields(body.clone()) {
            Err(ServiceError::InvalidWebhookEndpoint(errors)) => errors.errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{body} refused expected, got {other:?}"),
        }
    }

    #[test]
    fn since_is_rfc3339_or_unix_seconds() {
        let since = |value: Value| serde_json::from_value::<ReplaySince>(value).map(|s| s.unix_millis);
        assert_eq!(since(json!(1_700_000_000)).unwrap(), 1_700_000_000_000);
        assert_eq!(since(json!("1700000000")).unwrap(), 1_700_000_000_000);
        assert_eq!(since(json!("2023-11-14T22:13:20Z")).unwrap(), 1_700_000_000_000);
        for bad in [json!(null), json!(-1), json!(1.5), json!("soon"), json!([1])] {
            let error = since(bad.clone()).expect_err(&bad.to_string());
            assert!(error.to_string().contains("RFC 3339 time or unix seconds"), "{error}");
        }
        let absent: ReplayRequest = serde_json::from_value(json!({})).unwrap();
        assert_eq!(absent.since, None);
    }

    #[test]
    fn fields_are_checked_together_and_repeated_filters_dropped() {
        let input =
            fields(json!({"url": "https://x.example/h", "event_types": ["a.*", "b", "a.*"], "description": null}))
                .unwrap();
        assert_eq!(input.event_types.unwrap(), ["a.*", "b"]);
        assert_eq!(input.description, None);
        assert_eq!(
            refused_fields(json!({"event_types": ["*.a"], "secret": "x", "description": "d".repeat(1025)})),
            ["description", "event_types.0", "secret"]
        );
        assert!(serde_json::from_value::<WebhookEndpointFields>(json!({"url": null})).is_err());
    }

    #[test]
    fn a_rate_limit_is_a_whole_number_in_range_or_null_for_none() {
        let rate = |value: Value| fields(json!({"rate_limit_per_sec": value})).map(|i| i.rate_limit_per_sec);
        assert_eq!(rate(json!(2)).unwrap(), Some(Some(2)));
        assert_eq!(
            rate(json!(MAX_ENDPOINT_RATE_PER_SEC)).unwrap(),
            Some(Some(MAX_ENDPOINT_RATE_PER_SEC))
        );
        assert_eq!(rate(json!(null)).unwrap(), Some(None));
        assert_eq!(fields(json!({})).unwrap().rate_limit_per_sec, None, "absent: unchanged");
        for bad in [json!(0), json!(MAX_ENDPOINT_RATE_PER_SEC + 1)] {
            assert_eq!(
                refused_fields(json!({"rate_limit_per_sec": bad})),
                ["rate_limit_per_sec"]
            );
        }
        for unreadable in [json!(-1), json!(1.5), json!("2")] {
            assert!(
                serde_json::from_value::<WebhookEndpointFields>(json!({"rate_limit_per_sec": unreadable})).is_err()
            );
        }
    }
}
