use std::collections::HashMap;
use std::sync::Arc;

use crate::{Plugin, ToolSpec};

/// The descriptor a plugin crate submits with [`register_plugin!`](crate::register_plugin).
pub struct PluginRegistration {
    build: fn() -> Arc<dyn Plugin>,
}

impl PluginRegistration {
    /// Wraps a plugin constructor.
    pub const fn new(build: fn() -> Arc<dyn Plugin>) -> Self {
        Self { build }
    }
}

inventory::collect!(PluginRegistration);

/// Why the set of plugins cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Two plugins share a name.
    #[error("two plugins are named {0:?}")]
    DuplicatePlugin(String),
    /// Two tools share a name.
    #[error("tool {tool:?} is offered by both {first:?} and {second:?}")]
    DuplicateTool {
        /// The tool name.
        tool: String,
        /// One plugin offering it.
        first: String,
        /// The other plugin offering it.
        second: String,
    },
    /// A manifest is unusable.
    #[error("plugin {plugin:?}: {message}")]
    InvalidManifest {
        /// The plugin name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

/// One registered plugin with its tools, read once at start-up.
pub struct RegisteredPlugin {
    /// The plugin.
    pub plugin: Arc<dyn Plugin>,
    /// Its tools.
    pub tools: Vec<ToolSpec>,
}

/// The compiled-in plugins, sorted by name, with names and tool names checked unique.
pub struct PluginRegistry {
    plugins: Vec<RegisteredPlugin>,
    by_name: HashMap<&'static str, usize>,
    by_tool: HashMap<String, (usize, usize)>,
}

impl PluginRegistry {
    /// The plugins linked into this binary.
    pub fn linked() -> Result<Self, RegistryError> {
        Self::from_plugins(
            inventory::iter::<PluginRegistration>
                .into_iter()
                .map(|r| (r.build)())
                .collect(),
        )
    }

    /// A registry of the given plugins (tests build their own).
    pub fn from_plugins(mut plugins: Vec<Arc<dyn Plugin>>) -> Result<Self, RegistryError> {
        // inventory's order is unspecified: sort so listings and start-up are deterministic.
        plugins.sort_by_key(|p| p.manifest().name);
        let mut registry = Self {
            plugins: Vec::new(),
            by_name: HashMap::new(),
            by_tool: HashMap::new(),
        };
        for plugin in plugins {
            let manifest = plugin.manifest();
            check_manifest(manifest.name, manifest.version)?;
            let index = registry.plugins.len();
            if registry.by_name.insert(manifest.name, index).is_some() {
                return Err(RegistryError::DuplicatePlugin(manifest.name.to_owned()));
            }
            let tools = plugin.tools();
            for (tool_index, tool) in tools.iter().enumerate() {
                if let Some((other, _)) = registry.by_tool.insert(tool.name.clone(), (index, tool_index)) {
                    let first = if other == index {
                        manifest.name.to_owned()
                    } else {
                        registry.plugins[other].plugin.manifest().name.to_owned()
                    };
                    return Err(RegistryError::DuplicateTool {
                        tool: tool.name.clone(),
                        first,
                        second: manifest.name.to_owned(),
                    });
                }
            }
            registry.plugins.push(RegisteredPlugin { plugin, tools });
        }
        Ok(registry)
    }

    /// All plugins, sorted by name.
    pub fn plugins(&self) -> impl Iterator<Item = &RegisteredPlugin> {
        self.plugins.iter()
    }

    /// The plugin of this name.
    pub fn get(&self, name: &str) -> Option<&RegisteredPlugin> {
        self.by_name.get(name).map(|&i| &self.plugins[i])
    }

    /// The plugin offering this tool, and the tool.
    pub fn find_tool(&self, tool: &str) -> Option<(&RegisteredPlugin, &ToolSpec)> {
        self.by_tool.get(tool).map(|&(p, t)| {
            let registered = &self.plugins[p];
            (registered, &registered.tools[t])
        })
    }

    /// The plugin names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.plugin.manifest().name).collect()
    }
}

