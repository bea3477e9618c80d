//! An endpoint's URL, parsed once when the tenant sets it: what is stored is the normalised form
//! that was checked, so what is delivered to is what was checked, and a URL no request can be
//! made to is refused up front instead of leaving its deliveries pending.

use url::Url;

/// Longest URL accepted, as given and as normalised.
pub const MAX_URL_CHARS: usize = 2048;

/// Why a URL cannot be an endpoint's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidEndpointUrl {
    /// Longer than [`MAX_URL_CHARS`].
    #[error("must be at most {MAX_URL_CHARS} characters")]
    TooLong,
    /// Whitespace or a control character anywhere (parsers drop or encode them silently).
    #[error("must not contain whitespace or control characters")]
    Whitespace,
    /// Not an absolute URL.
    #[error("must be an absolute http or https URL")]
    Malformed,
    /// Another scheme.
    #[error("must use http or https")]
    Scheme,
    /// A `#fragment`, which is never sent.
    #[error("must not have a fragment (#…)")]
    Fragment,
}

/// Parses `given` and returns its normalised form (`Url::to_string`: lower-case scheme and host,
/// no default port, dot segments resolved, non-ASCII encoded), or why it is refused.
pub fn normalize_endpoint_url(given: &str) -> Result<String, InvalidEndpointUrl> {
    if given.chars().count() > MAX_URL_CHARS {
        return Err(InvalidEndpointUrl::TooLong);
    }
    if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidEndpointUrl::Whitespace);
    }
    let url = Url::parse(given).map_err(|_| InvalidEndpointUrl::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidEndpointUrl::Scheme);
    }
    if url.fragment().is_some() {
        return Err(InvalidEndpointUrl::Fragment);
    }
    if !url.has_host() {
        return Err(InvalidEndpointUrl::Malformed);
    }
    let normalised = url.to_string();
    if normalised.chars().count() > MAX_URL_CHARS {
        return Err(InvalidEndpointUrl::TooLong);
    }
    // A delivery is an `http` request to it: refuse here what it could not be sent to.
    normalised
        .parse::<http::Uri>()
        .map_err(|_| InvalidEndpointUrl::Malformed)?;
    Ok(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_control_characters_are_refused_wherever_they_are() {
        for given in [
            "http://host/a b",
            " http://host/a",
            "http://host/a ",
            "\thttp://host/a",
            "http://ho\tst/a",
            "http://host/a\nb",
            "http://host/a\u{7f}",
            "http://host/\u{a0}",
        ] {
            assert_eq!(
                normalize_endpoint_url(given),
                Err(InvalidEndpointUrl::Whitespace),
                "{given:?}"
            );
        }
    }

    #[test]
    fn what_is_stored_is_the_normalised_form() {
        for (given, stored) in [
            ("HTTPS://Example.COM:443/a/../b?q=1", "https://example.com/b?q=1"),
            ("http://example.com", "http://example.com/"),
            ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
            ("https://bücher.example/ä", "https://xn--bcher-kva.example/%C3%A4"),
            ("https://example.com/{x}", "https://example.com/%7Bx%7D"),
        ] {
            assert_eq!(normalize_endpoint_url(given).as_deref(), Ok(stored), "{given:?}");
        }
    }

    #[test]
    fn other_schemes_fragments_and_non_urls_are_refused() {
        for (given, why) in [
            ("ftp://example.com/x", InvalidEndpointUrl::Scheme),
            ("mailto:a@example.com", InvalidEndpointUrl::Scheme),
            ("https://example.com/x#part", InvalidEndpointUrl::Fragment),
            ("not-a-url", InvalidEndpointUrl::Malformed),
            ("https://", InvalidEndpointUrl::Malformed),
            ("//example.com/x", InvalidEndpointUrl::Malformed),
        ] {
            assert_eq!(normalize_endpoint_url(given), Err(why), "{given:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(normalize_endpoint_url(&long), Err(InvalidEndpointUrl::TooLong));
        // Each of these grows ninefold when encoded.
        let grows = format!("https://example.com/{}", "ä".repeat(400));
        assert_eq!(normalize_endpoint_url(&grows), Err(InvalidEndpointUrl::TooLong));
    }
}
