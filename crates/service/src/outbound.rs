//! What outbound delivery needs of the service: the tenant's guarded client and its data key to
//! open endpoint secrets. Sealed like plugin secrets, at a location no plugin can have.

use integrations_core::TenantId;
use std::sync::Arc;

use async_trait::async_trait;
use integrations_core::HttpClient;
use integrations_delivery::{ContextError, DeliveryContext, DeliverySettings, Outbound, SigningSecret};
use integrations_secrets::{DataKey, SecretLocation};
use integrations_store::Store;

use crate::gate::{client_for, load_gate};
use crate::state::StateCache;
use crate::vault::Keys;
use crate::{Service, ServiceError, TenantHttpFactory};

/// The `plugin` part of an endpoint secret's location: plugin names cannot start with `@`, so no
/// plugin secret can be moved here, nor an endpoint secret into a plugin's place.
const SECRET_PLUGIN: &str = "@webhook-endpoint";

/// Seals an endpoint's signing secret with the tenant's data key, bound to the endpoint.
pub(crate) fn seal_endpoint_secret(
    key: &DataKey,
    tenant: &str,
    endpoint_id: &str,
    secret: &SigningSecret,
) -> Result<Vec<u8>, ServiceError> {
    let location = SecretLocation {
        tenant,
        plugin: SECRET_PLUGIN,
        field: endpoint_id,
    };
    Ok(key.seal(location, secret.expose_bytes())?)
}

fn open_endpoint_secret(
    key: &DataKey,
    tenant: &str,
    endpoint_id: &str,
    sealed: &[u8],
) -> Result<SigningSecret, ServiceError> {
    let location = SecretLocation {
        tenant,
        plugin: SECRET_PLUGIN,
        field: endpoint_id,
    };
    Ok(SigningSecret::from_bytes(key.open(location, sealed)?))
}

/// The service's side of delivery, holding only what it needs (not the service itself, which
/// stops the delivery tasks when dropped).
struct DeliveryAccess {
    store: Store,
    keys: Arc<Keys>,
    cache: Arc<StateCache>,
    http: Arc<dyn HttpClient>,
    tenant_http: Arc<TenantHttpFactory>,
}

#[async_trait]
impl DeliveryContext for DeliveryAccess {
    async fn http_client(&self, tenant_id: &str) -> Result<Arc<dyn HttpClient>, ContextError> {
        let failed = |error: ServiceError| ContextError(error.to_string());
        // The delivery row's tenant: checked when the tenant was created.
        let tenant_id = &TenantId::from_trusted(tenant_id);
        let state = load_gate(&self.cache, &self.store, tenant_id)
            .await
            .map_err(failed)?
            .ok_or_else(|| ContextError("tenant not found".into()))?;
        client_for(&self.http, &self.tenant_http, &state).map_err(failed)
    }

    async fn open_secret(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        sealed: &[u8],
    ) -> Result<SigningSecret, ContextError> {
        let failed = |error: ServiceError| ContextError(error.to_string());
        let tenant_id = &TenantId::from_trusted(tenant_id);
        let key = self.keys.data_key(&self.store, tenant_id).await.map_err(failed)?;
        open_endpoint_secret(&key, tenant_id, endpoint_id, sealed).map_err(failed)
    }
}

impl Service {
    /// Starts outbound webhook delivery (the event log's fan-out consumer and the dispatcher);
    /// it stops when the service is dropped. Starting it twice does nothing the second time.
    pub fn start_outbound(&self, settings: DeliverySettings) {
        let access = Arc::new(DeliveryAccess {
            store: self.store.clone(),
            keys: self.keys.clone(),
            cache: self.cache.clone(),
            http: self.http.clone(),
            tenant_http: self.tenant_http.clone(),
        });
        let outbound = Outbound::new(self.store.clone(), access, settings, self.events.appended());
        if self.outbound.set(outbound).is_err() {
            return;
        }
        if let Some(outbound) = self.outbound.get() {
            for task in outbound.spawn() {
                self.keep_background(task);
            }
        }
    }

    /// Wakes the dispatcher, when delivery runs here.
    pub(crate) fn wake_outbound(&self) {
        if let Some(outbound) = self.outbound.get() {
            outbound.wake();
        }
    }

    /// When a delivery written now is first due, unix milliseconds.
    pub(crate) fn first_attempt_at(&self, now_ms: i64) -> i64 {
        let delay = self
            .outbound
            .get()
            .map(|outbound| outbound.settings().schedule.first_delay())
            .unwrap_or_default();
        now_ms + delay.as_millis() as i64
    }
}
