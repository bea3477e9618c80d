//! The tenant's normalized events: emitted by the tenant, read with a cursor (long-poll).

use integrations_core::TenantId;
use std::time::Duration;

use integrations_events::{EmittedEvent, EventPage};
use serde_json::Value;

use crate::{Service, ServiceError};

impl Service {
    /// Appends an event the tenant emits (`POST /v1/events`).
    pub async fn emit_event(
        &self,
        tenant_id: &TenantId,
        event_type: &str,
        data: Value,
        idempotency_key: Option<String>,
    ) -> Result<EmittedEvent, ServiceError> {
        self.existing_gate(tenant_id).await?;
        Ok(self.events.emit(tenant_id, event_type, data, idempotency_key).await?)
    }

    /// The tenant's events after `after`, waiting up to `wait` for one (`GET /v1/events`).
    pub async fn read_events(
        &self,
        tenant_id: &TenantId,
        after: Option<&str>,
        limit: i64,
        wait: Duration,
    ) -> Result<EventPage, ServiceError> {
        self.existing_gate(tenant_id).await?;
        // Past the tenant's long-polls, a read answers at once with what is there (an empty page
        // at worst), so one tenant's waiting readers never hold what others need.
        let permit = if wait.is_zero() {
            None
        } else {
            self.start_long_poll(tenant_id)
        };
        let wait = if permit.is_some() { wait } else { Duration::ZERO };
        let page = self.events.read(tenant_id, after, limit, wait).await;
        drop(permit);
        Ok(page?)
    }
}
