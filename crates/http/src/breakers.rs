//! Circuit breakers, one per (tenant, plugin, upstream host), kept in memory on each replica: a
//! vendor that keeps failing for one tenant is given a rest instead of being called as hard as a
//! live one, and another tenant's breaker, even on the same host, is never touched. Looked up with
//! borrowed names (no allocation on a call's path), each tenant's and plugin's behind locks of
//! their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use integrations_core::PluginConfig;

use crate::breaker::{Breaker, BreakerSettings, BreakerView, Gate, CLOSED};

/// More breakers than this and the idle ones (closed, nothing in their window) are forgotten.
const PRUNE_ABOVE: usize = 100_000;

/// Every breaker of this replica, by tenant and plugin, then by upstream host.
pub struct Breakers {
    settings: BreakerSettings,
    /// Read-mostly index: written only when a (tenant, plugin) is first seen. Each plugin's hosts
    /// and each breaker's state sit behind locks of their own, so tenants never wait for each
    /// other's calls.
    index: RwLock<Index>,
}

#[derive(Default)]
struct Index {
    /// Looked up with borrowed names: no allocation on a call's path.
    tenants: HashMap<String, HashMap<String, Arc<UpstreamBreakers>>>,
    /// (tenant, plugin) entries in `tenants`.
    entries: usize,
}

impl Breakers {
    /// Breakers deciding by `settings`.
    pub fn new(settings: BreakerSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            index: RwLock::default(),
        })
    }

    /// `tenant`'s breakers for `plugin`'s upstream hosts, created on first use.
    pub fn of(&self, tenant: &str, plugin: &str) -> Arc<UpstreamBreakers> {
        if let Some(found) = self.find(tenant, plugin) {
            return found;
        }
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        if index.entries >= PRUNE_ABOVE {
            prune(&mut index, Instant::now());
        }
        let Index { tenants, entries } = &mut *index;
        tenants
            .entry(tenant.to_owned())
            .or_default()
            .entry(plugin.to_owned())
            .or_insert_with(|| {
                *entries += 1;
                Arc::new(UpstreamBreakers::new(self.settings))
            })
            .clone()
    }

    fn find(&self, tenant: &str, plugin: &str) -> Option<Arc<UpstreamBreakers>> {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        index.tenants.get(tenant)?.get(plugin).cloned()
    }

    /// The state of `tenant`'s calls to `plugin`'s upstream: the worst of its hosts' breakers
    /// (closed when it has made no call on this replica).
    pub fn view(&self, tenant: &str, plugin: &str) -> BreakerView {
        self.find(tenant, plugin)
            .map_or(CLOSED, |upstream| upstream.view(Instant::now()))
    }
}

/// Forgets the idle (tenant, plugin) entries that no call holds.
fn prune(index: &mut Index, now: Instant) {
    for plugins in index.tenants.values_mut() {
        plugins.retain(|_, upstream| Arc::strong_count(upstream) > 1 || !upstream.is_idle(now));
    }
    index.tenants.retain(|_, plugins| !plugins.is_empty());
    index.entries = index.tenants.values().map(HashMap::len).sum();
}

/// One tenant's breakers for one plugin, one per upstream host.
pub struct UpstreamBreakers {
    settings: BreakerSettings,
    hosts: RwLock<HashMap<String, Arc<Breaker>>>,
    /// The plugin config the hosts' breakers were last used with: another config may send calls
    /// to another host, so only calls with this one are refused before they are built.
    learned_with: Mutex<Weak<PluginConfig>>,
}

