//! Events that carry their webhook's body by reference: read back whole on every path, and never
//! left without the body by retention.

use serde_json::json;

use super::*;

/// An event id as the log makes them: `evt_`, the creation time, then random hex.
fn event_id_at(millis: i64, n: u8) -> String {
    format!("evt_{millis:012x}{n:020x}")
}

async fn bodies_by_reference(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let body = br#"{"issue":{"key":"A-1"},"note":"caf\u00e9 \u2603"}"#;
    let webhook = NewWebhookEvent {
        payload: body.to_vec(),
        ..webhook(1, "acme", "d-1")
    };
    store.insert_webhook_event(&webhook).await.unwrap();
    let now_ms = now_unix() * 1000;
    let carried = NewEvent {
        id: event_id_at(now_ms, 1),
        tenant_id: "acme".into(),
        plugin: Some("jira".into()),
        event_type: "jira.issue_created".into(),
        occurred_at: 5,
        data: EventData::WebhookBody(webhook.id.clone()),
        idempotency_key: None,
    };
    let built = NewEvent {
        id: event_id_at(now_ms, 2),
        data: EventData::Json(json!({"built": true})),
        ..carried.clone()
    };
    let recorded = store
        .record_processed_webhooks(&[(webhook.id.clone(), vec![carried.clone(), built.clone()])])
        .await
        .unwrap();
    assert_eq!(recorded, 1);

    let body_text = std::str::from_utf8(body).unwrap();
    let datas = |events: Vec<StoredEvent>| events.into_iter().map(|e| (e.id, e.data)).collect::<Vec<_>>();
    let expected = vec![
        (carried.id.clone(), body_text.to_owned()),
        (built.id.clone(), r#"{"built":true}"#.to_owned()),
    ];
    assert_eq!(datas(store.tenant_events_after("acme", 0, 10).await.unwrap()), expected);
    assert_eq!(datas(store.events_after(0, 10).await.unwrap()), expected);

    // Received long ago but processed just now: its events are younger than the cut, so the
    // webhook holding their body stays with them.
    let expired = store.expire_events(now_unix() - 5).await.unwrap();
    assert_eq!(expired, Expired::default());
    assert_eq!(datas(store.tenant_events_after("acme", 0, 10).await.unwrap()), expected);

    let expired = store.expire_events(now_unix() + 5).await.unwrap();
    assert_eq!(expired, Expired { webhooks: 1, events: 2 });
    assert!(store.tenant_events_after("acme", 0, 10).await.unwrap().is_empty());
    assert!(store.list_webhook_events("acme", None, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_their_webhooks_body_until_both_expire() {
    let (_dir, store) = sqlite_store().await;
    bodies_by_reference(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_their_webhooks_body_until_both_expire_on_postgres() {
    let Some(database) = ScratchPostgres::create("store_event_bodies").await else {
        return;
    };
    bodies_by_reference(&database.store).await;
    database.drop().await;
}
