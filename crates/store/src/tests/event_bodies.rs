//! Events that carry their webhook's body by reference: read back whole on every path, and never
//! left without the body by retention; the backlog of webhooks still to process.

use serde_json::json;

use super::*;

/// An event id as the log makes them: `evt_`, the creation time, then random hex.
fn event_id_at(millis: i64, n: u8) -> String {
    format!("evt_{millis:012x}{n:020x}")
}

/// The ids of acme's stored webhooks.
async fn stored_ids(store: &Store) -> Vec<String> {
    let stored = store.list_webhook_deliveries("acme", None, 10).await.unwrap();
    stored.into_iter().map(|w| w.id).collect()
}

/// The ids of the webhooks waiting in the backlog.
async fn pending_ids(store: &Store) -> Vec<String> {
    let pending = store.pending_webhooks(10, i64::MAX).await.unwrap();
    pending.into_iter().map(|w| w.id).collect()
}

async fn bodies_by_reference(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let now = now_unix();
    let body = br#"{"issue":{"key":"A-1"},"note":"caf\u00e9 \u2603"}"#;
    let processed = NewWebhookDelivery {
        id: event_id_at(now * 1000, 1),
        payload: body.to_vec(),
        received_at: now,
        ..webhook(1, "acme", "d-1")
    };
    let waiting = NewWebhookDelivery {
        id: event_id_at(now * 1000, 2),
        received_at: now,
        ..webhook(2, "acme", "d-2")
    };
    for webhook in [&processed, &waiting] {
        assert!(!store.insert_webhook_delivery(webhook).await.unwrap().1);
    }
    // The host's convention: a webhook's events take their ids from it.
    let carried = NewEvent {
        id: processed.id.clone(),
        tenant_id: "acme".into(),
        plugin: Some("jira".into()),
        event_type: "jira.issue_created".into(),
        occurred_at: 5,
        data: EventData::WebhookBody(processed.id.clone()),
        idempotency_key: None,
    };
    let built = NewEvent {
        id: format!("{}_1", processed.id),
        data: EventData::Json(json!({"built": true})),
        ..carried.clone()
    };
    let recorded = store
        .record_processed_webhooks(&[(processed.id.clone(), vec![carried.clone(), built.clone()])])
        .await
        .unwrap();
    assert_eq!(recorded, 1);
    let again = store
        .record_processed_webhooks(&[(processed.id.clone(), vec![carried.clone()])])
        .await
        .unwrap();
    assert_eq!(again, 0, "processed once");

    let body_text = std::str::from_utf8(body).unwrap();
    let datas = |events: Vec<StoredEvent>| events.into_iter().map(|e| (e.id, e.data)).collect::<Vec<_>>();
    let expected = vec![
        (carried.id.clone(), body_text.to_owned()),
        (built.id.clone(), r#"{"built":true}"#.to_owned()),
    ];
    assert_eq!(
        datas(store.tenant_events_after("acme", 0, 10, u64::MAX).await.unwrap()),
        expected
    );
    assert_eq!(datas(store.events_after(0, 10).await.unwrap()), expected);
    assert_eq!(pending_ids(store).await, vec![waiting.id.clone()]);

    // Younger than the cut: everything stays.
    assert_eq!(store.expire_events(now - 5).await.unwrap(), Expired::default());
    assert_eq!(
        datas(store.tenant_events_after("acme", 0, 10, u64::MAX).await.unwrap()),
        expected
    );

    // Older: the processed webhook goes with its events; the waiting one stays to be processed.
    let expired = store.expire_events(now + 5).await.unwrap();
    assert_eq!(expired, Expired { webhooks: 1, events: 2 });
    assert!(store
        .tenant_events_after("acme", 0, 10, u64::MAX)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(stored_ids(store).await, vec![waiting.id.clone()]);
    assert_eq!(pending_ids(store).await, vec![waiting.id.clone()]);
}

on_both_backends!(
    multi_thread,
    events_carry_their_webhooks_body_until_both_expire,
    events_carry_their_webhooks_body_until_both_expire_on_postgres,
    "store_event_bodies",
    bodies_by_reference
);

on_both_backends!(
    a_webhook_enters_the_backlog_once,
    a_webhook_enters_the_backlog_once_on_postgres,
    "store_backlog_once",
    backlog_once
);

async fn backlog_once(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let first = webhook(1, "acme", "d-1");
    assert_eq!(
        store.insert_webhook_delivery(&first).await.unwrap(),
        (first.id.clone(), false)
    );
    let again = webhook(2, "acme", "d-1");
    assert_eq!(
        store.insert_webhook_delivery(&again).await.unwrap(),
        (first.id.clone(), true)
    );
    assert_eq!(pending_ids(store).await, vec![first.id]);
}

/// Webhooks stored before ids were time-ordered (`evt_` and 24 random hex digits) sort anywhere
/// against the cut: they expire by arrival, once processed.
async fn legacy_ids_expire_by_arrival(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let processed = NewWebhookDelivery {
        id: "evt_ffffffffffffffffffffffff".into(),
        received_at: 100,
        ..webhook(1, "acme", "d-1")
    };
    let waiting = NewWebhookDelivery {
        id: "evt_fffffffffffffffffffffffe".into(),
        received_at: 100,
        ..webhook(2, "acme", "d-2")
    };
    for webhook in [&processed, &waiting] {
        store.insert_webhook_delivery(webhook).await.unwrap();
    }
    let copied = NewEvent {
        id: event_id_at(now_unix() * 1000, 3),
        tenant_id: "acme".into(),
        plugin: Some("jira".into()),
        event_type: "jira.webhook".into(),
        occurred_at: 5,
        data: EventData::Json(json!({})),
        idempotency_key: None,
    };
    store
        .record_processed_webhooks(&[(processed.id.clone(), vec![copied])])
        .await
        .unwrap();

    assert_eq!(store.expire_events(50).await.unwrap(), Expired::default());
    let expired = store.expire_events(200).await.unwrap();
    assert_eq!(expired, Expired { webhooks: 1, events: 0 });
    assert_eq!(stored_ids(store).await, vec![waiting.id.clone()]);
}

on_both_backends!(
    multi_thread,
    webhooks_with_ids_from_before_time_ordering_expire_by_arrival,
    webhooks_with_ids_from_before_time_ordering_expire_by_arrival_on_postgres,
    "store_legacy_ids",
    legacy_ids_expire_by_arrival
);

/// A batch of processed webhooks: each leaves the backlog once (also when listed twice, or
/// already taken), and their events enter the log in the order given.
async fn processed_batch(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let now = now_unix();
    let webhooks: Vec<NewWebhookDelivery> = (1..=3u8)
        .map(|n| NewWebhookDelivery {
            id: event_id_at(now * 1000, n),
            received_at: now,
            ..webhook(n.into(), "acme", &format!("d-{n}"))
        })
        .collect();
    for webhook in &webhooks {
        store.insert_webhook_delivery(webhook).await.unwrap();
    }
    let event = |id: String| NewEvent {
        data: EventData::WebhookBody(webhooks[0].id.clone()),
        id,
        tenant_id: "acme".into(),
        plugin: Some("jira".into()),
        event_type: "jira.issue_created".into(),
        occurred_at: 5,
        idempotency_key: None,
    };
    let (first, second, third) = (&webhooks[0].id, &webhooks[1].id, &webhooks[2].id);
    let taken_before = store
        .record_processed_webhooks(&[(third.clone(), vec![event(third.clone())])])
        .await
        .unwrap();
    assert_eq!(taken_before, 1);
    let first_events: Vec<NewEvent> = ["", "_1", "_2"].iter().map(|s| event(format!("{first}{s}"))).collect();
    let batch = vec![
        (first.clone(), first_events.clone()),
        (third.clone(), vec![event(format!("{third}_again"))]),
        (second.clone(), vec![event(second.clone())]),
        (first.clone(), first_events),
    ];
    assert_eq!(store.record_processed_webhooks(&batch).await.unwrap(), 2);
    let logged: Vec<String> = store
        .events_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let expected = [
        third.clone(),
        first.clone(),
        format!("{first}_1"),
        format!("{first}_2"),
        second.clone(),
    ];
    assert_eq!(logged, expected);
    assert!(pending_ids(store).await.is_empty());
}

#[tokio::test]
async fn a_processed_batch_enters_the_log_once_and_in_order() {
    let (_dir, store) = sqlite_store().await;
    processed_batch(&store).await;
}

#[tokio::test]
async fn a_processed_batch_enters_the_log_once_and_in_order_on_postgres() {
    on_postgres!("store_processed_batch", processed_batch);
}
