//! Relays the normalized event log to NATS JetStream.
//!
//! The database log is the transactional outbox: an event is committed with what it describes,
//! and this relay publishes it afterwards, in log order, to
//! `<prefix>.<tenant>.<plugin>.<type>` (`tenant` stands for the plugin of events tenants emit),
//! with the event id as `Nats-Msg-Id`. The relay's cursor moves only after JetStream acknowledged
//! every event up to it, so an outage or a crash delays events and never loses one; what is
//! published again after a crash carries the same `Nats-Msg-Id`, and JetStream drops it within the
//! stream's duplicate window.

mod jobs;

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use integrations_events::EventView;
use integrations_store::{Store, StoredEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use jobs::NatsJobFeed;

/// Events published per round trip of acknowledgements.
const BATCH: i64 = 256;

/// How long an idle relay waits before looking for other replicas' events.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Where and how events are published.
#[derive(Clone)]
pub struct NatsSettings {
    /// The NATS server (`nats://127.0.0.1:4222`).
    pub url: String,
    /// The JetStream stream, created when missing.
    pub stream: String,
    /// The subject prefix; the stream captures `<prefix>.>`.
    pub subject_prefix: String,
    /// How long JetStream remembers message ids to drop duplicates.
    pub duplicate_window: Duration,
    /// The subject job announcements are published on (a work-queue stream `<stream>_JOBS`).
    pub jobs_subject: String,
}

impl NatsSettings {
    /// The defaults for a server at `url`: stream `INTEGRATIONS_EVENTS` on `integrations.events.>`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "INTEGRATIONS_EVENTS".into(),
            subject_prefix: "integrations.events".into(),
            duplicate_window: Duration::from_secs(3600),
            jobs_subject: "integrations.jobs".into(),
        }
    }
}

impl std::fmt::Debug for NatsSettings {
    // A NATS URL may carry a user and password (`nats://user:pass@host`): never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("duplicate_window", &self.duplicate_window)
            .field("jobs_subject", &self.jobs_subject)
            .finish_non_exhaustive()
    }
}

/// Why a relay round failed; the relay retries from its cursor.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Connecting, creating the stream, publishing or an acknowledgement failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// Reading the log or moving the cursor failed.
    #[error(transparent)]
    Store(#[from] integrations_store::StoreError),
}

pub(crate) fn nats_error(error: impl std::fmt::Display) -> RelayError {
    RelayError::Nats(error.to_string())
}

/// The subject an event is published on.
pub fn subject(prefix: &str, event: &StoredEvent) -> String {
    format!(
        "{prefix}.{}.{}.{}",
        event.tenant_id,
        event.plugin.as_deref().unwrap_or("tenant"),
        event.event_type
    )
}

/// The relay: one per process; replicas may run theirs side by side (JetStream drops the
/// duplicates their overlap produces).
pub struct EventRelay {
    store: Store,
    settings: NatsSettings,
    appended: watch::Receiver<u64>,
}

impl EventRelay {
    /// A relay of `store`'s log, woken by `appended` (see `EventLog::appended`).
    pub fn new(store: Store, settings: NatsSettings, appended: watch::Receiver<u64>) -> Self {
        Self {
            store,
            settings,
            appended,
        }
    }

    /// Runs until aborted, reconnecting after failures.
    pub fn spawn(mut self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.relay().await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(error) => {
                        tracing::warn!(%error, "event relay to NATS failed; retrying from its cursor");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
    }

    fn cursor_name(&self) -> String {
        format!("nats:{}", self.settings.stream)
    }

    /// Connects, makes sure the stream exists, then publishes until something fails.
    async fn relay(&mut self) -> Result<(), RelayError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(&self.settings.url)
            .await
            .map_err(nats_error)?;
        let jetstream = jetstream::new(client);
        jetstream
            .get_or_create_stream(stream::Config {
                name: self.settings.stream.clone(),
                subjects: vec![format!("{}.>", self.settings.subject_prefix)],
                duplicate_window: self.settings.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(nats_error)?;
        let cursor_name = self.cursor_name();
        let mut cursor = self.store.event_cursor(&cursor_name).await?;
        loop {
            self.appended.borrow_and_update();
            let events = self.store.events_after(cursor, BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                let _ = tokio::time::timeout(IDLE_POLL, self.appended.changed()).await;
                continue;
            };
            // Published back to back, then acknowledged together: one round trip per batch.
            let mut acks = Vec::with_capacity(events.len());
            for event in events {
                let subject = subject(&self.settings.subject_prefix, &event);
                let id = event.id.clone();
                let payload = serde_json::to_vec(&EventView::from_stored(event)).map_err(nats_error)?;
                let publish = PublishMessage::build().payload(payload.into()).message_id(id);
                acks.push(jetstream.send_publish(subject, publish).await.map_err(nats_error)?);
            }
            for ack in acks {
                ack.await.map_err(nats_error)?;
            }
            self.store.advance_event_cursor(&cursor_name, last).await?;
            cursor = last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_url() {
        let settings = NatsSettings::new("nats://relay:s3cret-pass@127.0.0.1:4222");
        let printed = format!("{settings:?}");
        assert!(!printed.contains("s3cret-pass"), "{printed}");
        assert!(printed.contains("INTEGRATIONS_EVENTS"));
    }
}