fn check_manifest(name: &str, version: &str) -> Result<(), RegistryError> {
    let invalid = |message: &str| RegistryError::InvalidManifest {
        plugin: name.to_owned(),
        message: message.to_owned(),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(invalid("name must be 1-64 characters of a-z, 0-9, '_' or '-'"));
    }
    if !is_semver(version) {
        return Err(invalid("version must be semantic (MAJOR.MINOR.PATCH)"));
    }
    Ok(())
}

fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PluginConfig, PluginContext, PluginManifest, ToolError, WebhookError, WebhookOutcome, WebhookRequest};
    use async_trait::async_trait;
    use serde_json::{json, Value};

    struct Fake {
        name: &'static str,
        version: &'static str,
        tools: Vec<&'static str>,
    }

    #[async_trait]
    impl Plugin for Fake {
        fn manifest(&self) -> PluginManifest {
            PluginManifest {
                name: self.name,
                version: self.version,
                description: "fake",
            }
        }
        fn config_schema(&self) -> Value {
            json!({"type": "object"})
        }
        fn tools(&self) -> Vec<ToolSpec> {
            self.tools
                .iter()
                .map(|t| ToolSpec {
                    name: (*t).to_owned(),
                    description: String::new(),
                    input_schema: json!({}),
                })
                .collect()
        }
        async fn call_tool(&self, _: &PluginContext, tool: &str, _: Value) -> Result<Value, ToolError> {
            Err(ToolError::UnknownTool(tool.to_owned()))
        }
        fn verify_webhook(&self, _: &PluginConfig, _: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
            Err(WebhookError::InvalidSignature)
        }
    }

    fn fake(name: &'static str, tools: Vec<&'static str>) -> Arc<dyn Plugin> {
        Arc::new(Fake {
            name,
            version: "1.0.0",
            tools,
        })
    }

    #[test]
    fn sorts_plugins_by_name_and_indexes_tools() {
        let registry =
            PluginRegistry::from_plugins(vec![fake("zeta", vec!["zeta_a"]), fake("alpha", vec!["alpha_a"])]).unwrap();
        assert_eq!(registry.names(), vec!["alpha", "zeta"]);
        let (owner, tool) = registry.find_tool("zeta_a").unwrap();
        assert_eq!(owner.plugin.manifest().name, "zeta");
        assert_eq!(tool.name, "zeta_a");
        assert!(registry.find_tool("nope").is_none());
    }

    #[test]
    fn refuses_duplicate_plugin_names() {
        let err = PluginRegistry::from_plugins(vec![fake("jira", vec![]), fake("jira", vec![])]).err();
        assert_eq!(err, Some(RegistryError::DuplicatePlugin("jira".into())));
    }

    #[test]
    fn refuses_duplicate_tool_names() {
        let err = PluginRegistry::from_plugins(vec![fake("a", vec!["same"]), fake("b", vec!["same"])]).err();
        assert!(matches!(err, Some(RegistryError::DuplicateTool { ref tool, .. }) if tool == "same"));
    }

    #[test]
    fn refuses_non_semver_versions_and_bad_names() {
        let bad_version: Arc<dyn Plugin> = Arc::new(Fake {
            name: "a",
            version: "1.0",
            tools: vec![],
        });
        assert!(matches!(
            PluginRegistry::from_plugins(vec![bad_version]),
            Err(RegistryError::InvalidManifest { .. })
        ));
        let bad_name: Arc<dyn Plugin> = Arc::new(Fake {
            name: "A b",
            version: "1.0.0",
            tools: vec![],
        });
        assert!(matches!(
            PluginRegistry::from_plugins(vec![bad_name]),
            Err(RegistryError::InvalidManifest { .. })
        ));
        assert!(is_semver("0.1.0-alpha.1+build"));
        assert!(!is_semver("01.0.0"));
    }
}
