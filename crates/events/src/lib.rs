//! The normalized event log every event goes through: webhooks the plugins turn into events,
//! lifecycle changes, and events tenants emit. Stored first (the store's `events` table is the
//! transactional outbox), then read by tenants (long-poll) and by the log's consumers.

mod ids;
mod json;
mod log;
mod pipeline;
mod time;

pub use ids::new_event_id;
pub use log::{EmittedEvent, EventError, EventLog, EventPage, EventView, LifecycleChange};
pub use pipeline::PipelineSettings;
pub use time::{parse_rfc3339_millis, rfc3339_millis};
