//! When attempts are made: a list of delays (Svix's by default), each jittered by ±20%, a longer
//! `Retry-After` honoured.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

/// Longest `Retry-After` honoured; a receiver asking for more gets this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delays before each attempt: the first before the first attempt, then one after each
/// failure. Its length is the number of attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected comma-separated whole seconds, at least one, e.g. 0,5,300")]
pub struct InvalidSchedule;

impl Default for RetrySchedule {
    /// Svix's: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    fn default() -> Self {
        Self(
            [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl std::str::FromStr for RetrySchedule {
    type Err = InvalidSchedule;

    /// `0,5,300,…` in seconds.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let delays = list
            .split(',')
            .map(|secs| secs.trim().parse::<u64>().map(Duration::from_secs))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| InvalidSchedule)?;
        Self::new(delays)
    }
}

impl RetrySchedule {
    /// A schedule of these delays; at least one.
    pub fn new(delays: Vec<Duration>) -> Result<Self, InvalidSchedule> {
        if delays.is_empty() {
            return Err(InvalidSchedule);
        }
        Ok(Self(delays))
    }

    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// The jittered delay before the first attempt.
    pub fn first_delay(&self) -> Duration {
        jitter(self.0[0])
    }

    /// When attempt `failed + 1` is due after `failed` attempts failed, as a delay from now:
    /// the jittered scheduled delay or `retry_after` if longer (capped at [`MAX_RETRY_AFTER`]).
    /// `None` when the schedule is exhausted.
    pub fn delay_after(&self, failed: usize, retry_after: Option<Duration>) -> Option<Duration> {
        let scheduled = jitter(*self.0.get(failed)?);
        let asked = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
        Some(scheduled.max(asked))
    }
}

/// `delay` scaled by a random factor in [0.8, 1.2).
fn jitter(delay: Duration) -> Duration {
    let mut random = [0u8; 4];
    // Without randomness the delay goes unjittered, which only loses the spreading.
    if SystemRandom::new().fill(&mut random).is_err() {
        return delay;
    }
    let unit = f64::from(u32::from_be_bytes(random)) / (f64::from(u32::MAX) + 1.0);
    delay.mul_f64(0.8 + 0.4 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_svix_schedule() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.first_delay(), Duration::ZERO);
        assert_eq!(schedule, "0,5,300,1800,7200,18000,36000,36000".parse().unwrap());
        assert!(schedule.delay_after(8, None).is_none(), "eight attempts, then dead");
    }

    #[test]
    fn delays_are_jittered_within_twenty_percent() {
        let schedule: RetrySchedule = "0,100".parse().unwrap();
        let delays: Vec<Duration> = (0..200).map(|_| schedule.delay_after(1, None).unwrap()).collect();
        assert!(delays
            .iter()
            .all(|d| *d >= Duration::from_secs(80) && *d < Duration::from_secs(120)));
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter spreads the delays");
    }

    #[test]
    fn a_longer_retry_after_wins_and_is_capped() {
        let schedule: RetrySchedule = "0,1".parse().unwrap();
        let asked = Duration::from_secs(30);
        assert_eq!(schedule.delay_after(1, Some(asked)), Some(asked));
        assert!(schedule.delay_after(1, Some(Duration::ZERO)).unwrap() < Duration::from_secs(2));
        assert_eq!(
            schedule.delay_after(1, Some(Duration::from_secs(10 * 86_400))),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn malformed_schedules_are_refused() {
        for bad in ["", "a", "1,,2", "-1", "5;6"] {
            assert_eq!(bad.parse::<RetrySchedule>(), Err(InvalidSchedule), "{bad:?}");
        }
    }
}
