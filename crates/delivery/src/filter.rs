//! Which event types an endpoint receives: exact types, `prefix.*` (every type under the prefix)
//! or `*`; an empty list means every type.

/// Most filters on one endpoint.
pub const MAX_FILTERS: usize = 100;

/// A filter that is not a type, `prefix.*` or `*`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidFilter {
    /// Too many.
    #[error("at most {MAX_FILTERS} event types")]
    TooMany,
    /// Malformed; carries its position.
    #[error("event type {0} must be dot-separated words of letters, digits, '_' or '-', optionally ending in \".*\", or \"*\"")]
    Malformed(usize),
}

/// Checks a filter list as a tenant sends it.
pub fn validate_filters(filters: &[String]) -> Result<(), InvalidFilter> {
    if filters.len() > MAX_FILTERS {
        return Err(InvalidFilter::TooMany);
    }
    for (position, filter) in filters.iter().enumerate() {
        let prefix = filter.strip_suffix(".*").unwrap_or(filter);
        let words_ok = filter.len() <= 128
            && prefix.split('.').all(|word| {
                !word.is_empty()
                    && word
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if filter != "*" && !words_ok {
            return Err(InvalidFilter::Malformed(position));
        }
    }
    Ok(())
}

/// Whether an endpoint with `filters` receives events of `event_type`.
pub fn matches(filters: &[String], event_type: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|filter| match filter.strip_suffix(".*") {
            _ if filter == "*" => true,
            Some(prefix) => event_type
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.')),
            None => filter == event_type,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_prefix_and_star_filters() {
        assert!(matches(&[], "anything.at_all"));
        assert!(matches(&list(&["*"]), "order.created"));
        let jira = list(&["jira.*", "plugin.installed"]);
        assert!(matches(&jira, "jira.issue_created"));
        assert!(matches(&jira, "jira.comment.added"));
        assert!(matches(&jira, "plugin.installed"));
        assert!(!matches(&jira, "jiraextra.issue_created"));
        assert!(!matches(&jira, "jira"));
        assert!(!matches(&jira, "plugin.uninstalled"));
        assert!(!matches(&jira, "slack.message"));
    }

    #[test]
    fn malformed_filters_are_refused_with_their_position() {
        assert_eq!(validate_filters(&list(&["a.b", "a.*", "*"])), Ok(()));
        for (bad, at) in [
            (vec!["ok", ""], 1),
            (vec!["a.*.b"], 0),
            (vec!["a b"], 0),
            (vec!["*.a"], 0),
            (vec![".*"], 0),
        ] {
            assert_eq!(
                validate_filters(&list(&bad)),
                Err(InvalidFilter::Malformed(at)),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_filters(&vec!["a".to_owned(); 101]),
            Err(InvalidFilter::TooMany)
        );
    }
}
