//! Work of one tenant in flight on this replica (tool calls, long-polls), counted per tenant so
//! that one tenant's many slow requests never take what the others need.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts per tenant; an entry exists only while its tenant has something in flight.
#[derive(Default)]
pub(crate) struct InFlight {
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

/// One unit of a tenant's work in flight; dropping it ends it.
pub(crate) struct InFlightPermit {
    counts: Arc<Mutex<HashMap<String, u32>>>,
    tenant: String,
}

impl InFlight {
    /// Starts one more unit of `tenant`'s work, unless it already has `limit` in flight.
    pub(crate) fn try_start(&self, tenant: &str, limit: u32) -> Option<InFlightPermit> {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match counts.get_mut(tenant) {
            Some(count) if *count >= limit => return None,
            Some(count) => *count += 1,
            None if limit == 0 => return None,
            None => {
                counts.insert(tenant.to_owned(), 1);
            }
        }
        drop(counts);
        Some(InFlightPermit {
            counts: self.counts.clone(),
            tenant: tenant.to_owned(),
        })
    }

    #[cfg(test)]
    fn count(&self, tenant: &str) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.get(tenant).copied().unwrap_or(0)
    }
}

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_limit_is_refused_and_others_are_not() {
        let in_flight = InFlight::default();
        let first = in_flight.try_start("acme", 2).unwrap();
        let _second = in_flight.try_start("acme", 2).unwrap();
        assert!(in_flight.try_start("acme", 2).is_none());
        assert!(in_flight.try_start("globex", 2).is_some());
        drop(first);
        assert!(in_flight.try_start("acme", 2).is_some());
        assert_eq!(
            in_flight.count("acme"),
            1,
            "the refused and the dropped attempts count nothing"
        );
        assert!(in_flight.try_start("initech", 0).is_none());
        assert!(in_flight.counts.lock().unwrap().get("initech").is_none());
    }
}