impl UpstreamBreakers {
    fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            hosts: RwLock::default(),
            learned_with: Mutex::new(Weak::new()),
        }
    }

    /// The breaker of `host` (lowercase).
    pub(crate) fn host(&self, host: &str) -> Arc<Breaker> {
        if let Some(breaker) = self.hosts.read().unwrap_or_else(|p| p.into_inner()).get(host) {
            return breaker.clone();
        }
        self.hosts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Breaker::new(self.settings)))
            .clone()
    }

    /// Notes that a call with `config` went through these breakers.
    pub fn learned(&self, config: &Arc<PluginConfig>) {
        let mut learned_with = self.learned_with.lock().unwrap_or_else(|p| p.into_inner());
        if !Weak::ptr_eq(&learned_with, &Arc::downgrade(config)) {
            *learned_with = Arc::downgrade(config);
        }
    }

    /// How long until a call with `config` may be tried, when every host in use refuses now, so
    /// the call can be answered before the plugin builds a request. `None` when a host in use
    /// would take a request (or a half-open breaker's probe), when none is in use, or when no
    /// call was made with `config` yet (it may go to another host). Hosts in use are those not
    /// closed or with requests in the window: a host the plugin stopped calling does not count.
    pub fn refusal(&self, config: &Arc<PluginConfig>, now: Instant) -> Option<Duration> {
        let same_config = Weak::ptr_eq(
            &self.learned_with.lock().unwrap_or_else(|p| p.into_inner()),
            &Arc::downgrade(config),
        );
        if !same_config {
            return None;
        }
        let hosts = self.hosts.read().unwrap_or_else(|p| p.into_inner());
        let mut soonest: Option<Duration> = None;
        for breaker in hosts.values() {
            match breaker.gate(now) {
                Gate::Idle => {}
                Gate::Takes => return None,
                Gate::Refuses(wait) => soonest = Some(soonest.map_or(wait, |shortest| shortest.min(wait))),
            }
        }
        soonest
    }

    fn view(&self, now: Instant) -> BreakerView {
        let hosts = self.hosts.read().unwrap_or_else(|p| p.into_inner());
        hosts
            .values()
            .map(|breaker| breaker.view(now))
            .max_by_key(|view| (view.state, view.retry_at))
            .unwrap_or(CLOSED)
    }

    fn is_idle(&self, now: Instant) -> bool {
        let hosts = self.hosts.read().unwrap_or_else(|p| p.into_inner());
        hosts.values().all(|breaker| breaker.is_idle(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::tests::{record, settings};
    use crate::breaker::{Admission, BreakerState};

    #[test]
    fn tenants_have_breakers_of_their_own_on_the_same_host() {
        let breakers = Breakers::new(settings());
        let now = Instant::now();
        let acme = breakers.of("acme", "jira").host("jira.example");
        for _ in 0..4 {
            record(&acme, true, now);
        }
        assert_eq!(breakers.view("acme", "jira").state, BreakerState::Open);
        assert_eq!(breakers.view("globex", "jira").state, BreakerState::Closed);
        assert!(breakers.of("globex", "jira").host("jira.example").admit(now).is_ok());
        let config = config();
        breakers.of("acme", "jira").learned(&config);
        breakers.of("globex", "jira").learned(&config);
        assert!(breakers.of("globex", "jira").refusal(&config, now).is_none());
        assert_eq!(
            breakers.of("acme", "jira").refusal(&config, now),
            Some(Duration::from_secs(30))
        );
    }

    fn config() -> Arc<PluginConfig> {
        Arc::new(PluginConfig::new(Default::default(), Default::default()))
    }

    #[test]
    fn a_call_is_refused_up_front_only_when_every_host_in_use_refuses() {
        let breakers = Breakers::new(settings());
        let now = Instant::now();
        let config = config();
        let upstream = breakers.of("acme", "graph");
        assert_eq!(upstream.refusal(&config, now), None, "no host called yet");
        let login = upstream.host("login.example");
        let api = upstream.host("graph.example");
        upstream.learned(&config);
        record(&login, false, now);
        for _ in 0..4 {
            record(&api, true, now);
        }
        assert_eq!(
            upstream.refusal(&config, now),
            None,
            "the login host still takes requests"
        );
        // With its earlier success: four requests, three failed.
        for _ in 0..3 {
            record(&login, true, now + Duration::from_secs(5));
        }
        assert_eq!(
            upstream.refusal(&config, now + Duration::from_secs(5)),
            Some(Duration::from_secs(25)),
            "the soonest host to take a probe"
        );
        assert_eq!(
            upstream.refusal(&self::config(), now + Duration::from_secs(5)),
            None,
            "another config may call another host"
        );
        let after = now + Duration::from_secs(31);
        assert_eq!(upstream.refusal(&config, after), None, "the API host takes a probe");
        assert_eq!(api.admit(after), Ok(Admission::Probe));
        assert_eq!(
            upstream.refusal(&config, after),
            Some(Duration::from_secs(1)),
            "its probe is out, the login host's too"
        );
    }

    #[test]
    fn a_host_no_longer_called_does_not_hold_calls_back() {
        let breakers = Breakers::new(settings());
        let now = Instant::now();
        let config = config();
        let upstream = breakers.of("acme", "jira");
        let old_site = upstream.host("old.example");
        record(&old_site, false, now);
        let new_site = upstream.host("new.example");
        for _ in 0..4 {
            record(&new_site, true, now + Duration::from_secs(60));
        }
        upstream.learned(&config);
        assert_eq!(
            upstream.refusal(&config, now + Duration::from_secs(60)),
            Some(Duration::from_secs(30)),
            "the old site's breaker has nothing in its window"
        );
    }

    #[test]
    fn idle_entries_that_no_call_holds_are_pruned() {
        let breakers = Breakers::new(settings());
        let now = Instant::now();
        let held = breakers.of("acme", "jira");
        held.host("jira.example");
        let failing = breakers.of("globex", "jira").host("jira.example");
        record(&failing, true, now);
        drop(failing);
        breakers.of("initech", "jira").host("jira.example");
        let mut index = breakers.index.write().unwrap();
        prune(&mut index, now);
        assert_eq!(index.entries, 2, "initech's idle entry goes");
        assert!(index.tenants.contains_key("acme") && index.tenants.contains_key("globex"));
    }
}
