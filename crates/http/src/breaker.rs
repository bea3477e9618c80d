//! Circuit breakers, one per (tenant, plugin, upstream host), kept in memory on each replica: a
//! vendor that keeps failing for one tenant is given a rest instead of being called as hard as a
//! live one, and another tenant's breaker, even on the same host, is never touched.
//!
//! Closed, a breaker counts requests and failures over a sliding window of one-second buckets; it
//! opens once at least `min_requests` were made and at least `failure_ratio` of them failed. Open,
//! calls fail at once without a request. After `open_for` it half-opens: one probe goes through,
//! and its outcome closes the breaker or opens it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
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

#[derive(Clone, PartialEq, Eq, Hash)]
struct BreakerKey {
    tenant: String,
    plugin: String,
    host: String,
}

/// Every breaker of this replica.
pub struct Breakers {
    settings: BreakerSettings,
    /// Read-mostly index: written only when a (tenant, plugin, host) is first seen. Each breaker's
    /// state sits behind its own lock, so tenants never wait for each other's calls.
    index: RwLock<HashMap<BreakerKey, Arc<Breaker>>>,
}

impl Breakers {
    /// Breakers deciding by `settings`.
    pub fn new(settings: BreakerSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            index: RwLock::default(),
        })
    }

    pub(crate) fn breaker(&self, tenant: &str, plugin: &str, host: &str) -> Arc<Breaker> {
        let key = BreakerKey {
            tenant: tenant.to_owned(),
            plugin: plugin.to_owned(),
            host: host.to_owned(),
        };
        if let Some(breaker) = self.index.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return breaker.clone();
        }
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        if index.len() >= PRUNE_ABOVE {
            let now = Instant::now();
            index.retain(|_, breaker| Arc::strong_count(breaker) > 1 || !breaker.is_idle(now));
        }
        index
            .entry(key)
            .or_insert_with(|| Arc::new(Breaker::new(self.settings)))
            .clone()
    }

    /// The state of `tenant`'s calls to `plugin`'s upstream: the worst of its hosts' breakers
    /// (closed when it has made no call on this replica).
    pub fn view(&self, tenant: &str, plugin: &str) -> BreakerView {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        index
            .iter()
            .filter(|(key, _)| key.tenant == tenant && key.plugin == plugin)
            .map(|(_, breaker)| breaker.view(now))
            .max_by_key(|view| (view.state, view.retry_at))
            .unwrap_or(BreakerView {
                state: BreakerState::Closed,
                retry_at: None,
            })
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

    /// Reports how an admitted request went; `None` when it was abandoned (the call was cancelled).
    pub(crate) fn record(&self, admission: &Admission, failed: Option<bool>, now: Instant) {
        let mut inner = self.lock();
        match (admission, failed) {
            (Admission::Probe, Some(false)) => {
                inner.phase = Phase::Closed;
                inner.buckets.iter_mut().for_each(|bucket| *bucket = Bucket::default());
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
            Phase::Closed => BreakerView {
                state: BreakerState::Closed,
                retry_at: None,
            },
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
        let second = self.second(now);
        let oldest = second.saturating_sub(inner.buckets.len() as u64 - 1);
        matches!(inner.phase, Phase::Closed) && inner.buckets.iter().all(|b| b.second < oldest || b.requests == 0)
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
        let acme = breakers.breaker("acme", "jira", "jira.example");
        for _ in 0..4 {
            record(&acme, true, now);
        }
        assert_eq!(breakers.view("acme", "jira").state, BreakerState::Open);
        assert_eq!(breakers.view("globex", "jira").state, BreakerState::Closed);
        assert!(breakers.breaker("globex", "jira", "jira.example").admit(now).is_ok());
    }
}
