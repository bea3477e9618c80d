//! The normalized event log: webhooks become events after the 202, lifecycle changes and tenant
//! events join them, and tenants read the stream after a cursor, waiting when it is empty.

use std::time::Duration;

use axum::body::Body;
use serde_json::{json, Value};

use crate::harness::{jira_server, jira_signature, TestApp, ADMIN_TOKEN};

const BODY: &[u8] = br#"{"webhookEvent":"jira:issue_created","issue":{"key":"ABC-1"}}"#;

async fn app_with_jira() -> (TestApp, String) {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    // Webhooks never call Jira; only install's credential check does.
    let jira = jira_server().await;
    let installed = app.install_jira(&key, &jira.uri(), "t", Some("hook-secret")).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
    (app, key)
}

/// `body` delivered to acme's Jira webhook URL, signed with its secret.
fn signed_delivery(delivery_id: &str, body: &[u8]) -> http::Request<Body> {
    http::Request::post("/v1/webhooks/jira/acme")
        .header("content-type", "application/json")
        .header("x-atlassian-webhook-identifier", delivery_id)
        .header("x-hub-signature", jira_signature("hook-secret", body))
        .body(Body::from(body.to_vec()))
        .unwrap()
}

async fn deliver(app: &TestApp, delivery_id: &str) -> u16 {
    app.send(signed_delivery(delivery_id, BODY)).await.status.as_u16()
}

