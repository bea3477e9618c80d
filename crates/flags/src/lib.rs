//! Flagsmith gating: decides whether a tenant may use a plugin.
//!
//! The environment document is evaluated locally with `flagsmith-flag-engine` (identity = tenant
//! id, traits = tenant traits). It comes from a file or is polled from a Flagsmith server; a poll
//! that fails or returns a bad document keeps the last good one.

mod server;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flagsmith_flag_engine::engine::get_evaluation_result;
use flagsmith_flag_engine::engine_eval::context::{EngineEvaluationContext, IdentityContext};
use flagsmith_flag_engine::engine_eval::mappers::environment_to_context;
use flagsmith_flag_engine::environments::Environment;
use flagsmith_flag_engine::types::{FlagsmithValue, FlagsmithValueType};
use serde_json::{Map, Value};

pub use server::FlagsmithServer;

/// The feature that gates a plugin.
pub fn plugin_feature(plugin: &str) -> String {
    format!("plugin.{plugin}")
}

/// Why flags could not be loaded or updated.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    /// The document file could not be read.
    #[error("cannot read environment document: {0}")]
    Io(#[from] std::io::Error),
    /// The document is not a Flagsmith environment document.
    #[error("invalid environment document: {0}")]
    InvalidDocument(String),
    /// The Flagsmith server failed or refused.
    #[error("flagsmith request failed: {0}")]
    Server(String),
}

#[derive(Clone)]
enum Source {
    /// No document configured: every plugin is allowed.
    AllowAll,
    /// A document (from a file or a server).
    Document(Arc<Slot>),
}

/// The current environment document, shared by every evaluation.
///
/// Documents can be tens of MiB, so an evaluation never copies one: it takes the lock, sets the
/// identity in place, evaluates and clears it again. Callers cache decisions per tenant (keyed by
/// [`Flags::generation`]), so the lock is taken rarely.
#[derive(Default)]
pub(crate) struct Slot {
    document: Mutex<Option<EngineEvaluationContext>>,
    generation: AtomicU64,
}

impl Slot {
    fn with_document(context: EngineEvaluationContext) -> Self {
        Self {
            document: Mutex::new(Some(context)),
            generation: AtomicU64::new(1),
        }
    }

    /// Replaces the document; decisions cached under the previous generation become stale.
    pub(crate) fn replace(&self, context: EngineEvaluationContext) {
        *self.document.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(context);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// The gate the service asks.
#[derive(Clone)]
pub struct Flags {
    source: Source,
    server: Option<Arc<FlagsmithServer>>,
}

impl Flags {
    /// No Flagsmith: everything allowed.
    pub fn allow_all() -> Self {
        Self {
            source: Source::AllowAll,
            server: None,
        }
    }

    /// Flags from a document held in a string.
    pub fn from_document(json: &str) -> Result<Self, FlagsError> {
        let context = parse_document(json.as_bytes())?;
        Ok(Self {
            source: Source::Document(Arc::new(Slot::with_document(context))),
            server: None,
        })
    }

    /// Flags from a document file.
    pub fn from_document_file(path: &Path) -> Result<Self, FlagsError> {
        Self::from_document(&std::fs::read_to_string(path)?)
    }

    /// Flags from a Flagsmith server: fetches once now, then polls in the background until the
    /// returned `Flags` and all its clones are dropped. Until a first document arrives, plugins
    /// are denied: an entitlement must not be granted because Flagsmith was unreachable.
    pub async fn from_server(server: FlagsmithServer) -> Self {
        let slot = Arc::new(Slot::default());
        let server = Arc::new(server);
        server.refresh(&slot).await;
        server.spawn_poller(Arc::downgrade(&slot));
        Self {
            source: Source::Document(slot),
            server: Some(server),
        }
    }

    /// Whether `tenant` (with its traits) may use `plugin`. A feature missing from the document
    /// counts as enabled.
    pub fn plugin_allowed(&self, tenant: &str, traits: &Map<String, Value>, plugin: &str) -> bool {
        self.allowed_plugins(tenant, traits, &[plugin])
            .first()
            .copied()
            .unwrap_or(false)
    }

    /// Which of `plugins` `tenant` may use, in the same order, from one evaluation of the document.
    pub fn allowed_plugins(&self, tenant: &str, traits: &Map<String, Value>, plugins: &[&str]) -> Vec<bool> {
        let slot = match &self.source {
            Source::AllowAll => return vec![true; plugins.len()],
            Source::Document(slot) => slot,
        };
        let mut guard = slot.document.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(context) = guard.as_mut() else {
            return vec![false; plugins.len()];
        };
        context.identity = Some(IdentityContext {
            identifier: tenant.to_owned(),
            key: format!("{}_{}", context.environment.key, tenant),
            traits: to_flagsmith_traits(traits),
        });
        // The engine panics on some malformed documents; a bad document must deny, not crash.
        let outcome = catch_unwind(AssertUnwindSafe(|| get_evaluation_result(context)));
        context.identity = None;
        drop(guard);
        match outcome {
            Ok(result) => plugins
                .iter()
                .map(|plugin| {
                    result
                        .flags
                        .get(&plugin_feature(plugin))
                        .is_none_or(|flag| flag.enabled)
                })
                .collect(),
            Err(_) => {
                tracing::error!(tenant, "flag evaluation failed on this document; denying");
                vec![false; plugins.len()]
            }
        }
    }

    /// Changes whenever the document does; a decision remembered under another generation is stale.
    pub fn generation(&self) -> u64 {
        match &self.source {
            Source::AllowAll => 0,
            Source::Document(slot) => slot.generation.load(Ordering::Acquire),
        }
    }

    /// Records `plugin.<name>` = enabled as an identity trait on the Flagsmith server, so that
    /// segments can use it. Without a server, there is nothing to record.
    pub async fn record_plugin_state(&self, tenant: &str, plugin: &str, enabled: bool) -> Result<(), FlagsError> {
        match &self.server {
            Some(server) => {
                server
                    .set_trait(tenant, &plugin_feature(plugin), Value::Bool(enabled))
                    .await
            }
            None => Ok(()),
        }
    }
}

fn parse_document(bytes: &[u8]) -> Result<EngineEvaluationContext, FlagsError> {
    // The engine's deserialisers and mappers panic on some malformed values (dates, numbers).
    catch_unwind(AssertUnwindSafe(|| {
        let environment: Environment =
            serde_json::from_slice(bytes).map_err(|e| FlagsError::InvalidDocument(e.to_string()))?;
        Ok(environment_to_context(environment))
    }))
    .unwrap_or_else(|_| Err(FlagsError::InvalidDocument("document could not be evaluated".into())))
}

fn to_flagsmith_traits(traits: &Map<String, Value>) -> HashMap<String, FlagsmithValue> {
    traits
        .iter()
        .filter_map(|(key, value)| {
            let (value_type, value) = match value {
                Value::String(s) => (FlagsmithValueType::String, s.clone()),
                Value::Bool(b) => (FlagsmithValueType::Bool, b.to_string()),
                // Integers beyond i64 would make the engine panic; they compare fine as floats.
                Value::Number(n) if n.is_i64() => (FlagsmithValueType::Integer, n.to_string()),
                Value::Number(n) => (FlagsmithValueType::Float, n.to_string()),
                _ => return None,
            };
            Some((key.clone(), FlagsmithValue { value_type, value }))
        })
        .collect()
}

#[cfg(test)]
mod tests;
