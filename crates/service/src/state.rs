//! Tenant state kept in memory for the hot path: authenticated keys, each tenant's gate
//! (traits, installations, flag decisions) and decrypted plugin configs.
//!
//! Every change invalidates at once on the replica that made it and, through the store's
//! invalidation channel (PostgreSQL `LISTEN/NOTIFY`), on every other replica. While that channel
//! is down the cache is bypassed and emptied, so a missed notification can never leave a revoked
//! key or a disabled plugin usable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use integrations_core::{HttpClient, PluginConfig};
use integrations_store::{ApiKeyRecord, Change, Heard, Installation, InstallationState, Store, Tenant};
use serde_json::{Map, Value};

/// A listener that has heard nothing for this long checks that its channel still delivers.
const QUIET_BEFORE_PROBE: Duration = Duration::from_secs(5);
/// How long a probe may take to come back before the channel counts as dead.
const PROBE_ANSWER: Duration = Duration::from_secs(2);

/// More entries than this and the cache starts over; it refills from the hot tenants.
const MAX_ENTRIES: usize = 200_000;

/// Flag decisions per plugin, with the flags generation they were made under.
type Decisions = Option<(u64, Arc<HashMap<String, bool>>)>;

/// A tenant as the hot path needs it.
pub(crate) struct TenantState {
    pub(crate) tenant: Tenant,
    /// The tenant's traits plus `plugin.<name>` for each installation.
    pub(crate) traits: Map<String, Value>,
    pub(crate) installations: Vec<Installation>,
    decisions: Mutex<Decisions>,
    configs: Mutex<HashMap<String, Arc<PluginConfig>>>,
    http: OnceLock<Arc<dyn HttpClient>>,
}

impl TenantState {
    pub(crate) fn new(tenant: Tenant, installations: Vec<Installation>) -> Self {
        let mut traits = tenant.traits.clone();
        // The same `plugin.<name>` traits enable/disable record in Flagsmith, so segments on them
        // match in local evaluation too; they are set after the tenant's own traits and win.
        for installation in &installations {
            let enabled = installation.state == InstallationState::Enabled;
            traits.insert(
                integrations_flags::plugin_feature(&installation.plugin),
                Value::Bool(enabled),
            );
        }
        Self {
            tenant,
            traits,
            installations,
            decisions: Mutex::new(None),
            configs: Mutex::new(HashMap::new()),
            http: OnceLock::new(),
        }
    }

    /// The tenant's installation of `plugin`.
    pub(crate) fn installation(&self, plugin: &str) -> Option<&Installation> {
        self.installations.iter().find(|i| i.plugin == plugin)
    }

    /// The decisions made under `generation`, or computes them with `decide`.
    pub(crate) fn decisions(
        &self,
        generation: u64,
        decide: impl FnOnce() -> HashMap<String, bool>,
    ) -> Arc<HashMap<String, bool>> {
        let mut guard = self.decisions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*guard {
            Some((made_under, decisions)) if *made_under == generation => decisions.clone(),
            _ => {
                let decisions = Arc::new(decide());
                *guard = Some((generation, decisions.clone()));
                decisions
            }
        }
    }

    pub(crate) fn cached_config(&self, plugin: &str) -> Option<Arc<PluginConfig>> {
        self.configs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(plugin)
            .cloned()
    }

    pub(crate) fn remember_config(&self, plugin: &str, config: Arc<PluginConfig>) {
        self.configs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(plugin.to_owned(), config);
    }

    pub(crate) fn http(&self) -> Option<Arc<dyn HttpClient>> {
        self.http.get().cloned()
    }

    pub(crate) fn remember_http(&self, client: Arc<dyn HttpClient>) -> Arc<dyn HttpClient> {
        self.http.get_or_init(|| client).clone()
    }
}

/// The cache itself, shared with the task that listens for other replicas' changes.
pub(crate) struct StateCache {
    /// False while other replicas' changes cannot be heard: everything then comes from the store.
    enabled: AtomicBool,
    /// Bumped by every invalidation, so a load that raced with one is not remembered.
    generation: AtomicU64,
    tenants: RwLock<HashMap<String, Arc<TenantState>>>,
    keys: RwLock<HashMap<String, Arc<ApiKeyRecord>>>,
}

