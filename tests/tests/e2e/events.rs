//! Listing stored webhook events: pages bounded by count and payload bytes, followed by cursor.

use axum::body::Body;
use integrations_store::NewWebhookDelivery;
use serde_json::{json, Value};

use crate::harness::{jira_server, jira_signature, TestApp};

/// A tenant with Jira installed under `hook-secret`; returns its API key.
async fn tenant_with_jira(app: &TestApp, tenant: &str) -> String {
    let key = app.tenant(tenant, json!({})).await;
    // Webhooks never call Jira; only install's credential check does.
    let jira = jira_server().await;
    let installed = app.install_jira(&key, &jira.uri(), "t", Some("hook-secret")).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    key
}

/// Delivers a signed Jira event with `padding` bytes of filler; returns our event id.
async fn deliver(app: &TestApp, tenant: &str, delivery_id: &str, padding: usize) -> String {
    let body = json!({"webhookEvent": "jira:issue_updated", "pad": "x".repeat(padding)}).to_string();
    let request = http::Request::post(format!("/v1/webhooks/jira/{tenant}"))
        .header("x-atlassian-webhook-identifier", delivery_id)
        .header("x-hub-signature", jira_signature("hook-secret", body.as_bytes()))
        .body(Body::from(body))
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status, 202, "{}", response.text());
    response.json()["id"].as_str().unwrap().to_owned()
}

/// Every page from `path` on, following `next` until it is null.
async fn all_pages(app: &TestApp, key: &str, path: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = path.to_owned();
    loop {
        let response = app.get(&next, key).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let page = response.json();
        let cursor = page["next"].clone();
        pages.push(page);
        match cursor {
            Value::Null => return pages,
            Value::String(cursor) => {
                let separator = if path.contains('?') { '&' } else { '?' };
                next = format!("{path}{separator}after={cursor}");
            }
            other => panic!("next is neither a string nor null: {other}"),
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn paging_returns_every_event_exactly_once_newest_first() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    // Several events share a second, so the id must break ties in order and in the cursor.
    let arrivals = [
        (100, "evt_b"),
        (100, "evt_d"),
        (100, "evt_a"),
        (101, "evt_c"),
        (102, "evt_f"),
        (102, "evt_e"),
        (103, "evt_g"),
    ];
    for (n, (received_at, id)) in arrivals.iter().enumerate() {
        let event = NewWebhookDelivery {
            id: (*id).to_owned(),
            tenant_id: "acme".into(),
            plugin: "jira".into(),
            delivery_id: format!("d-{n}"),
            event_type: None,
            payload: br#"{"webhookEvent":"jira:issue_updated"}"#.to_vec(),
            received_at: *received_at,
        };
        app.store().insert_webhook_delivery(&event).await.unwrap();
    }
    let pages = all_pages(&app, &key, "/v1/webhook-events?limit=2").await;
    assert_eq!(pages.len(), 4);
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let expected = ["evt_g", "evt_f", "evt_e", "evt_c", "evt_d", "evt_b", "evt_a"];
    assert_eq!(listed, expected);
    // A limit that divides the events evenly still ends on a null `next` after the last page.
    let pages = all_pages(&app, &key, "/v1/webhook-events?plugin=jira&limit=7").await;
    assert_eq!(pages.len(), 1);
    assert_eq!(ids(&pages[0]), expected);
}

#[tokio::test]
async fn a_page_stops_at_the_payload_budget_and_next_continues() {
    let app = TestApp::start().await;
    let key = tenant_with_jira(&app, "acme").await;
    let mut delivered = Vec::new();
    for n in 0..6 {
        delivered.push(deliver(&app, "acme", &format!("d-{n}"), 900 * 1024).await);
    }
    let pages = all_pages(&app, &key, "/v1/webhook-events").await;
    let sizes: Vec<usize> = pages.iter().map(|page| ids(page).len()).collect();
    // 4 MiB of payload per page: four events of 900 KiB fit, a fifth would not.
    assert_eq!(sizes, [4, 2]);
    let mut listed: Vec<String> = pages.iter().flat_map(ids).collect();
    listed.sort();
    delivered.sort();
    assert_eq!(listed, delivered);
}

#[tokio::test]
async fn another_tenants_cursor_shows_nothing_of_theirs() {
    let app = TestApp::start().await;
    let acme = tenant_with_jira(&app, "acme").await;
    let globex = tenant_with_jira(&app, "globex").await;
    // Globex's event is older than every acme event, so it lies past acme's cursor.
    let globex_event = deliver(&app, "globex", "g-0", 10).await;
    for n in 0..3 {
        deliver(&app, "acme", &format!("a-{n}"), 10).await;
    }
    let first = app.get("/v1/webhook-events?limit=1", &acme).await.json();
    let cursor = first["next"].as_str().expect("more acme events").to_owned();
    let borrowed = app
        .get(&format!("/v1/webhook-events?after={cursor}"), &globex)
        .await
        .json();
    // The cursor only positions: globex sees its own older event and nothing of acme's.
    assert_eq!(ids(&borrowed), vec![globex_event]);
}

#[tokio::test]
async fn a_malformed_cursor_is_refused() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    for cursor in ["", "not!base64", "bm8tY29sb24", "eDpldnRfMQ", "MTI6ZXZ0IDE"] {
        app.get(&format!("/v1/webhook-events?after={cursor}"), &key)
            .await
            .assert_problem(400, "invalid-parameters");
    }
}
