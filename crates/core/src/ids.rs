//! Identifiers, parsed and checked once where they enter (a request, a job) and then carried as
//! their own types: a tenant id is never confused with a plugin name, nor checked again further in.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an identifier of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub &'static str);

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $rule:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// What a valid one looks like, for error messages.
            pub const RULE: &'static str = $message;

            /// Checks `text` and takes it as this kind of identifier.
            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                let rule: fn(&str) -> bool = $rule;
                if rule(text) {
                    Ok(Self(Arc::from(text)))
                } else {
                    Err(InvalidId($message))
                }
            }

            /// One this service made or stored after checking it: not checked again.
            pub fn from_trusted(text: &str) -> Self {
                Self(Arc::from(text))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn lowercase_word(text: &str, max_len: usize) -> bool {
    let mut bytes = text.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && text.len() <= max_len
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

identifier!(
    /// A tenant's id: 1-63 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit
    /// (it appears in webhook URLs and NATS subjects).
    TenantId,
    |text| lowercase_word(text, 63),
    "use 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
);

fn prefixed_hex(text: &str, prefix: &str, digits: usize) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == digits && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

identifier!(
    /// A connector's name: 1-64 characters of a-z, 0-9, `_` and `-` (also its cargo feature and
    /// its URL segment).
    PluginName,
    |text| !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
    "use 1-64 characters of a-z, 0-9, '_' or '-'"
);

identifier!(
    /// A tool's name, unique across connectors (`jira_create_issue`): 1-128 characters of a-z,
    /// 0-9, `_` and `-`.
    ToolName,
    |text| !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
    "use 1-128 characters of a-z, 0-9, '_' or '-'"
);

identifier!(
    /// An API key's id: the 16 hex digits between `itk_` and the dot of the key.
    KeyId,
    |text| text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
    "an API key id is 16 hex digits"
);

identifier!(
    /// An outbound webhook endpoint's id: `ep_` and 24 hex digits.
    EndpointId,
    |text| prefixed_hex(text, "ep_", 24),
    "an endpoint id is ep_ and 24 hex digits"
);

identifier!(
    /// A background job's id: `job_` and 32 hex digits (time first, so ids sort by creation).
    JobId,
    |text| prefixed_hex(text, "job_", 32),
    "a job id is job_ and 32 hex digits"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_lowercase_words_of_at_most_63_characters() {
        for good in ["acme", "a", "0-team_b", &"x".repeat(63)] {
            assert_eq!(TenantId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Acme", "-acme", "_a", "a b", "a.b", "ä", &"x".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_and_ids_keep_to_their_forms() {
        assert!(PluginName::parse("jira").is_ok() && PluginName::parse("ms-graph_2").is_ok());
        assert!(PluginName::parse("Jira").is_err() && PluginName::parse("").is_err());
        assert!(ToolName::parse("jira_create_issue").is_ok() && ToolName::parse("jira create").is_err());
        assert!(KeyId::parse("0123456789abcdef").is_ok() && KeyId::parse("0123456789ABCDEF").is_err());
        assert!(EndpointId::parse("ep_0123456789abcdef01234567").is_ok());
        for bad in ["ep_0123", "ep_0123456789abcdef0123456z", "xp_0123456789abcdef01234567"] {
            assert!(EndpointId::parse(bad).is_err(), "{bad}");
        }
        assert!(JobId::parse(&format!("job_{}", "a".repeat(32))).is_ok());
        assert!(JobId::parse(&format!("job_{}", "a".repeat(31))).is_err());
    }

    #[test]
    fn identifiers_read_and_write_as_plain_strings_and_are_checked_when_read() {
        let acme: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(acme, "acme");
        assert_eq!(serde_json::to_string(&acme).unwrap(), "\"acme\"");
        assert!(serde_json::from_str::<TenantId>("\"ACME\"").is_err());
        assert_eq!(format!("{acme} {acme:?}"), "acme \"acme\"");
    }
}
