//! Pages a tenant reads, cut by bytes as well as by count: events (data stored with the event or
//! carried by its webhook) and jobs (request, result and error).

use serde_json::json;

use super::*;
use crate::{JobState, NewJob};

/// An emitted event of acme's whose data is a string of `bytes` characters (plus its quotes).
fn sized_event(n: usize, bytes: usize) -> NewEvent {
    NewEvent {
        data: EventData::Json(json!("x".repeat(bytes))),
        ..emitted(&format!("evt_page_{n}"), "acme")
    }
}

/// Reads acme's events page by page, each at most `limit` long and `budget` bytes of data;
/// returns the ids of each page.
async fn event_pages(store: &Store, limit: i64, budget: u64) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = store.tenant_events_after("acme", after, limit, budget).await.unwrap();
        let Some(last) = page.last() else {
            return pages;
        };
        after = last.seq;
        pages.push(page.into_iter().map(|event| event.id).collect());
    }
}

on_both_backends!(
    event_pages_stop_at_their_byte_budget_and_the_next_continues,
    event_pages_stop_at_their_byte_budget_and_the_next_continues_on_postgres,
    "store_event_page_bytes",
    event_page_bytes
);

async fn event_page_bytes(store: &Store) {
    crate::testing::add_tenant(store, "acme").await.unwrap();
    for n in 0..5 {
        store.append_tenant_event(&sized_event(n, 998)).await.unwrap();
    }
    // An event carrying its webhook's 3,000-byte body counts the body.
    let body = format!("[\"{}\"]", "y".repeat(2996));
    let hook = NewWebhookDelivery {
        id: "evt_page_hook".into(),
        tenant_id: "acme".into(),
        payload: body.into_bytes(),
        ..webhook(0, "acme", "d-page")
    };
    store.insert_webhook_delivery(&hook).await.unwrap();
    let carried = NewEvent {
        id: hook.id.clone(),
        data: EventData::WebhookBody(hook.id.clone()),
        ..emitted("unused", "acme")
    };
    store
        .record_processed_webhooks(&[(hook.id.clone(), vec![carried])])
        .await
        .unwrap();
    store.append_tenant_event(&sized_event(5, 998)).await.unwrap();

    let ids = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    // 1,000 bytes each: two fit in 2,500; the 3,000-byte one comes alone, though over the budget.
    assert_eq!(
        event_pages(store, 100, 2_500).await,
        [
            ids(&["evt_page_0", "evt_page_1"]),
            ids(&["evt_page_2", "evt_page_3"]),
            ids(&["evt_page_4"]),
            ids(&["evt_page_hook"]),
            ids(&["evt_page_5"]),
        ]
    );
    // The count still bounds a page.
    assert_eq!(
        event_pages(store, 4, u64::MAX)
            .await
            .iter()
            .map(Vec::len)
            .collect::<Vec<_>>(),
        [4, 3]
    );
    // Data comes back whole.
    let first = store.tenant_events_after("acme", 0, 1, 0).await.unwrap();
    assert_eq!(first[0].data.len(), 1_000);
}

on_both_backends!(
    job_pages_stop_at_their_byte_budget_and_the_next_continues,
    job_pages_stop_at_their_byte_budget_and_the_next_continues_on_postgres,
    "store_job_page_bytes",
    job_page_bytes
);

async fn job_page_bytes(store: &Store) {
    crate::testing::add_tenant(store, "acme").await.unwrap();
    for n in 0..5 {
        let job = NewJob {
            id: format!("job_page_{n}"),
            tenant_id: "acme".into(),
            kind: "echo".into(),
            payload: json!("p".repeat(498)).to_string(),
            max_attempts: 1,
        };
        assert!(store.enqueue_job(&job, 1_000, u32::MAX).await.unwrap());
    }
    // The oldest two end, one with a result and one with an error of 500 bytes: 1,000 in all.
    for claimed in store.claim_jobs(2_000, 60_000, 2, 5).await.unwrap() {
        let text = json!("r".repeat(498)).to_string();
        let (state, result, error) = if claimed.id == "job_page_1" {
            (JobState::Succeeded, Some(text.as_str()), None)
        } else {
            (JobState::Dead, None, Some(text.as_str()))
        };
        assert!(store
            .finish_job(&claimed.id, 1, state, result, error, 2_000, 2_000)
            .await
            .unwrap());
    }

    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store
            .list_jobs("acme", None, before.as_deref(), 100, 1_600)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        pages.push(page.into_iter().map(|job| job.id).collect::<Vec<_>>());
    }
    assert_eq!(
        pages,
        [
            vec![
                "job_page_4".to_owned(),
                "job_page_3".to_owned(),
                "job_page_2".to_owned()
            ],
            vec!["job_page_1".to_owned()],
            vec!["job_page_0".to_owned()],
        ]
    );
}