impl StateCache {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
            generation: AtomicU64::new(0),
            tenants: RwLock::default(),
            keys: RwLock::default(),
        }
    }

    /// Taken before a load; hand it back to `insert_*` so a load that raced with a change is dropped.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn tenant(&self, id: &str) -> Option<Arc<TenantState>> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        read(&self.tenants).get(id).cloned()
    }

    pub(crate) fn insert_tenant(&self, generation: u64, state: Arc<TenantState>) {
        let mut tenants = write(&self.tenants);
        // Checked under the write lock: an invalidation bumps the generation before taking it.
        if self.enabled.load(Ordering::Acquire) && self.generation() == generation {
            if tenants.len() >= MAX_ENTRIES {
                tenants.clear();
            }
            tenants.insert(state.tenant.id.clone(), state);
        }
    }

    pub(crate) fn key(&self, id: &str) -> Option<Arc<ApiKeyRecord>> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        read(&self.keys).get(id).cloned()
    }

    pub(crate) fn insert_key(&self, generation: u64, key: Arc<ApiKeyRecord>) {
        let mut keys = write(&self.keys);
        if self.enabled.load(Ordering::Acquire) && self.generation() == generation {
            if keys.len() >= MAX_ENTRIES {
                keys.clear();
            }
            keys.insert(key.id.clone(), key);
        }
    }

    pub(crate) fn invalidate(&self, what: &Change) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match what {
            Change::Tenant(id) => {
                write(&self.tenants).remove(id);
                write(&self.keys).retain(|_, key| key.tenant_id != *id);
            }
            Change::Key(id) => {
                write(&self.keys).remove(id);
            }
        }
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        write(&self.tenants).clear();
        write(&self.keys).clear();
    }

    fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Release);
        self.clear();
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Applies other replicas' changes until the cache is dropped. Returns once the first attempt
/// to listen has been made, so a server starts with its cache already in use when it can be.
pub(crate) async fn spawn_listener(store: Store, cache: &Arc<StateCache>) -> Option<tokio::task::JoinHandle<()>> {
    let first = match store.invalidation_listener().await {
        // SQLite: one process owns the database; nothing to hear.
        Ok(None) => return None,
        Ok(Some(listener)) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for other replicas' changes yet; cache bypassed");
            None
        }
    };
    let weak = Arc::downgrade(cache);
    Some(tokio::spawn(async move {
        let mut listener = first;
        loop {
            let Some(current) = listener.as_mut() else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if weak.strong_count() == 0 {
                    return;
                }
                listener = store.invalidation_listener().await.unwrap_or_else(|error| {
                    tracing::debug!(%error, "invalidation listener still down");
                    None
                });
                continue;
            };
            match weak.upgrade() {
                Some(cache) => cache.set_enabled(true),
                None => return,
            }
            tracing::debug!("listening for other replicas' changes; cache in use");
            loop {
                let received = match tokio::time::timeout(QUIET_BEFORE_PROBE, current.next()).await {
                    Ok(received) => received,
                    // A quiet channel may be a dead one (a half-open connection never reports its
                    // end): send a probe through the database and expect to hear it.
                    Err(_) => match store.ping_invalidations().await {
                        Ok(()) => tokio::time::timeout(PROBE_ANSWER, current.next())
                            .await
                            .unwrap_or(Ok(None)),
                        Err(error) => Err(error),
                    },
                };
                let Some(cache) = weak.upgrade() else { return };
                match received {
                    Ok(Some(Heard::Change(what))) => cache.invalidate(&what),
                    Ok(Some(Heard::Ping)) => {}
                    Ok(Some(Heard::Unknown)) => cache.clear(),
                    // The connection dropped or went silent, so changes may have gone unheard:
                    // bypass the cache until a new listener is in place.
                    Ok(None) | Err(_) => {
                        tracing::warn!("lost the invalidation channel; cache bypassed until it is back");
                        cache.set_enabled(false);
                        break;
                    }
                }
            }
            listener = None;
        }
    }))
}
