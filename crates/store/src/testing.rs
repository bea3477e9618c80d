//! Fixtures for tests of the store and of the crates built on it (the `testing` feature): rows
//! such as jobs, events and webhooks belong to a tenant, which must exist first.

use serde_json::{Map, Value};

use crate::{ApiKeyRecord, DataKeyRecord, Store, StoreError, Tenant};

/// Tenant `id` on the `pro` plan, with a made-up API key digest and wrapped data key: enough for
/// the store, not a tenant anyone can authenticate as.
pub fn tenant_records(id: &str) -> (Tenant, ApiKeyRecord, DataKeyRecord) {
    let mut traits = Map::new();
    traits.insert("plan".into(), Value::from("pro"));
    (
        Tenant {
            id: id.into(),
            traits,
            outbound_allow_cidrs: vec![],
            created_at: 1,
            limits: Default::default(),
        },
        ApiKeyRecord {
            id: format!("key-{id}"),
            tenant_id: id.into(),
            digest: vec![1, 2, 3],
            created_at: 1,
        },
        DataKeyRecord {
            tenant_id: id.into(),
            master_key_id: "m1".into(),
            wrapped_key: vec![9; 60],
        },
    )
}

/// Creates tenant `id` (see [`tenant_records`]).
pub async fn add_tenant(store: &Store, id: &str) -> Result<(), StoreError> {
    let (tenant, key, data_key) = tenant_records(id);
    store.create_tenant(&tenant, &key, &data_key).await
}
