//! Outbound webhooks to tenants' endpoints, Standard Webhooks style (the scheme Svix uses).
//!
//! The [`fanout`] consumer follows the event log with its own cursor and writes one delivery per
//! matching enabled endpoint, in the transaction that advances the cursor; the [`dispatcher`]
//! leases due deliveries, signs and sends them through the tenant's guarded client, and records
//! each attempt with the delivery's next state. The service supplies what only it knows (the
//! tenant's client and its data key) through [`DeliveryContext`].

mod budget;
mod dispatcher;
mod endpoint_url;
mod fanout;
mod filter;
mod pacing;
mod schedule;
mod signing;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::HttpClient;
use integrations_store::Store;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use endpoint_url::{normalize_endpoint_url, InvalidEndpointUrl, MAX_URL_CHARS};
pub use filter::{matches, validate_filters, InvalidFilter, MAX_FILTERS};
pub use schedule::{InvalidSchedule, RetrySchedule, MAX_RETRY_AFTER};
pub use signing::{signature_header, RandomFailed, SigningSecret, SECRET_BYTES, SECRET_PREFIX};

/// The event log's cursor name of the fan-out consumer.
pub const CONSUMER: &str = "outbound";

/// How much of a receiver's answer an attempt keeps.
pub const MAX_RECORDED_BODY: usize = 4096;

/// How long a replaced secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// How the outbound work runs.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// When attempts are made.
    pub schedule: RetrySchedule,
    /// Longest an attempt may take (the tenant client's own timeout also applies).
    pub timeout: Duration,
    /// Deliveries in flight at once on this replica, over all endpoints.
    pub concurrency: usize,
    /// Deliveries in flight at once on this replica to one endpoint.
    pub per_endpoint: usize,
    /// An endpoint's claimed queue holds `per_endpoint × prefetch_rounds` deliveries, so one
    /// claim feeds its senders for a while: claims take the database's single writer on SQLite,
    /// and at 4 rounds a fast endpoint got about 1,000 deliveries/s, at 16 about 5,000/s (bench
    /// P4). The leases of queued deliveries are renewed while they wait (see `lease`).
    pub prefetch_rounds: usize,
    /// An endpoint failing for this long without a success is disabled.
    pub disable_after: Duration,
    /// Positions of the log (events) the fan-out covers per step.
    pub fanout_batch: i64,
    /// Most deliveries the fan-out writes in one transaction: an event of a tenant with more
    /// endpoints is written over several, so no tenant holds the database's writer for long.
    pub fanout_max_deliveries: usize,
    /// How often the fan-out and the dispatcher look at the database when nothing woke them
    /// (another replica's appends and due retries wake nobody here).
    pub poll_interval: Duration,
    /// Most bytes of event data the dispatcher holds for claimed deliveries not yet done
    /// (queued or in flight); it claims less, or waits, rather than pass it, but always lets one
    /// delivery proceed.
    pub memory_budget_bytes: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            concurrency: 64,
            per_endpoint: 4,
            prefetch_rounds: 16,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            fanout_batch: 256,
            fanout_max_deliveries: 1_000,
            poll_interval: Duration::from_millis(250),
            memory_budget_bytes: 64 * 1024 * 1024,
        }
    }
}

impl DeliverySettings {
    /// How long a claim leases its deliveries: an attempt at the timeout and time to record it.
    /// The dispatcher renews the leases of what it still holds every third of this, so a
    /// replica that dies leaves its deliveries, queued or in flight, to others within one lease.
    fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }

    /// How often held leases are renewed.
    fn lease_renewal(&self) -> Duration {
        self.lease() / 3
    }
}

/// Why the service could not supply what a delivery needs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(pub String);

/// What only the service knows: the tenant's outbound client and its data key.
#[async_trait]
pub trait DeliveryContext: Send + Sync + 'static {
    /// The tenant's SSRF-guarded client (its allowlist applied, addresses pinned, no redirects).
    async fn http_client(&self, tenant_id: &str) -> Result<Arc<dyn HttpClient>, ContextError>;

    /// Opens an endpoint's sealed signing secret.
    async fn open_secret(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        sealed: &[u8],
    ) -> Result<SigningSecret, ContextError>;
}

/// The fan-out consumer and the dispatcher of one replica.
pub struct Outbound {
    fanout: Arc<fanout::Fanout>,
    dispatcher: Arc<dispatcher::Dispatcher>,
}

impl Outbound {
    /// Outbound delivery over `store`; `appended` changes when this process appends to the log.
    pub fn new(
        store: Store,
        context: Arc<dyn DeliveryContext>,
        settings: DeliverySettings,
        appended: watch::Receiver<u64>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        Self {
            fanout: Arc::new(fanout::Fanout::new(
                store.clone(),
                settings.clone(),
                appended,
                wake.clone(),
            )),
            dispatcher: Arc::new(dispatcher::Dispatcher::new(store, context, settings, wake)),
        }
    }

    /// Starts both loops; abort the handles to stop them (attempts in flight stop too, and their
    /// leases lapse).
    pub fn spawn(&self) -> Vec<JoinHandle<()>> {
        let fanout = self.fanout.clone();
        let dispatcher = self.dispatcher.clone();
        vec![
            tokio::spawn(async move { fanout.run().await }),
            tokio::spawn(async move { dispatcher.run().await }),
        ]
    }

    /// Wakes the dispatcher: deliveries were written outside the fan-out (a replay).
    pub fn wake(&self) {
        self.dispatcher.wake();
    }

    /// The settings in force (the schedule's first delay dates new deliveries).
    pub fn settings(&self) -> &DeliverySettings {
        self.dispatcher.settings()
    }
}

/// Now, unix milliseconds.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
