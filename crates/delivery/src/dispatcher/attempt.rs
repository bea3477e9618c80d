//! One attempt of one delivery: the event read, the request signed and sent within its lease,
//! and what came of it handed to the recorder.

use std::time::{Duration, Instant};

use integrations_core::{retry_after_secs, HttpError, HttpResponse};
use integrations_events::EventView;
use integrations_store::{AttemptRecord, DeliveryJob, DeliveryNext, EndpointHealth, RecordedAttempt};

use super::{Dispatcher, SECRET_CACHE};
use crate::{now_millis, signature_header, ContextError, SigningSecret, MAX_RECORDED_BODY};

/// What one attempt came to.
struct Outcome {
    status_code: Option<u16>,
    error: Option<String>,
    body: String,
    retry_after: Option<Duration>,
}

/// Why an attempt could not even be made; the lease then lapses and it is tried again later.
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    #[error(transparent)]
    Store(#[from] integrations_store::StoreError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("invalid request: {0}")]
    Request(String),
}

impl Dispatcher {
    /// An endpoint's signing secret, opened once per sealed value.
    async fn secret(&self, tenant: &str, endpoint: &str, sealed: &[u8]) -> Result<SigningSecret, ContextError> {
        let key = (endpoint.to_owned(), sealed.to_vec());
        if let Some(secret) = self.secrets.lock().ok().and_then(|s| s.get(&key).cloned()) {
            return Ok(secret);
        }
        let secret = self.context.open_secret(tenant, endpoint, sealed).await?;
        if let Ok(mut secrets) = self.secrets.lock() {
            if secrets.len() >= SECRET_CACHE {
                secrets.clear();
            }
            secrets.insert(key, secret.clone());
        }
        Ok(secret)
    }

    /// Attempts one delivery; returns whether the attempt went to the recorder (which lets the
    /// delivery go once it is written).
    pub(super) async fn attempt_job(&self, job: DeliveryJob, token: &str) -> Result<bool, AttemptError> {
        let DeliveryJob {
            delivery_id,
            attempts,
            endpoint,
            event,
        } = job;
        if !endpoint.enabled {
            self.store.release_delivery(delivery_id, token).await?;
            return Ok(false);
        }
        let tenant = endpoint.tenant_id.as_str();
        let mut secrets = vec![self.secret(tenant, &endpoint.id, &endpoint.secret).await?];
        let now_secs = now_millis() / 1000;
        if let (Some(previous), Some(expires)) = (&endpoint.previous_secret, endpoint.previous_secret_expires_at) {
            if expires > now_secs {
                secrets.push(self.secret(tenant, &endpoint.id, previous).await?);
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
            .body(body);
        let started = Instant::now();
        let outcome = match request {
            Ok(request) => {
                let sent = tokio::time::timeout(
                    self.settings.timeout,
                    client.send_truncating(request, MAX_RECORDED_BODY),
                )
                .await;
                match sent {
                    Ok(Ok(response)) => answered(&response),
                    Ok(Err(error)) => failed(&error),
                    Err(_) => failed(&HttpError::Timeout),
                }
            }
            // A URL stored before URLs were checked as given (`http://host/a b`): no request can
            // be made to it. A failed attempt, so the delivery follows the schedule to its end
            // rather than lapsing and being claimed again forever.
            Err(error) => Outcome {
                status_code: None,
                error: Some(format!("the endpoint's URL cannot be requested: {error}")),
                body: String::new(),
                retry_after: None,
            },
        };
        let latency_ms = started.elapsed().as_millis() as i64;

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
        tracing::debug!(
            endpoint = %endpoint.id,
            event_type = %event_type,
            attempt,
            status = ?record.status_code,
            "outbound webhook attempted"
        );
        // Recorded by the recorder with others in one transaction; the lease keeps the delivery
        // from being claimed again until then (and, if the process dies first, lapses so it is
        // attempted again under the same webhook-id).
        let recorded = RecordedAttempt {
            token: token.to_owned(),
            attempt: record,
            next,
            health,
        };
        if self.recorder.send(recorded).await.is_err() {
            tracing::warn!(delivery_id, "the attempt recorder has stopped; the lease will lapse");
            return Ok(false);
        }
        Ok(true)
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
