//! Endpoints with a rate limit: their deliveries wait for send slots instead of being dropped.
//!
//! A dispatcher reserves one slot per delivery it claims, from the endpoint's row (the next free
//! slot is stored there), so the slots of every replica together keep the rate. A delivery waits
//! for its slot in memory without holding one of the global senders, and claims take at most
//! [`PACED_CLAIM_SECS`] seconds' worth of a rate-limited endpoint's deliveries at a time, so a slow
//! rate holds little and other endpoints are never slowed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use integrations_store::{DeliveryJob, Store, StoreError};

/// Seconds of sends a claim takes of a rate-limited endpoint.
pub(crate) const PACED_CLAIM_SECS: i64 = 2;

/// Microseconds between two sends at `rate` per second, rounded up (never faster than the rate).
fn interval_us(rate: u32) -> i64 {
    let rate = i64::from(rate.max(1));
    (1_000_000 + rate - 1) / rate
}

/// How many deliveries of an endpoint with `rate` (if any) a queue of `room` may hold.
pub(crate) fn queue_room(rate: Option<u32>, room: usize) -> usize {
    match rate {
        Some(rate) => room.min((i64::from(rate) * PACED_CLAIM_SECS).max(1) as usize),
        None => room,
    }
}

/// Reserves send slots for the claimed `jobs` of rate-limited endpoints, in the order given;
/// returns, by delivery, the instant before which it must not be sent.
pub(crate) async fn reserve_slots(store: &Store, jobs: &[DeliveryJob]) -> Result<HashMap<i64, Instant>, StoreError> {
    let mut by_endpoint: HashMap<&str, (u32, Vec<i64>)> = HashMap::new();
    for job in jobs {
        if let Some(rate) = job.endpoint.rate_limit_per_sec {
            let entry = by_endpoint.entry(&job.endpoint.id).or_insert((rate, Vec::new()));
            entry.1.push(job.delivery_id);
        }
    }
    let mut not_before = HashMap::new();
    for (endpoint, (rate, deliveries)) in by_endpoint {
        let interval = interval_us(rate);
        let now_us = now_micros();
        let first = store
            .reserve_send_slots(endpoint, deliveries.len() as i64, interval, now_us)
            .await?;
        let now = Instant::now();
        for (n, delivery) in deliveries.into_iter().enumerate() {
            let wait = first + n as i64 * interval - now_us;
            not_before.insert(delivery, now + Duration::from_micros(wait.max(0) as u64));
        }
    }
    Ok(not_before)
}

/// Now, unix microseconds.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_never_closer_than_the_rate() {
        assert_eq!(interval_us(2), 500_000);
        assert_eq!(interval_us(3), 333_334);
        assert_eq!(interval_us(1_000_000), 1);
        assert!(interval_us(7) * 7 >= 1_000_000);
    }

    #[test]
    fn a_rate_limited_queue_holds_a_few_seconds_of_sends() {
        assert_eq!(queue_room(None, 64), 64);
        assert_eq!(queue_room(Some(2), 64), 4);
        assert_eq!(queue_room(Some(1_000), 64), 64);
    }
}
