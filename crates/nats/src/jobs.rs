//! The job queue's feed on a JetStream work-queue stream: enqueued jobs are announced there, and
//! every replica's worker pulls from one durable consumer with explicit acks, so replicas share
//! the work. The announcement is acked when the attempt ends, or negatively acknowledged with the
//! wait before the next attempt, so JetStream redelivers it when it is due; an announcement whose
//! worker died is redelivered after the ack wait (the job's lease).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_trait::async_trait;
use futures_util::StreamExt;
use integrations_jobs::{FedJob, JobFeed, Settle};
use tokio::sync::{oneshot, Mutex};

use crate::{nats_error, NatsSettings, RelayError};

/// The durable consumer all workers share.
const CONSUMER: &str = "workers";

/// The feed of one process.
pub struct NatsJobFeed {
    jetstream: jetstream::Context,
    subject: String,
    messages: Mutex<consumer::pull::Stream>,
}

impl NatsJobFeed {
    /// Connects, creates the work-queue stream `<stream>_JOBS` on `settings.jobs_subject` and the
    /// shared consumer when missing; `ack_wait` is how long a worker may hold an announcement.
    pub async fn connect(settings: &NatsSettings, ack_wait: Duration) -> Result<Arc<Self>, RelayError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(&settings.url)
            .await
            .map_err(nats_error)?;
        let jetstream = jetstream::new(client);
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: format!("{}_JOBS", settings.stream),
                subjects: vec![settings.jobs_subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .map_err(nats_error)?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_error)?;
        let messages = consumer.messages().await.map_err(nats_error)?;
        Ok(Arc::new(Self {
            jetstream,
            subject: settings.jobs_subject.clone(),
            messages: Mutex::new(messages),
        }))
    }
}

#[async_trait]
impl JobFeed for NatsJobFeed {
    async fn announce(&self, job_id: &str) -> Result<(), String> {
        let ack = self
            .jetstream
            .publish(self.subject.clone(), job_id.to_owned().into())
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(drop).map_err(|e| e.to_string())
    }

    async fn next(&self) -> Option<FedJob> {
        loop {
            let message = self.messages.lock().await.next().await?;
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "job feed: could not pull an announcement");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let Ok(job_id) = String::from_utf8(message.payload.to_vec()) else {
                // Not ours to run: drop it for good.
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            };
            let (settle, settled) = oneshot::channel();
            tokio::spawn(async move {
                let kind = match settled.await {
                    Ok(Settle::Done) => AckKind::Ack,
                    Ok(Settle::Later(wait)) => AckKind::Nak(Some(wait)),
                    // The worker went away without a word: let another take it now.
                    Err(_) => AckKind::Nak(None),
                };
                if let Err(error) = message.ack_with(kind).await {
                    tracing::warn!(%error, "job feed: could not settle an announcement; it comes back after the ack wait");
                }
            });
            return Some(FedJob { job_id, settle });
        }
    }
}