async fn emit(app: &TestApp, key: &str, body: Value, idempotency_key: Option<&str>) -> crate::harness::TestResponse {
    let mut request = http::Request::post("/v1/events")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("idempotency-key", idempotency_key);
    }
    app.send(request.body(Body::from(body.to_string())).unwrap()).await
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[tokio::test]
async fn a_verified_webhook_becomes_one_normalized_event_after_the_install_event() {
    let (app, key) = app_with_jira().await;
    assert_eq!(deliver(&app, "d-1").await, 202);
    assert_eq!(deliver(&app, "d-1").await, 202, "a redelivery is acknowledged");

    let (events, _) = app.read_events(&key, None, 2).await;
    assert_eq!(types(&events), ["plugin.installed", "jira.issue_created"]);
    let issue = &events[1];
    assert_eq!(issue["tenant"], "acme");
    assert_eq!(issue["plugin"], "jira");
    assert_eq!(
        issue["data"],
        json!({"webhookEvent": "jira:issue_created", "issue": {"key": "ABC-1"}})
    );
    assert!(issue["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
    assert!(issue["occurred_at"].as_str().is_some_and(|at| at.ends_with('Z')));

    // The redelivery stays one event.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (all, _) = app.read_events(&key, None, 2).await;
    assert_eq!(all.len(), 2, "{all:?}");
}

#[tokio::test]
async fn a_webhooks_event_has_the_id_its_acknowledgement_gave() {
    let (app, key) = app_with_jira().await;
    let acknowledged = app.send(signed_delivery("d-id", BODY)).await;
    assert_eq!(acknowledged.status, 202);
    let webhook_id = acknowledged.json()["id"].as_str().unwrap().to_owned();

    // Derived from the webhook, not drawn when it is processed: processing it again could not
    // give the same event a second id.
    let (events, _) = app.read_events(&key, None, 2).await;
    assert_eq!(events[1]["id"], webhook_id.as_str());
}

#[tokio::test]
async fn a_webhook_stored_before_ids_were_time_ordered_gets_event_ids_of_its_own() {
    let (app, key) = app_with_jira().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // As an older release stored it: `evt_` and 24 random hex digits, not yet processed.
    let legacy = integrations_store::NewWebhookDelivery {
        id: "evt_9f3c2a7b1d0e4f5a6b7c8d9e".into(),
        tenant_id: "acme".into(),
        plugin: "jira".into(),
        delivery_id: "d-legacy".into(),
        event_type: Some("jira:issue_created".into()),
        payload: BODY.to_vec(),
        received_at: now - 60,
    };
    app.store().insert_webhook_delivery(&legacy).await.unwrap();

    let (events, _) = app.read_events(&key, None, 2).await;
    assert_eq!(types(&events), ["plugin.installed", "jira.issue_created"]);
    let id = events[1]["id"].as_str().unwrap();
    // Retention cannot tell such a webhook's age by its id, so its events neither share it nor
    // carry its body by reference.
    assert_ne!(id, legacy.id);
    assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
    assert_eq!(
        events[1]["data"],
        json!({"webhookEvent": "jira:issue_created", "issue": {"key": "ABC-1"}})
    );
}

#[tokio::test]
async fn a_body_that_only_looks_like_json_is_carried_as_text_and_reads_keep_working() {
    let (app, key) = app_with_jira().await;
    // Jira's check of the body skips over string contents: bytes that are not UTF-8 inside a
    // string pass it, but no reader could decode such a body as the event's data.
    let body: &[u8] = b"{\"webhookEvent\":\"jira:issue_created\",\"note\":\"\xff\"}";
    assert_eq!(app.send(signed_delivery("d-odd", body)).await.status, 202);
    assert_eq!(deliver(&app, "d-fine").await, 202);

    let (events, _) = app.read_events(&key, None, 3).await;
    assert_eq!(
        types(&events),
        ["plugin.installed", "jira.issue_created", "jira.issue_created"]
    );
    assert_eq!(
        events[1]["data"],
        json!({"body": String::from_utf8_lossy(body)}),
        "carried as text, not by reference"
    );
    assert_eq!(
        events[2]["data"],
        json!({"webhookEvent": "jira:issue_created", "issue": {"key": "ABC-1"}})
    );
}

#[tokio::test]
async fn every_lifecycle_change_is_an_event_in_order() {
    let (app, key) = app_with_jira().await;
    let jira = jira_server().await;
    let configure = json!({"host": jira.uri(), "email": "bot@example.com", "api_token": "t2"});
    assert_eq!(app.put("/v1/plugins/jira/configure", &key, configure).await.status, 200);
    assert_eq!(app.post("/v1/plugins/jira/disable", &key, json!({})).await.status, 200);
    assert_eq!(app.post("/v1/plugins/jira/enable", &key, json!({})).await.status, 200);
    assert_eq!(app.delete("/v1/plugins/jira", &key).await.status, 204);

    let (events, _) = app.read_events(&key, None, 5).await;
    assert_eq!(
        types(&events),
        [
            "plugin.installed",
            "plugin.configured",
            "plugin.disabled",
            "plugin.enabled",
            "plugin.uninstalled"
        ]
    );
    assert!(events
        .iter()
        .all(|e| e["plugin"] == "jira" && e["data"]["plugin"] == "jira"));
}

#[tokio::test]
async fn an_emitted_event_with_an_idempotency_key_is_appended_once() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let body = json!({"type": "order.created", "data": {"order": 42}});
    let first = emit(&app, &key, body.clone(), Some("order-42")).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let again = emit(&app, &key, body.clone(), Some("order-42")).await;
    assert_eq!(again.status, 202);
    assert_eq!(first.json()["id"], again.json()["id"]);
    let other = emit(&app, &key, body, None).await;
    assert_ne!(other.json()["id"], first.json()["id"]);

    let (events, _) = app.read_events(&key, None, 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["id"], first.json()["id"]);
    assert_eq!(events[0]["type"], "order.created");
    assert_eq!(events[0]["plugin"], Value::Null);
    assert_eq!(events[0]["data"], json!({"order": 42}));
}

#[tokio::test]
async fn a_waiting_read_returns_the_event_appended_while_it_waits() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    let empty = app.get("/v1/events", &key).await.json();
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["next"], Value::Null, "no event yet: nothing to read on from");

    let reader = {
        let (router, key) = (app.router.clone(), key.clone());
        tokio::spawn(async move {
            let request = http::Request::get("/v1/events?wait=10")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap();
            let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reader.is_finished(), "the read should wait for an event");
    let emitted = emit(&app, &key, json!({"type": "ping"}), None).await.json();
    let page = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the waiting read ends when the event arrives")
        .unwrap();
    assert_eq!(page["events"][0]["id"], emitted["id"]);
    assert_eq!(page["next"], emitted["id"], "the cursor is the last event read");
}

#[tokio::test]
async fn a_tenant_never_reads_another_tenants_events_even_with_its_cursor() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme", json!({})).await;
    let globex = app.tenant("globex", json!({})).await;
    emit(&app, &acme, json!({"type": "secret.plan", "data": {"x": 1}}), None).await;
    let (acme_events, _) = app.read_events(&acme, None, 1).await;
    assert_eq!(acme_events.len(), 1);

    let globex_page = app.get("/v1/events", &globex).await.json();
    assert_eq!(globex_page["events"], json!([]));
    // Another tenant's event is no cursor: it would tell where that event sits in the log.
    let acme_event = acme_events[0]["id"].as_str().unwrap();
    app.get(&format!("/v1/events?after={acme_event}"), &globex)
        .await
        .assert_problem(422, "invalid-request");
    // Nor is a position in the deployment-wide log: cursors are the tenant's own event ids.
    app.get("/v1/events?after=0", &globex)
        .await
        .assert_problem(422, "invalid-request");
}

