//! Per-tenant token buckets (GCRA, from governor), each replica holding its share of the
//! deployment's limit: with `n` live replicas a replica refills at `per_sec / n` and holds at
//! most `burst / n` (at least one), so behind a load balancer that spreads requests the tenant
//! meets the limit it was given, not `n` times it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use integrations_store::RateLimit;

use crate::{RateLimited, RateScope};

/// More buckets than this and the map starts over (a bucket refills anyway within a second or so).
const MAX_BUCKETS: usize = 200_000;

struct Bucket {
    share: RateLimit,
    limiter: DefaultDirectRateLimiter,
}

/// Every tenant's buckets on this replica.
pub(crate) struct RateLimiters {
    replicas: AtomicU32,
    clock: DefaultClock,
    api: RwLock<HashMap<String, Arc<Bucket>>>,
    webhooks: RwLock<HashMap<String, Arc<Bucket>>>,
}

impl RateLimiters {
    pub(crate) fn new() -> Self {
        Self {
            replicas: AtomicU32::new(1),
            clock: DefaultClock::default(),
            api: RwLock::default(),
            webhooks: RwLock::default(),
        }
    }

    /// Sets how many replicas share each limit.
    pub(crate) fn set_replicas(&self, replicas: u32) {
        self.replicas.store(replicas.max(1), Ordering::Relaxed);
    }

    /// How many replicas share each limit.
    pub(crate) fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed)
    }

    /// Takes one token from the tenant's bucket for `scope`, or says when one will be there.
    pub(crate) fn check(&self, scope: RateScope, tenant: &str, limit: Option<RateLimit>) -> Result<(), RateLimited> {
        let Some(limit) = limit else { return Ok(()) };
        let share = share(limit, self.replicas());
        let bucket = self.bucket(scope, tenant, share);
        bucket.limiter.check().map_err(|not_until| RateLimited {
            scope,
            limit: share,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    fn bucket(&self, scope: RateScope, tenant: &str, share: RateLimit) -> Arc<Bucket> {
        let map = match scope {
            RateScope::Api => &self.api,
            RateScope::Webhooks => &self.webhooks,
        };
        if let Some(bucket) = read(map).get(tenant) {
            if bucket.share == share {
                return bucket.clone();
            }
        }
        // New, or its limit changed (an operator's change, a replica joining or leaving): a new
        // bucket, full, as a new limit starts.
        let mut buckets = map.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get(tenant).filter(|bucket| bucket.share == share) {
            return bucket.clone();
        }
        if buckets.len() >= MAX_BUCKETS {
            buckets.clear();
        }
        let bucket = Arc::new(Bucket {
            share,
            limiter: DefaultDirectRateLimiter::direct_with_clock(quota(share), self.clock.clone()),
        });
        buckets.insert(tenant.to_owned(), bucket.clone());
        bucket
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One replica's share of `limit` among `replicas`.
pub(crate) fn share(limit: RateLimit, replicas: u32) -> RateLimit {
    let replicas = replicas.max(1);
    RateLimit {
        per_sec: limit.per_sec / f64::from(replicas),
        burst: (limit.burst / replicas).max(1),
    }
}

fn quota(limit: RateLimit) -> Quota {
    let burst = std::num::NonZeroU32::new(limit.burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    // Rates are checked to be positive and at most a million per second when set.
    let period = Duration::from_secs_f64(1.0 / limit.per_sec.max(1e-6)).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_sec: f64, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { per_sec, burst })
    }

    #[test]
    fn allows_the_burst_then_refuses_with_the_wait() {
        let limiters = RateLimiters::new();
        for _ in 0..3 {
            assert!(limiters.check(RateScope::Api, "acme", limit(1.0, 3)).is_ok());
        }
        let refused = limiters.check(RateScope::Api, "acme", limit(1.0, 3)).unwrap_err();
        assert!(refused.retry_after > Duration::from_millis(500) && refused.retry_after <= Duration::from_secs(1));
        assert_eq!(refused.limit, RateLimit { per_sec: 1.0, burst: 3 });
    }

    #[test]
    fn tenants_and_scopes_have_buckets_of_their_own() {
        let limiters = RateLimiters::new();
        assert!(limiters.check(RateScope::Api, "acme", limit(0.1, 1)).is_ok());
        assert!(limiters.check(RateScope::Api, "acme", limit(0.1, 1)).is_err());
        assert!(limiters.check(RateScope::Api, "globex", limit(0.1, 1)).is_ok());
        assert!(limiters.check(RateScope::Webhooks, "acme", limit(0.1, 1)).is_ok());
        assert!(limiters.check(RateScope::Api, "acme", None).is_ok());
    }

    #[test]
    fn each_replica_takes_its_share() {
        let limiters = RateLimiters::new();
        limiters.set_replicas(2);
        let allowed = (0..10)
            .filter(|_| limiters.check(RateScope::Api, "acme", limit(0.01, 10)).is_ok())
            .count();
        assert_eq!(allowed, 5);
        assert_eq!(
            share(
                RateLimit {
                    per_sec: 10.0,
                    burst: 1
                },
                4
            ),
            RateLimit { per_sec: 2.5, burst: 1 }
        );
    }

    #[test]
    fn a_changed_limit_takes_effect_at_once() {
        let limiters = RateLimiters::new();
        assert!(limiters.check(RateScope::Api, "acme", limit(0.01, 1)).is_ok());
        assert!(limiters.check(RateScope::Api, "acme", limit(0.01, 1)).is_err());
        assert!(limiters.check(RateScope::Api, "acme", limit(0.01, 5)).is_ok());
    }
}
