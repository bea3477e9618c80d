use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// A secret value held in memory; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it (a header, a MAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    // Decrypted secrets live in caches; wiping them on drop keeps them out of freed memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A tenant's decrypted configuration of one plugin: plain fields and secret fields apart, so that
/// secrets cannot leak through a serialisation of the plain part.
#[derive(Clone, Debug, Default)]
pub struct PluginConfig {
    values: Map<String, Value>,
    secrets: BTreeMap<String, Secret>,
}

impl PluginConfig {
    /// Builds a config from its plain fields and its secret fields.
    pub fn new(values: Map<String, Value>, secrets: BTreeMap<String, Secret>) -> Self {
        Self { values, secrets }
    }

    /// A plain field as a string, if present and a string.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.values.get(field).and_then(Value::as_str)
    }

    /// A plain field as JSON.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.values.get(field)
    }

    /// A secret field, if set.
    pub fn secret(&self, field: &str) -> Option<&Secret> {
        self.secrets.get(field)
    }

    /// The plain fields.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_display_redact() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        let mut secrets = BTreeMap::new();
        secrets.insert("api_token".to_owned(), secret);
        let config = PluginConfig::new(Map::new(), secrets);
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.secret("api_token").map(Secret::expose), Some("hunter2"));
    }
}