/// Cursors are the tenant's own event ids, so reading on tells nothing of other tenants'
/// traffic: between two of its events the cursor moves by one event, however many others
/// appended meanwhile.
#[tokio::test]
async fn cursors_reveal_nothing_of_other_tenants_events() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme", json!({})).await;
    let globex = app.tenant("globex", json!({})).await;
    let first = emit(&app, &acme, json!({"type": "one"}), None).await.json();
    for _ in 0..5 {
        emit(&app, &globex, json!({"type": "noise"}), None).await;
    }
    let second = emit(&app, &acme, json!({"type": "two"}), None).await.json();
    let (events, next) = app.read_events(&acme, None, 2).await;
    assert_eq!(types(&events), ["one", "two"]);
    assert_eq!(next, second["id"].as_str().unwrap());
    let page = app
        .get(&format!("/v1/events?after={}", first["id"].as_str().unwrap()), &acme)
        .await
        .json();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], second["id"]);
    for event in &events {
        assert!(
            event.get("seq").is_none(),
            "no log position in the event either: {event}"
        );
    }
}

#[tokio::test]
async fn malformed_reads_and_emits_are_refused() {
    let app = TestApp::start().await;
    let key = app.tenant("acme", json!({})).await;
    app.get("/v1/events?after=abc", &key)
        .await
        .assert_problem(422, "invalid-request");
    emit(&app, &key, json!({"type": "bad type"}), None)
        .await
        .assert_problem(422, "invalid-request");
    emit(&app, &key, json!({"data": {}}), None)
        .await
        .assert_problem(422, "invalid-request");
    app.call("GET", "/v1/events", None, None)
        .await
        .assert_problem(401, "unauthorized");
    // The admin token is not a tenant key.
    app.get("/v1/events", ADMIN_TOKEN)
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn events_and_processed_webhooks_expire_after_the_retention() {
    let app = TestApp::start_with(|config| config.event_retention = Duration::from_secs(1)).await;
    let key = app.tenant("acme", json!({})).await;
    let jira = jira_server().await;
    let installed = app.install_jira(&key, &jira.uri(), "t", Some("hook-secret")).await;
    assert_eq!(installed.status, 201);
    assert_eq!(deliver(&app, "d-old").await, 202);
    let (events, _) = app.read_events(&key, None, 2).await;
    assert_eq!(events.len(), 2);

    // Retention sweeps every second; rows older than a second go.
    let mut remaining = usize::MAX;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let page = app.get("/v1/events", &key).await.json();
        remaining = page["events"].as_array().map_or(0, Vec::len);
        if remaining == 0
            && app
                .store()
                .list_webhook_deliveries("acme", None, 10)
                .await
                .unwrap()
                .is_empty()
        {
            break;
        }
    }
    assert_eq!(remaining, 0);
    assert!(app
        .store()
        .list_webhook_deliveries("acme", None, 10)
        .await
        .unwrap()
        .is_empty());
    // Past retention the delivery id no longer deduplicates: the vendor's late retry is new.
    assert_eq!(deliver(&app, "d-old").await, 202);
    let (again, _) = app.read_events(&key, None, 1).await;
    assert_eq!(types(&again), ["jira.issue_created"]);
}

