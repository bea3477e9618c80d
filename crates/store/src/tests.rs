use serde_json::{json, Map, Value};

use super::*;

async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

fn tenant(id: &str) -> (Tenant, ApiKeyRecord, DataKeyRecord) {
    let traits = match json!({"plan": "pro"}) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    (
        Tenant {
            id: id.into(),
            traits,
            outbound_allow_cidrs: vec![],
            created_at: 1,
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

#[tokio::test]
async fn tenant_round_trip_and_duplicate_is_conflict() {
    let (_dir, store) = sqlite_store().await;
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    assert_eq!(store.get_tenant("acme").await.unwrap(), Some(t.clone()));
    let (_, k2, d2) = tenant("acme");
    assert!(matches!(
        store
            .create_tenant(
                &t,
                &ApiKeyRecord {
                    id: "other".into(),
                    ..k2
                },
                &d2
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.get_api_key("key-acme").await.unwrap().map(|k| k.tenant_id),
        Some("acme".into())
    );
}

#[tokio::test]
async fn webhook_delivery_is_stored_once() {
    let (_dir, store) = sqlite_store().await;
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let event = NewWebhookEvent {
        id: "evt_1".into(),
        tenant_id: "acme".into(),
        plugin: "jira".into(),
        delivery_id: "d1".into(),
        event_type: Some("jira:issue_created".into()),
        payload: b"{}".to_vec(),
        received_at: 5,
    };
    assert_eq!(
        store.insert_webhook_event(&event).await.unwrap(),
        ("evt_1".into(), false)
    );
    let again = NewWebhookEvent {
        id: "evt_2".into(),
        ..event
    };
    assert_eq!(
        store.insert_webhook_event(&again).await.unwrap(),
        ("evt_1".into(), true)
    );
    assert_eq!(
        store.list_webhook_events("acme", Some("jira"), 10).await.unwrap().len(),
        1
    );
    assert_eq!(store.list_webhook_events("acme", None, 10).await.unwrap().len(), 1);
    assert_eq!(store.list_webhook_events("other", None, 10).await.unwrap().len(), 0);
}

#[tokio::test]
async fn deleting_a_tenant_removes_everything_it_owns() {
    let (_dir, store) = sqlite_store().await;
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let installation = Installation {
        plugin: "jira".into(),
        state: InstallationState::Enabled,
        config: Map::new(),
    };
    store
        .insert_installation(
            "acme",
            &installation,
            &[SecretRow {
                field: "api_token".into(),
                ciphertext: vec![1],
            }],
        )
        .await
        .unwrap();
    assert!(store.delete_tenant("acme").await.unwrap());
    assert!(store.get_data_key("acme").await.unwrap().is_none());
    assert!(store.get_secrets("acme", "jira").await.unwrap().is_empty());
    assert!(store.get_api_key("key-acme").await.unwrap().is_none());
    assert!(!store.delete_tenant("acme").await.unwrap());
}
