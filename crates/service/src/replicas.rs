//! This replica's heartbeat: it tells the others it is alive and learns how many share the
//! deployment's rate limits.

use std::time::Duration;

use crate::{now_unix, Service};

/// How often a replica says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// A replica not heard from for this long no longer takes a share.
const HEARTBEAT_TTL_SECS: i64 = 15;

impl Service {
    /// Starts announcing this replica and following how many there are; stops with the service.
    pub fn start_replica_heartbeat(&self) {
        let store = self.store.clone();
        let limiters = self.rate_limiters.clone();
        let replica = self.replica_id.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
            loop {
                ticks.tick().await;
                match store.replica_heartbeat(&replica, now_unix(), HEARTBEAT_TTL_SECS).await {
                    Ok(live) => limiters.set_replicas(live),
                    // Keep the last count: a database blip must not hand each replica the whole limit.
                    Err(error) => tracing::warn!(%error, "cannot record this replica's heartbeat"),
                }
            }
        });
        self.keep_background(task);
    }

    /// Tells the other replicas this one is stopping, so they take its share at once.
    pub async fn leave_replicas(&self) {
        if let Err(error) = self.store.replica_gone(&self.replica_id).await {
            tracing::warn!(%error, "cannot withdraw this replica's heartbeat");
        }
    }

    /// How many replicas share each rate limit, as this replica last heard.
    pub fn live_replicas(&self) -> u32 {
        self.rate_limiters.replicas()
    }
}
