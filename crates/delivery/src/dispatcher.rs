//! Leases due deliveries and attempts each in its own task. A global cap bounds the attempts in
//! flight, and each endpoint has at most `per_endpoint` of them (claims give an endpoint only the
//! room it has left), so a slow or dead endpoint holds only its own deliveries back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integrations_core::{retry_after_secs, HttpError, HttpResponse};
use integrations_events::EventView;
use integrations_store::{AttemptRecord, DeliveryJob, DeliveryNext, EndpointHealth, Store};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::{now_millis, signature_header, ContextError, DeliveryContext, DeliverySettings, MAX_RECORDED_BODY};

pub(crate) struct Dispatcher {
    store: Store,
    context: Arc<dyn DeliveryContext>,
    settings: DeliverySettings,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    /// Attempts in flight here, per endpoint.
    in_flight: Mutex<HashMap<String, usize>>,
}

/// What one attempt came to.
struct Outcome {
    status_code: Option<u16>,
    error: Option<String>,
    body: String,
    retry_after: Option<Duration>,
}

/// Why an attempt could not even be made; the lease then lapses and it is tried again later.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Store(#[from] integrations_store::StoreError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("invalid request: {0}")]
    Request(String),
}

impl Dispatcher {
    pub(crate) fn new(
        store: Store,
        context: Arc<dyn DeliveryContext>,
        settings: DeliverySettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            store,
            context,
            settings,
            wake,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn run(self: Arc<Self>) {
        // Attempts belong to this task: aborting it (the service dropped) aborts them too.
        let mut attempts = JoinSet::new();
        loop {
            if let Err(error) = self.clone().dispatch_due(&mut attempts).await {
                tracing::warn!(%error, "outbound dispatcher failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            while attempts.try_join_next().is_some() {}
            let _ = tokio::time::timeout(self.settings.poll_interval, self.wake.notified()).await;
        }
    }

    /// Leases what is due and can start now, and starts it.
    async fn dispatch_due(self: Arc<Self>, attempts: &mut JoinSet<()>) -> Result<(), integrations_store::StoreError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(());
        }
        let per_endpoint = self.settings.per_endpoint.max(1);
        let busy: Vec<(String, i64)> = self
            .in_flight()
            .iter()
            .map(|(endpoint, count)| (endpoint.clone(), per_endpoint.saturating_sub(*count) as i64))
            .collect();
        let token = lease_token();
        let now = now_millis();
        let lease_until = now + self.settings.lease().as_millis() as i64;
        let claimed = self
            .store
            .claim_deliveries(now, lease_until, &token, per_endpoint as i64, free as i64, &busy)
            .await?;
        for (delivery_id, endpoint_id) in claimed {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                // Only this loop takes slots, so this does not happen; the lease lapses if it does.
                break;
            };
            // Counted before the next claim can run, so that claim skips this endpoint.
            *self.in_flight().entry(endpoint_id.clone()).or_default() += 1;
            let dispatcher = self.clone();
            let token = token.clone();
            attempts.spawn(async move { dispatcher.attempt(delivery_id, endpoint_id, token, slot).await });
        }
        Ok(())
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn attempt(
        self: Arc<Self>,
        delivery_id: i64,
        endpoint_id: String,
        token: String,
        slot: OwnedSemaphorePermit,
    ) {
        match self.store.delivery_job(delivery_id).await {
            Ok(Some(job)) => {
                if let Err(error) = self.attempt_job(job, &token).await {
                    tracing::warn!(%error, delivery_id, "outbound delivery not attempted; its lease will lapse");
                }
            }
            // Its endpoint or event was deleted meanwhile.
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, delivery_id, "cannot load an outbound delivery; its lease will lapse");
            }
        }
        {
            let mut in_flight = self.in_flight();
            if let Some(count) = in_flight.get_mut(&endpoint_id) {
                *count -= 1;
                if *count == 0 {
                    in_flight.remove(&endpoint_id);
                }
            }
        }
        drop(slot);
        // The endpoint may take more now.
        self.wake.notify_one();
    }

    async fn attempt_job(&self, job: DeliveryJob, token: &str) -> Result<(), AttemptError> {
        let DeliveryJob {
            delivery_id,
            attempts,
            endpoint,
            event,
        } = job;
        if !endpoint.enabled {
            self.store.release_delivery(delivery_id, token).await?;
            return Ok(());
        }
        let tenant = endpoint.tenant_id.as_str();
        let mut secrets = vec![self.context.open_secret(tenant, &endpoint.id, &endpoint.secret).await?];
        let now_secs = now_millis() / 1000;
        if let (Some(previous), Some(expires)) = (&endpoint.previous_secret, endpoint.previous_secret_expires_at) {
            if expires > now_secs {
                secrets.push(self.context.open_secret(tenant, &endpoint.id, previous).await?);
            }
        }
        let client = self.context.http_client(tenant).await?;
        let event_id = event.id.clone();
        let event_type = event.event_type.clone();
        let body =
            serde_json::to_vec(&EventView::from_stored(event)).map_err(|e| AttemptError::Request(e.to_string()))?;

        let attempted_at = now_millis();
        let timestamp = attempted_at / 1000;
        let request = http::Request::post(&endpoint.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature_header(&secrets, &event_id, timestamp, &body),
            )
            .body(body)
            .map_err(|e| AttemptError::Request(e.to_string()))?;
        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.settings.timeout,
            client.send_truncating(request, MAX_RECORDED_BODY),
        )
        .await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let outcome = match sent {
            Ok(Ok(response)) => answered(&response),
            Ok(Err(error)) => failed(&error),
            Err(_) => failed(&HttpError::Timeout),
        };

        let succeeded = outcome.status_code.is_some_and(|status| (200..300).contains(&status));
        let gone = outcome.status_code == Some(410);
        let attempt = attempts + 1;
        let next = if succeeded {
            DeliveryNext::Succeeded
        } else if gone {
            DeliveryNext::Failed
        } else {
            match self
                .settings
                .schedule
                .delay_after(attempt as usize, outcome.retry_after)
            {
                Some(delay) => DeliveryNext::RetryAt(now_millis() + delay.as_millis() as i64),
                None => DeliveryNext::Failed,
            }
        };
        let health = if succeeded {
            EndpointHealth::Healthy
        } else if gone {
            EndpointHealth::Gone("the endpoint answered 410 Gone".into())
        } else {
            EndpointHealth::Failing {
                disable_after_secs: self.settings.disable_after.as_secs() as i64,
            }
        };
        let record = AttemptRecord {
            delivery_id,
            endpoint_id: endpoint.id.clone(),
            event_id,
            attempt,
            attempted_at,
            status_code: outcome.status_code.map(i64::from),
            error: outcome.error,
            latency_ms,
            response_body: outcome.body,
            succeeded,
        };
        let disabled = self.store.record_attempt(token, &record, next, &health).await?;
        tracing::debug!(
            endpoint = %endpoint.id,
            event_type = %event_type,
            attempt,
            status = ?record.status_code,
            "outbound webhook attempted"
        );
        if disabled {
            tracing::info!(tenant, endpoint = %endpoint.id, "outbound webhook endpoint disabled");
        }
        Ok(())
    }
}

fn answered(response: &HttpResponse) -> Outcome {
    Outcome {
        status_code: Some(response.status().as_u16()),
        error: None,
        body: String::from_utf8_lossy(response.body()).into_owned(),
        retry_after: retry_after_secs(response).map(Duration::from_secs),
    }
}

fn failed(error: &HttpError) -> Outcome {
    Outcome {
        status_code: None,
        error: Some(error.to_string()),
        body: String::new(),
        retry_after: None,
    }
}

/// An unguessable token naming one claim, so only its holder moves the delivery on.
fn lease_token() -> String {
    let mut random = [0u8; 12];
    if SystemRandom::new().fill(&mut random).is_err() {
        // Still unique enough to tell claims apart: the time in nanoseconds.
        return format!(
            "t{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
    }
    random.iter().map(|b| format!("{b:02x}")).collect()
}
