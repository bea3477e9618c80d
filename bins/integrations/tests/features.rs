//! The compiled feature set yields exactly the plugins it names: a connector crate that is never
//! named in the link file would be dropped by the linker without a word.

use integrations::plugins::SELECTED_PLUGINS;
use integrations_core::PluginRegistry;

#[test]
fn linked_plugins_are_exactly_the_selected_features() {
    let registry = PluginRegistry::linked().expect("no duplicate plugins");
    assert_eq!(registry.names(), SELECTED_PLUGINS);
}

#[test]
fn every_connector_feature_is_named_in_the_link_file() {
    let manifest = include_str!("../Cargo.toml");
    let link_file = include_str!("../src/plugins.rs");
    let features = manifest
        .split("[features]")
        .nth(1)
        .expect("features table")
        .split("\n[")
        .next()
        .unwrap_or_default();
    let connectors: Vec<&str> = features
        .lines()
        .filter(|line| line.contains("dep:integrations-plugin-"))
        .filter_map(|line| line.split('=').next())
        .map(str::trim)
        .collect();
    assert!(!connectors.is_empty());
    for feature in connectors {
        let crate_name = format!("integrations_plugin_{}", feature.replace('-', "_"));
        let expected = format!("#[cfg(feature = \"{feature}\")]\nuse {crate_name} as _;");
        assert!(
            link_file.contains(&expected),
            "link file must name {crate_name} behind feature {feature}"
        );
        assert!(
            link_file.contains(&format!("#[cfg(feature = \"{feature}\")]\n    \"{feature}\",")),
            "SELECTED_PLUGINS must list {feature}"
        );
    }
}
