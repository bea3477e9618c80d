//! The check every connector applies to a base URL a tenant configures (`api_base_url`, Jira's
//! `host`, Graph's `graph_base_url`), so that a URL no request can be built on is refused at install.

use url::Url;

use crate::PluginConfig;

/// Parses the base URL a tenant put in config field `field`: an absolute `https` URL with a host,
/// without query or fragment, on which paths can be built (`cannot_be_a_base` URLs such as
/// `mailto:x` or `data:,x` are refused). Plain `http` is accepted too: where it may go is the host's
/// outbound policy's call (only to allowlisted addresses, such as a test's loopback server or an
/// on-premises site), checked by [`PluginContext::check_destination_of`](crate::PluginContext::check_destination_of).
/// The error names `field` and is meant for the installer.
pub fn parse_base_url(field: &str, raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| format!("{field} is not a valid URL"))?;
    if url.cannot_be_a_base() {
        return Err(format!(
            "{field} must be an http(s) URL with a host name: a {}: URL cannot be a base for paths",
            url.scheme()
        ));
    }
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(format!("{field} must be an http(s) URL with a host name"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{field} must not carry a query or fragment"));
    }
    Ok(url)
}

impl PluginConfig {
    /// The base URL in plain field `field`, checked by [`parse_base_url`]; `default` (the vendor's
    /// own) when the field is absent, which is an error when there is no default.
    pub fn base_url(&self, field: &str, default: Option<&str>) -> Result<Url, String> {
        match (self.str(field), default) {
            (Some(raw), _) => parse_base_url(field, raw).map_err(|message| match default {
                Some(example) => format!("{message}, e.g. {example}"),
                None => message,
            }),
            (None, Some(default)) => parse_base_url(field, default),
            (None, None) => Err(format!("{field} is required")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Map};

    use super::*;

    #[test]
    fn accepts_https_and_http_urls_with_a_host() {
        for raw in [
            "https://api.example.com",
            "https://api.example.com/2.0",
            "https://slack.com/api/",
            "https://your-site.atlassian.net:8443/",
            "http://127.0.0.1:41234",
            "http://[::1]:8080/base",
            "http://jira.internal/",
        ] {
            let url = parse_base_url("api_base_url", raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert!(!url.cannot_be_a_base() && url.host().is_some(), "{raw}");
        }
    }

    #[test]
    fn refuses_urls_that_cannot_be_a_base() {
        for raw in [
            "mailto:x",
            "data:,hello",
            "data:text/plain;base64,SGVsbG8=",
            "urn:isbn:0451450523",
        ] {
            let error = parse_base_url("api_base_url", raw).expect_err(raw);
            assert!(error.starts_with("api_base_url "), "{raw}: {error}");
            assert!(error.contains("cannot be a base"), "{raw}: {error}");
        }
    }

    #[test]
    fn refuses_other_schemes_missing_hosts_queries_fragments_and_garbage() {
        let cases = [
            ("ftp://files.example.com", "must be an http(s) URL"),
            ("file:///etc/passwd", "must be an http(s) URL"),
            ("unix:/var/run/x.sock", "must be an http(s) URL"),
            ("https://api.example.com/?token=x", "query or fragment"),
            ("https://api.example.com/#top", "query or fragment"),
            ("not a url", "is not a valid URL"),
            ("https://", "is not a valid URL"),
            ("", "is not a valid URL"),
        ];
        for (raw, expected) in cases {
            let error = parse_base_url("host", raw).expect_err(raw);
            assert!(error.starts_with("host ") && error.contains(expected), "{raw}: {error}");
        }
    }

    #[test]
    fn reads_the_field_else_the_default_else_requires_it() {
        let config = |values: serde_json::Value| {
            let serde_json::Value::Object(values) = values else {
                unreachable!()
            };
            PluginConfig::new(values, BTreeMap::new())
        };
        let set = config(json!({"api_base_url": "http://127.0.0.1:9/api"}));
        assert_eq!(
            set.base_url("api_base_url", Some("https://slack.com/api"))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/api"
        );
        let unset = PluginConfig::new(Map::new(), BTreeMap::new());
        assert_eq!(
            unset
                .base_url("api_base_url", Some("https://slack.com/api"))
                .unwrap()
                .as_str(),
            "https://slack.com/api"
        );
        assert_eq!(unset.base_url("host", None).unwrap_err(), "host is required");
        let bad = config(json!({"api_base_url": "mailto:x"}));
        let error = bad.base_url("api_base_url", Some("https://slack.com/api")).unwrap_err();
        assert!(error.ends_with(", e.g. https://slack.com/api"), "{error}");
    }
}
