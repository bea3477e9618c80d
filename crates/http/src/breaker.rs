//! Circuit breakers, one per (tenant, plugin, upstream host), kept in memory on each replica: a
//! vendor that keeps failing for one tenant is given a rest instead of being called as hard as a
//! live one, and another tenant's breaker, even on the same host, is never touched.
//!
//! Closed, a breaker counts requests and failures over a sliding window of one-second buckets; it
//! opens once at least `min_requests` were made and at least `failure_ratio` of them failed. Open,
//! calls fail at once without a request. After `open_for` it half-opens: one probe goes through,
//! and its outcome closes the breaker or opens it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use integrations_core::PluginConfig;
use std::time::{Duration, Instant, SystemTime};

/// More breakers than this and the idle ones (closed, nothing in their window) are forgotten.
const PRUNE_ABOVE: usize = 100_000;

/// How breakers decide.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// The window requests and failures are counted over.
    pub window: Duration,
    /// Requests the window must hold before the breaker may open.
    pub min_requests: u32,
    /// Share of failed requests in the window that opens the breaker.
    pub failure_ratio: f64,
    /// How long an open breaker refuses calls before it lets a probe through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30),
            min_requests: 10,
            failure_ratio: 0.5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// A breaker's state as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// One probe may go through.
    HalfOpen,
    /// Calls fail at once.
    Open,
}

impl BreakerState {
    /// The state's name in the API: `closed`, `half_open` or `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// A breaker as the API shows it: its state and, when open, when calls resume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerView {
    /// The state.
    pub state: BreakerState,
    /// When an open breaker lets a probe through.
    pub retry_at: Option<SystemTime>,
}

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

const CLOSED: BreakerView = BreakerView {
    state: BreakerState::Closed,
    retry_at: None,
};

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

/// Counts of one second of the window.
#[derive(Clone, Copy, Default)]
struct Bucket {
    second: u64,
    requests: u32,
    failures: u32,
}

enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

struct Inner {
    phase: Phase,
    buckets: Vec<Bucket>,
}

/// One upstream's breaker.
pub(crate) struct Breaker {
    settings: BreakerSettings,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// What a breaker would do with a request now.
enum Gate {
    /// Closed, with nothing in its window: the plugin may no longer call this host.
    Idle,
    /// A request would go through.
    Takes,
    /// Refused for this long.
    Refuses(Duration),
}

/// Leave to make one request, to be reported with [`Breaker::record`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// An ordinary request of a closed breaker.
    Counted,
    /// The half-open breaker's one probe.
    Probe,
}

impl Breaker {
    fn new(settings: BreakerSettings) -> Self {
        let seconds = settings.window.as_secs().max(1) as usize;
        Self {
            settings,
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                buckets: vec![Bucket::default(); seconds],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Lets a request through, or says how long until one may go.
    pub(crate) fn admit(&self, now: Instant) -> Result<Admission, Duration> {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Closed => Ok(Admission::Counted),
            Phase::Open { until } if now < until => Err(until - now),
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                inner.phase = Phase::HalfOpen { probing: true };
                Ok(Admission::Probe)
            }
            // The probe is out: others wait for its outcome.
            Phase::HalfOpen { probing: true } => Err(Duration::from_secs(1)),
        }
    }

    /// What [`Self::admit`] would do now, without changing anything.
    fn gate(&self, now: Instant) -> Gate {
        let inner = self.lock();
        match inner.phase {
            Phase::Open { until } if now < until => Gate::Refuses(until - now),
            Phase::HalfOpen { probing: true } => Gate::Refuses(Duration::from_secs(1)),
            Phase::Closed if self.window_is_empty(&inner, now) => Gate::Idle,
            Phase::Closed | Phase::Open { .. } | Phase::HalfOpen { probing: false } => Gate::Takes,
        }
    }

    /// Reports how an admitted request went; `None` when it was abandoned (the call was cancelled).
    pub(crate) fn record(&self, admission: &Admission, failed: Option<bool>, now: Instant) {
        let mut inner = self.lock();
        match (admission, failed) {
            (Admission::Probe, Some(false)) => {
                inner.phase = Phase::Closed;
                inner.buckets.iter_mut().for_each(|bucket| *bucket = Bucket::default());
                // The probe's success starts the new window: the host is in use.
                let second = self.second(now);
                let slots = inner.buckets.len() as u64;
                inner.buckets[(second % slots) as usize] = Bucket {
                    second,
                    requests: 1,
                    failures: 0,
                };
            }
            (Admission::Probe, Some(true)) => {
                inner.phase = Phase::Open {
                    until: now + self.settings.open_for,
                }
            }
            (Admission::Probe, None) => inner.phase = Phase::HalfOpen { probing: false },
            (Admission::Counted, None) => {}
            (Admission::Counted, Some(failed)) => {
                let second = self.second(now);
                let slots = inner.buckets.len() as u64;
                let bucket = &mut inner.buckets[(second % slots) as usize];
                if bucket.second != second {
                    *bucket = Bucket {
                        second,
                        ..Bucket::default()
                    };
                }
                bucket.requests += 1;
                bucket.failures += u32::from(failed);
                if matches!(inner.phase, Phase::Closed) && self.should_open(&inner.buckets, second) {
                    inner.phase = Phase::Open {
                        until: now + self.settings.open_for,
                    };
                }
            }
        }
    }