/// Reads every page of acme's events with `GET /v1/events`, following `next`; returns each page's
/// events and its body's size.
async fn all_event_pages(app: &TestApp, key: &str) -> Vec<(Vec<Value>, usize)> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/events?limit=500&after={after}"),
            None => "/v1/events?limit=500".to_owned(),
        };
        let response = app.get(&path, key).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let page = response.json();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return pages;
        }
        after = page["next"].as_str().map(str::to_owned);
        pages.push((events, response.body.len()));
    }
}

#[tokio::test]
async fn a_page_of_events_holds_at_most_4_mib_of_data_and_the_next_continues() {
    let (app, key) = app_with_jira().await;
    let padding = "x".repeat(900 * 1024);
    // A webhook's body, carried by its event by reference, counts as much as data of its own.
    let body = json!({"webhookEvent": "jira:issue_created", "issue": {"key": "ABC-1"}, "padding": padding});
    let body = body.to_string().into_bytes();
    assert_eq!(app.send(signed_delivery("d-big", &body)).await.status, 202);
    app.read_events(&key, None, 2).await;
    for n in 0..5 {
        let emitted = emit(
            &app,
            &key,
            json!({"type": "order.created", "data": {"n": n, "padding": padding}}),
            None,
        )
        .await;
        assert_eq!(emitted.status, 202, "{}", emitted.text());
    }

    let pages = all_event_pages(&app, &key).await;
    let sizes: Vec<usize> = pages.iter().map(|(events, _)| events.len()).collect();
    // The install event and four of 900 KiB fit in 4 MiB; a fifth would not.
    assert_eq!(sizes, [5, 2]);
    for (_, bytes) in &pages {
        assert!(*bytes <= 4 * 1024 * 1024 + 64 * 1024, "a page of {bytes} bytes");
    }
    let events: Vec<&Value> = pages.iter().flat_map(|(events, _)| events).collect();
    assert_eq!(
        types(&events.iter().map(|e| (*e).clone()).collect::<Vec<_>>()),
        [
            "plugin.installed",
            "jira.issue_created",
            "order.created",
            "order.created",
            "order.created",
            "order.created",
            "order.created"
        ]
    );
    assert_eq!(events[1]["data"]["padding"].as_str().map(str::len), Some(padding.len()));
    let ns: Vec<&Value> = events[2..].iter().map(|e| &e["data"]["n"]).collect();
    assert_eq!(ns, [&json!(0), &json!(1), &json!(2), &json!(3), &json!(4)]);
}

#[tokio::test]
async fn an_events_data_is_written_out_as_it_was_stored() {
    let (app, key) = app_with_jira().await;
    // A number no f64 holds exactly: parsing the data to write it out again would round it.
    let body = br#"{"webhookEvent":"jira:issue_created","issue":{"key":"ABC-1","id":123456789012345678901234567890}}"#;
    assert_eq!(app.send(signed_delivery("d-exact", body)).await.status, 202);
    let (events, _) = app.read_events(&key, None, 2).await;
    assert_eq!(types(&events), ["plugin.installed", "jira.issue_created"]);
    let page = app.get("/v1/events", &key).await;
    assert!(
        page.text().contains(r#""id":123456789012345678901234567890"#),
        "{}",
        page.text()
    );
}
