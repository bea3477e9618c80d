//! `Idempotency-Key` on tool calls (the IETF httpapi draft): per tenant, kept in the database so
//! it holds across replicas and restarts. The first request with a key runs; one with the same key
//! and body while it runs waits for its response, and one after it replays it; the same key with
//! another body is refused.

use integrations_core::TenantId;
use std::time::{Duration, Instant};

use integrations_store::{IdempotencyClaim, StoredResponse};
use serde_json::Value;

use crate::{now_unix, Service, ServiceError};

/// How often a request waiting for the holder of its key looks again.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// The longest key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Forgotten keys removed per statement by the sweep.
const SWEEP_BATCH: i64 = 1_000;

/// What a request with an idempotency key is to do.
#[derive(Debug, PartialEq, Eq)]
pub enum IdempotentStart {
    /// Run it: the key is this request's until it finishes or is released.
    Run,
    /// Answer this, the first request's response.
    Replay(StoredResponse),
}

/// The request a key stands for: the tool, sync or queued, and the arguments.
pub fn tool_call_fingerprint(tool: &str, queued: bool, arguments: &Value) -> String {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(tool.as_bytes());
    digest.update(if queued { b"\0async\0" } else { b"\0sync\0\0" });
    // serde_json's maps are ordered by key: the same arguments give the same bytes.
    digest.update(arguments.to_string().as_bytes());
    hex::encode(digest.finish().as_ref())
}

impl Service {
    /// Claims `key` for this request, waits for the request holding it, or finds its response.
    pub async fn start_idempotent(
        &self,
        tenant_id: &TenantId,
        key: &str,
        fingerprint: &str,
    ) -> Result<IdempotentStart, ServiceError> {
        self.existing_gate(tenant_id).await?;
        // A holder that died keeps the key no longer than a call may run, and a little more.
        let lease = self.tool_limits.deadline + Duration::from_secs(60);
        let started = Instant::now();
        loop {
            let now = now_unix();
            let claim = self
                .store
                .claim_idempotency_key(tenant_id, key, fingerprint, now, now + lease.as_secs() as i64)
                .await?;
            match claim {
                IdempotencyClaim::Claimed => return Ok(IdempotentStart::Run),
                IdempotencyClaim::Finished(response) => return Ok(IdempotentStart::Replay(response)),
                IdempotencyClaim::OtherRequest => return Err(ServiceError::IdempotencyKeyReused),
                IdempotencyClaim::Running if started.elapsed() > lease => {
                    return Err(ServiceError::Internal("an idempotent call outlived its lease".into()))
                }
                IdempotencyClaim::Running => tokio::time::sleep(WAIT_POLL).await,
            }
        }
    }

    /// Keeps the response of the request holding `key`, to replay for the key's retention.
    pub async fn finish_idempotent(
        &self,
        tenant_id: &TenantId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), ServiceError> {
        let expires_at = now_unix() + self.idempotency_ttl.as_secs() as i64;
        Ok(self
            .store
            .finish_idempotency_key(tenant_id, key, response, expires_at)
            .await?)
    }

    /// Gives `key` up without a response (a failure of ours), so the client may try again.
    pub async fn release_idempotent(&self, tenant_id: &TenantId, key: &str) -> Result<(), ServiceError> {
        Ok(self.store.release_idempotency_key(tenant_id, key).await?)
    }

    /// Removes keys past their retention, every minute, until the service stops.
    pub fn start_idempotency_sweep(&self) {
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                loop {
                    match store.delete_expired_idempotency_keys(now_unix(), SWEEP_BATCH).await {
                        Ok(deleted) if deleted as i64 == SWEEP_BATCH => continue,
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(%error, "cannot remove expired idempotency keys");
                            break;
                        }
                    }
                }
            }
        });
        self.keep_background(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_call_has_the_same_fingerprint_and_any_difference_another() {
        let base = tool_call_fingerprint("jira_create_issue", false, &json!({"a": 1, "b": [2]}));
        assert_eq!(
            base,
            tool_call_fingerprint("jira_create_issue", false, &json!({"b": [2], "a": 1}))
        );
        for other in [
            tool_call_fingerprint("jira_create_issue", true, &json!({"a": 1, "b": [2]})),
            tool_call_fingerprint("jira_get_issue", false, &json!({"a": 1, "b": [2]})),
            tool_call_fingerprint("jira_create_issue", false, &json!({"a": 2, "b": [2]})),
        ] {
            assert_ne!(base, other);
        }
    }
}