    fn should_open(&self, buckets: &[Bucket], second: u64) -> bool {
        let oldest = second.saturating_sub(buckets.len() as u64 - 1);
        let (requests, failures) = buckets
            .iter()
            .filter(|bucket| bucket.second >= oldest && bucket.second <= second)
            .fold((0u32, 0u32), |(r, f), bucket| {
                (r + bucket.requests, f + bucket.failures)
            });
        requests >= self.settings.min_requests
            && requests > 0
            && f64::from(failures) >= self.settings.failure_ratio * f64::from(requests)
    }

    fn view(&self, now: Instant) -> BreakerView {
        let inner = self.lock();
        match inner.phase {
            Phase::Closed => CLOSED,
            Phase::Open { until } if now < until => BreakerView {
                state: BreakerState::Open,
                retry_at: Some(SystemTime::now() + (until - now)),
            },
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerView {
                state: BreakerState::HalfOpen,
                retry_at: None,
            },
        }
    }

    fn is_idle(&self, now: Instant) -> bool {
        let inner = self.lock();
        matches!(inner.phase, Phase::Closed) && self.window_is_empty(&inner, now)
    }

    fn window_is_empty(&self, inner: &Inner, now: Instant) -> bool {
        let second = self.second(now);
        let oldest = second.saturating_sub(inner.buckets.len() as u64 - 1);
        inner.buckets.iter().all(|b| b.second < oldest || b.requests == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            window: Duration::from_secs(30),
            min_requests: 4,
            failure_ratio: 0.5,
            open_for: Duration::from_secs(30),
        }
    }

    fn record(breaker: &Breaker, failed: bool, now: Instant) {
        let admission = breaker.admit(now).expect("admitted");
        breaker.record(&admission, Some(failed), now);
    }

    #[test]
    fn opens_at_the_failure_ratio_once_enough_requests_were_made() {
        let breaker = Breaker::new(settings());
        let now = Instant::now();
        for failed in [true, true, true] {
            record(&breaker, failed, now);
        }
        assert_eq!(
            breaker.admit(now),
            Ok(Admission::Counted),
            "three requests are too few to judge"
        );
        breaker.record(&Admission::Counted, Some(false), now);
        // Four requests, three failed: open.
        let wait = breaker.admit(now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert_eq!(breaker.view(now).state, BreakerState::Open);
    }

    #[test]
    fn stays_closed_below_the_ratio_and_forgets_what_left_the_window() {
        let breaker = Breaker::new(settings());
        let start = Instant::now();
        for failed in [true, false, false, false, true] {
            record(&breaker, failed, start);
        }
        assert!(
            breaker.admit(start).is_ok(),
            "two failures in five stay below the ratio"
        );
        let other = Breaker::new(settings());
        for _ in 0..3 {
            record(&other, true, start);
        }
        // Three failures leave the window before a fourth comes: one request in the window.
        let later = start + Duration::from_secs(40);
        record(&other, true, later);
        assert_eq!(other.admit(later), Ok(Admission::Counted));
        // Within the window the fourth would have opened it.
        let within = Breaker::new(settings());
        for _ in 0..3 {
            record(&within, true, start);
        }
        record(&within, true, start + Duration::from_secs(20));
        assert!(within.admit(start + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn half_opens_after_the_rest_with_one_probe_that_decides() {
        let breaker = Breaker::new(settings());
        let now = Instant::now();
        for _ in 0..4 {
            record(&breaker, true, now);
        }
        let after = now + Duration::from_secs(31);
        assert_eq!(breaker.admit(after), Ok(Admission::Probe));
        assert!(breaker.admit(after).is_err(), "one probe at a time");
        breaker.record(&Admission::Probe, Some(true), after);
        assert_eq!(
            breaker.admit(after).unwrap_err(),
            Duration::from_secs(30),
            "a failed probe opens it again"
        );
        let later = after + Duration::from_secs(31);
        assert_eq!(breaker.admit(later), Ok(Admission::Probe));
        breaker.record(&Admission::Probe, Some(false), later);
        assert_eq!(breaker.view(later).state, BreakerState::Closed);
        assert_eq!(breaker.admit(later), Ok(Admission::Counted));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let breaker = Breaker::new(settings());
        let now = Instant::now();
        for _ in 0..4 {
            record(&breaker, true, now);
        }
        let after = now + Duration::from_secs(31);
        let probe = breaker.admit(after).unwrap();
        breaker.record(&probe, None, after);
        assert_eq!(breaker.admit(after), Ok(Admission::Probe));
    }

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
