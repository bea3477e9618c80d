//! Fixtures for the crate's tests: a migrated SQLite store, endpoints, events.

use integrations_store::{EventData, NewEvent, Store, WebhookEndpoint};

/// A migrated store in a SQLite file of its own (kept while the directory lives).
pub(crate) async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

/// An enabled endpoint of `tenant` taking `event_types`.
pub(crate) fn endpoint(id: String, tenant: &str, event_types: Vec<String>) -> WebhookEndpoint {
    WebhookEndpoint {
        id,
        tenant_id: tenant.into(),
        url: "https://example.com/hook".into(),
        event_types,
        description: String::new(),
        enabled: true,
        disabled_reason: None,
        secret: vec![1],
        previous_secret: None,
        previous_secret_expires_at: None,
        failing_since: None,
        start_seq: 0,
        created_at: 1,
        updated_at: 1,
        rate_limit_per_sec: None,
    }
}

/// Appends event `n` of `tenant`, its data padded to about `padding` bytes; returns its position.
pub(crate) async fn emit(store: &Store, tenant: &str, n: usize, padding: usize) -> i64 {
    let event = NewEvent {
        id: format!("evt_{tenant}_{n}"),
        tenant_id: tenant.into(),
        plugin: None,
        event_type: "order.created".into(),
        occurred_at: 1,
        data: EventData::Json(serde_json::json!({"pad": "x".repeat(padding)})),
        idempotency_key: None,
    };
    store.append_tenant_event(&event).await.unwrap();
    store.last_event_seq().await.unwrap()
}
