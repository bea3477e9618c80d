//! The dispatcher's memory budget: the event data of the deliveries it holds (claimed and not yet
//! attempted, or in flight) stays under a limit, whatever the events' sizes, so slow endpoints
//! and large events cannot grow the process (16 slow endpoints and 1 MiB events once held
//! 1.4 GB). Claims admit deliveries in their order until the next would pass the limit; the
//! rest go back to the database. One delivery always proceeds when nothing is held, so an event
//! larger than the whole budget is still delivered.

use std::sync::Mutex;

/// Bytes held against the limit.
pub(crate) struct MemoryBudget {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bytes of the deliveries held.
    bytes: usize,
    /// Deliveries held.
    deliveries: usize,
    /// The size of the delivery a claim last stopped at: claiming again is pointless until it fits.
    blocked_on: Option<usize>,
    /// The most bytes held at once.
    peak: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            state: Mutex::default(),
        }
    }

    /// Whether a claim could admit anything now.
    pub(crate) fn may_claim(&self) -> bool {
        let state = self.state();
        let needed = state.blocked_on.unwrap_or(1);
        state.deliveries == 0 || state.bytes.saturating_add(needed) <= self.limit
    }

    /// Admits the longest prefix of `sizes` (claim order) that fits, at least one when nothing is
    /// held; returns how many.
    pub(crate) fn admit(&self, sizes: &[usize]) -> usize {
        let mut state = self.state();
        let mut admitted = 0;
        for &size in sizes {
            let fits = state.bytes.saturating_add(size) <= self.limit;
            if !fits && state.deliveries > 0 {
                state.blocked_on = Some(size);
                break;
            }
            state.bytes = state.bytes.saturating_add(size);
            state.deliveries += 1;
            admitted += 1;
        }
        if admitted == sizes.len() {
            state.blocked_on = None;
        }
        state.peak = state.peak.max(state.bytes);
        admitted
    }

    /// A held delivery of `size` bytes is let go; returns whether a claim that was waiting for
    /// room may now go ahead.
    pub(crate) fn release(&self, size: usize) -> bool {
        let mut state = self.state();
        let could = state.deliveries == 0 || state.bytes.saturating_add(state.blocked_on.unwrap_or(1)) <= self.limit;
        state.bytes = state.bytes.saturating_sub(size);
        state.deliveries = state.deliveries.saturating_sub(1);
        let can = state.deliveries == 0 || state.bytes.saturating_add(state.blocked_on.unwrap_or(1)) <= self.limit;
        can && !could
    }

    /// The most bytes held at once so far.
    #[cfg(test)]
    pub(crate) fn peak(&self) -> usize {
        self.state().peak
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_in_order_until_the_next_would_not_fit() {
        let budget = MemoryBudget::new(100);
        assert_eq!(
            budget.admit(&[40, 40, 30, 10]),
            2,
            "the third would pass 100; the fourth waits its turn"
        );
        assert!(!budget.may_claim(), "the 30 it stopped at do not fit yet");
        assert!(budget.release(40), "40 held: the 30 fit now, a waiting claim may go");
        assert!(budget.may_claim());
        assert_eq!(budget.admit(&[30, 10, 30]), 2);
        assert!(!budget.may_claim(), "80 held: the next 30 do not fit");
        assert_eq!(budget.peak(), 80);
    }

    #[test]
    fn one_delivery_larger_than_the_budget_proceeds_alone() {
        let budget = MemoryBudget::new(100);
        assert_eq!(budget.admit(&[500, 1]), 1);
        assert!(!budget.may_claim());
        assert!(budget.release(500));
        assert_eq!(budget.admit(&[1]), 1);
    }
}
