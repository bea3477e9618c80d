//! One circuit breaker: the state machine that decides whether a request may go to one upstream
//! host for one tenant and plugin (the index of them all is [`crate::breakers`]).
//!
//! Closed, a breaker counts requests and failures over a sliding window of one-second buckets; it
//! opens once at least `min_requests` were made and at least `failure_ratio` of them failed. Open,
//! calls fail at once without a request. After `open_for` it half-opens: one probe goes through,
//! and its outcome closes the breaker or opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

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

/// A closed breaker's view, and the view of an upstream not called yet.
pub(crate) const CLOSED: BreakerView = BreakerView {
    state: BreakerState::Closed,
    retry_at: None,
};

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
pub(crate) enum Gate {
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
    pub(crate) fn new(settings: BreakerSettings) -> Self {
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
    pub(crate) fn gate(&self, now: Instant) -> Gate {
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

    pub(crate) fn view(&self, now: Instant) -> BreakerView {
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

    pub(crate) fn is_idle(&self, now: Instant) -> bool {
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn settings() -> BreakerSettings {
        BreakerSettings {
            window: Duration::from_secs(30),
            min_requests: 4,
            failure_ratio: 0.5,
            open_for: Duration::from_secs(30),
        }
    }

    pub(crate) fn record(breaker: &Breaker, failed: bool, now: Instant) {
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
}
