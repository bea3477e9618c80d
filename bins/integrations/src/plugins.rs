//! The link file. A crate no code names is never linked, and its `register_plugin!` would be
//! lost silently; each connector is named here behind its cargo feature.

#[cfg(feature = "bitbucket")]
use integrations_plugin_bitbucket as _;
#[cfg(feature = "jira")]
use integrations_plugin_jira as _;
#[cfg(feature = "sharepoint")]
use integrations_plugin_sharepoint as _;
#[cfg(feature = "slack")]
use integrations_plugin_slack as _;
#[cfg(feature = "teams")]
use integrations_plugin_teams as _;

/// The plugins this build was asked to include, by cargo feature.
pub const SELECTED_PLUGINS: &[&str] = &[
    #[cfg(feature = "bitbucket")]
    "bitbucket",
    #[cfg(feature = "jira")]
    "jira",
    #[cfg(feature = "sharepoint")]
    "sharepoint",
    #[cfg(feature = "slack")]
    "slack",
    #[cfg(feature = "teams")]
    "teams",
];
