use std::sync::{Arc, Weak};
use std::time::Duration;

use flagsmith_flag_engine::engine_eval::context::EngineEvaluationContext;
use serde_json::{json, Value};

use crate::{parse_document, FlagsError, Slot};

/// Largest environment document accepted from the server.
const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;

/// A Flagsmith server to poll for the environment document and to record traits on.
pub struct FlagsmithServer {
    api_url: String,
    server_key: String,
    poll_interval: Duration,
    client: reqwest::Client,
}

impl FlagsmithServer {
    /// `api_url` like `https://edge.api.flagsmith.com/api/v1`; `server_key` is the environment's
    /// server-side key (`ser.…`).
    pub fn new(api_url: &str, server_key: &str, poll_interval: Duration) -> Result<Self, FlagsError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // A redirect would carry the server key to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FlagsError::Server(e.to_string()))?;
        Ok(Self {
            api_url: api_url.trim_end_matches('/').to_owned(),
            server_key: server_key.to_owned(),
            poll_interval,
            client,
        })
    }

    async fn fetch(&self) -> Result<EngineEvaluationContext, FlagsError> {
        let response = self
            .client
            .get(format!("{}/environment-document/", self.api_url))
            .header("X-Environment-Key", &self.server_key)
            .send()
            .await
            .map_err(|e| FlagsError::Server(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(FlagsError::Server(format!(
                "environment-document answered {}",
                response.status()
            )));
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FlagsError::Server(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FlagsError::InvalidDocument(format!(
                    "document exceeds {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        parse_document(&body)
    }

    pub(crate) async fn refresh(&self, slot: &Slot) {
        match self.fetch().await {
            Ok(context) => slot.replace(context),
            Err(error) => tracing::warn!(%error, "keeping the last good Flagsmith environment document"),
        }
    }

    pub(crate) fn spawn_poller(self: &Arc<Self>, slot: Weak<Slot>) {
        let server = Arc::downgrade(self);
        let interval = self.poll_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                // Stop once the Flags that owned the document are gone.
                let (Some(slot), Some(server)) = (slot.upgrade(), server.upgrade()) else {
                    break;
                };
                server.refresh(&slot).await;
            }
        });
    }

    pub(crate) async fn set_trait(&self, identifier: &str, key: &str, value: Value) -> Result<(), FlagsError> {
        let body = json!({"identifier": identifier, "traits": [{"trait_key": key, "trait_value": value}]});
        let response = self
            .client
            .post(format!("{}/identities/", self.api_url))
            .header("X-Environment-Key", &self.server_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| FlagsError::Server(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(FlagsError::Server(format!("identities answered {}", response.status())));
        }
        Ok(())
    }
}
