//! Outbound webhooks through the real host: endpoints are created over the API, events enter the
//! log (emitted by the tenant or from a verified vendor webhook), and receivers on loopback get
//! Standard Webhooks deliveries, retried on the configured (shortened) schedule.

use std::time::{Duration, Instant};

use axum::body::Body;
use serde_json::{json, Value};

use crate::harness::{jira_server, jira_signature, TestApp, ADMIN_TOKEN};
use crate::receiver::{verifies, Receiver, Reply};

const WAIT: Duration = Duration::from_secs(10);

async fn app_with_schedule(schedule: &str) -> TestApp {
    let schedule = schedule.parse().expect("a schedule");
    TestApp::start_with(|config| config.webhook_retry_schedule = schedule).await
}

async fn create_endpoint(app: &TestApp, key: &str, url: &str, event_types: Value) -> Value {
    let created = app
        .post(
            "/v1/webhook-endpoints",
            key,
            json!({"url": url, "event_types": event_types, "description": "test receiver"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()
}

async fn emit(app: &TestApp, key: &str, event_type: &str) -> String {
    let emitted = app
        .post("/v1/events", key, json!({"type": event_type, "data": {"n": 1}}))
        .await;
    assert_eq!(emitted.status, 202, "{}", emitted.text());
    emitted.json()["id"].as_str().expect("event id").to_owned()
}

async fn patch(app: &TestApp, key: &str, path: &str, body: Value) -> crate::harness::TestResponse {
    app.call("PATCH", path, Some(key), Some(body.to_string().into_bytes()))
        .await
}

async fn jira_webhook(app: &TestApp, tenant: &str) {
    let body = br#"{"webhookEvent":"jira:issue_created","issue":{"key":"ABC-1"}}"#;
    let request = http::Request::post(format!("/v1/webhooks/jira/{tenant}"))
        .header("content-type", "application/json")
        .header("x-atlassian-webhook-identifier", "d-1")
        .header("x-hub-signature", jira_signature("hook-secret", body))
        .body(Body::from(body.to_vec()))
        .unwrap();
    assert_eq!(app.send(request).await.status, 202);
}

async fn install_jira(app: &TestApp, key: &str) {
    // Only install's credential check calls Jira.
    let jira = jira_server().await;
    let installed = app.install_jira(key, &jira.uri(), "t", Some("hook-secret")).await;
    assert_eq!(installed.status, 201, "{}", installed.text());
}

/// The tenant's events as `GET /v1/events` shows them.
async fn events(app: &TestApp, key: &str) -> Vec<Value> {
    let page = app.get("/v1/events?limit=500", key).await;
    assert_eq!(page.status, 200);
    page.json()["events"].as_array().cloned().unwrap_or_default()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_tenant_event_and_a_webhook_event_arrive_signed_with_standard_webhooks_headers() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    install_jira(&app, &key).await;
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!(["order.*", "jira.*"])).await;
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(endpoint["id"].as_str().is_some_and(|id| id.starts_with("ep_")));
    assert_eq!(endpoint["enabled"], true);

    let emitted = emit(&app, &key, "order.created").await;
    jira_webhook(&app, "acme").await;
    let hits = receiver.wait_for(2, WAIT).await;

    let shown = events(&app, &key).await;
    for hit in &hits {
        assert_eq!(hit.header("content-type"), "application/json");
        assert!(verifies(&secret, hit), "signature of {:?}", hit.headers);
        assert!((unix_now() - hit.header("webhook-timestamp").parse::<i64>().unwrap()).abs() <= 5);
        assert!(hit.header("webhook-signature").starts_with("v1,"));
        let as_shown = shown
            .iter()
            .find(|event| event["id"] == hit.webhook_id().as_str())
            .expect("the delivered event is in GET /v1/events");
        assert_eq!(
            &hit.json(),
            as_shown,
            "the body is the event as GET /v1/events shows it"
        );
    }
    let types: Vec<Value> = hits.iter().map(|hit| hit.json()["type"].clone()).collect();
    assert!(types.contains(&json!("order.created")) && types.contains(&json!("jira.issue_created")));
    assert!(hits.iter().any(|hit| hit.webhook_id() == emitted));
    // plugin.installed matches no filter.
    receiver.stays_at(2, Duration::from_millis(700)).await;
}

#[tokio::test]
async fn filters_and_wildcards_choose_what_each_endpoint_receives() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let (all, star, orders, exact) = (
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
    );
    // An absent list means every type too.
    let created = app.post("/v1/webhook-endpoints", &key, json!({"url": all.url})).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["event_types"], json!([]));
    create_endpoint(&app, &key, &star.url, json!(["*"])).await;
    create_endpoint(&app, &key, &orders.url, json!(["order.*"])).await;
    create_endpoint(&app, &key, &exact.url, json!(["invoice.paid"])).await;

    emit(&app, &key, "order.created").await;
    emit(&app, &key, "order.item.added").await;
    emit(&app, &key, "invoice.paid").await;
    emit(&app, &key, "orders.other").await;

    let received = |receiver: &Receiver| {
        let mut types: Vec<String> = receiver
            .hits()
            .iter()
            .map(|hit| hit.json()["type"].as_str().unwrap_or_default().to_owned())
            .collect();
        types.sort();
        types
    };
    all.wait_for(4, WAIT).await;
    star.wait_for(4, WAIT).await;
    orders.wait_for(2, WAIT).await;
    exact.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(received(&all).len(), 4);
    assert_eq!(received(&star).len(), 4);
    assert_eq!(received(&orders), ["order.created", "order.item.added"]);
    assert_eq!(received(&exact), ["invoice.paid"]);
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_then_the_delivery_is_dead() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let long_body = "e".repeat(10_000);
    let receiver = Receiver::start("127.0.0.1", move |_| Reply {
        body: long_body.clone(),
        ..Reply::status(500)
    })
    .await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let id = endpoint["id"].as_str().unwrap();
    let event = emit(&app, &key, "order.created").await;

    let hits = receiver.wait_for(3, WAIT).await;
    assert!(
        hits.iter().all(|hit| hit.webhook_id() == event),
        "a retry carries the same webhook-id"
    );
    let (first_gap, second_gap) = (hits[1].at - hits[0].at, hits[2].at - hits[1].at);
    // 1 s and 2 s, each ±20%, plus the dispatcher's polling.
    assert!(
        first_gap >= Duration::from_millis(750) && first_gap <= Duration::from_millis(2000),
        "{first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(1550) && second_gap <= Duration::from_millis(3200),
        "{second_gap:?}"
    );
    receiver.stays_at(3, Duration::from_secs(3)).await;

    let page = app.get(&format!("/v1/webhook-endpoints/{id}/attempts"), &key).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let attempts = page.json()["attempts"].as_array().cloned().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts.iter().map(|a| a["attempt"].clone()).collect::<Vec<_>>(),
        [json!(3), json!(2), json!(1)],
        "newest first"
    );
    for attempt in &attempts {
        assert_eq!(attempt["status_code"], 500);
        assert_eq!(attempt["succeeded"], false);
        assert_eq!(attempt["webhook_id"], event.as_str());
        assert_eq!(attempt["delivery_status"], "failed", "dead after the last attempt");
        assert_eq!(attempt["response_body"].as_str().unwrap().len(), 4096, "cut to 4 KiB");
        assert!(attempt["latency_ms"].as_i64().is_some());
        assert!(attempt["attempted_at"].as_str().is_some_and(|at| at.ends_with('Z')));
    }
    // Failing for seconds does not disable the endpoint.
    let shown = app.get(&format!("/v1/webhook-endpoints/{id}"), &key).await.json();
    assert_eq!(shown["enabled"], true);
}

#[tokio::test]
async fn a_longer_retry_after_is_honoured() {
    let app = app_with_schedule("0,1,1").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::start("127.0.0.1", |n| match n {
        0 => Reply {
            retry_after: Some(3),
            ..Reply::status(503)
        },
        _ => Reply::status(200),
    })
    .await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    emit(&app, &key, "order.created").await;
    let hits = receiver.wait_for(2, WAIT).await;
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(2900),
        "Retry-After 3 honoured over 1 s: {gap:?}"
    );
    receiver.stays_at(2, Duration::from_millis(1500)).await;
    let attempts = app
        .get(
            &format!("/v1/webhook-endpoints/{}/attempts", endpoint["id"].as_str().unwrap()),
            &key,
        )
        .await
        .json();
    assert_eq!(attempts["attempts"][0]["succeeded"], true);
    assert_eq!(attempts["attempts"][0]["delivery_status"], "succeeded");
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_a_disabled_endpoint_gets_nothing() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let gone = Receiver::start("127.0.0.1", |_| Reply::status(410)).await;
    let endpoint = create_endpoint(&app, &key, &gone.url, json!([])).await;
    let path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());
    emit(&app, &key, "order.created").await;
    gone.wait_for(1, WAIT).await;
    let mut shown = Value::Null;
    for _ in 0..50 {
        shown = app.get(&path, &key).await.json();
        if shown["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["enabled"], false, "{shown}");
    assert!(shown["disabled_reason"].as_str().is_some_and(|r| r.contains("410")));
    emit(&app, &key, "order.created").await;
    gone.stays_at(1, Duration::from_secs(2)).await;

    // Disabled by the tenant: nothing either, until enabled again.
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());
    let disabled = patch(&app, &key, &path, json!({"enabled": false})).await;
    assert_eq!(disabled.status, 200, "{}", disabled.text());
    assert_eq!(disabled.json()["disabled_reason"], Value::Null);
    emit(&app, &key, "order.created").await;
    receiver.stays_at(0, Duration::from_millis(1500)).await;
    let enabled = patch(&app, &key, &path, json!({"enabled": true})).await;
    assert_eq!(enabled.json()["enabled"], true);
    let after = emit(&app, &key, "order.created").await;
    let hits = receiver.wait_for(1, WAIT).await;
    assert!(hits.iter().any(|hit| hit.webhook_id() == after));
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled() {
    let app = app_with_schedule("0,60").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::start("127.0.0.1", |_| Reply::status(500)).await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    // Its failure streak began five days and a minute ago.
    sqlx::query("UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2")
        .bind(unix_now() - 5 * 86_400 - 60)
        .bind(&id)
        .execute(app.store().pool())
        .await
        .unwrap();
    emit(&app, &key, "order.created").await;
    receiver.wait_for(1, WAIT).await;
    let path = format!("/v1/webhook-endpoints/{id}");
    let mut shown = Value::Null;
    for _ in 0..50 {
        shown = app.get(&path, &key).await.json();
        if shown["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["enabled"], false, "{shown}");
    assert!(shown["disabled_reason"].as_str().is_some_and(|r| r.contains("failing")));
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_both_signatures_for_the_overlap() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let old = endpoint["secret"].as_str().unwrap().to_owned();
    let id = endpoint["id"].as_str().unwrap();
    emit(&app, &key, "order.created").await;
    let before = receiver.wait_for(1, WAIT).await;
    assert_eq!(before[0].header("webhook-signature").split(' ').count(), 1);

    let rotated = app
        .post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), &key, json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let rotated = rotated.json();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(rotated["previous_secret_expires_at"].as_str().is_some());
    // Shown only at creation and rotation.
    let shown = app.get(&format!("/v1/webhook-endpoints/{id}"), &key).await;
    assert!(!shown.text().contains(&new[6..]) && !shown.text().contains(&old[6..]));
    assert_eq!(shown.json().get("secret"), None);

    emit(&app, &key, "order.created").await;
    let hits = receiver.wait_for(2, WAIT).await;
    let signature = hits[1].header("webhook-signature");
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert!(verifies(&new, &hits[1]), "the new secret verifies");
    assert!(
        verifies(&old, &hits[1]),
        "the old secret still verifies during the overlap"
    );
    let unrelated = format!("whsec_{}", base64_of(&[7u8; 24]));
    assert!(!verifies(&unrelated, &hits[1]));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_replay_sends_matching_events_again_with_the_same_webhook_ids() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!(["order.*"])).await;
    let id = endpoint["id"].as_str().unwrap();
    let since = unix_now() - 1;
    let first = emit(&app, &key, "order.created").await;
    emit(&app, &key, "invoice.paid").await;
    let second = emit(&app, &key, "order.cancelled").await;
    receiver.wait_for(2, WAIT).await;

    let replay = app
        .post(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            &key,
            json!({"since": since}),
        )
        .await;
    assert_eq!(replay.status, 202, "{}", replay.text());
    assert_eq!(replay.json()["replayed"], 2);
    let hits = receiver.wait_for(4, WAIT).await;
    let ids: Vec<String> = hits.iter().map(|hit| hit.webhook_id()).collect();
    assert_eq!(ids.iter().filter(|id| **id == first).count(), 2);
    assert_eq!(ids.iter().filter(|id| **id == second).count(), 2);

    // RFC 3339 works too; a time after the events replays nothing.
    let later = app
        .post(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            &key,
            json!({"since": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(later.json()["replayed"], 0);
    let bad = app
        .post(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            &key,
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(
        bad.assert_problem(422, "invalid-webhook-endpoint")["errors"][0]["field"],
        "since"
    );
    receiver.stays_at(4, Duration::from_millis(700)).await;
}

#[tokio::test]
async fn internal_destinations_are_refused_at_create_and_update_and_never_requested() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    // 127.0.0.2 is loopback but not allowlisted (only 127.0.0.1 is).
    let internal = Receiver::start("127.0.0.2", |_| Reply::status(200)).await;
    let refused = app
        .post("/v1/webhook-endpoints", &key, json!({"url": internal.url}))
        .await;
    let problem = refused.assert_problem(422, "invalid-webhook-endpoint");
    assert_eq!(problem["errors"][0]["field"], "url", "{problem}");

    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());
    let moved = patch(&app, &key, &path, json!({"url": internal.url})).await;
    assert_eq!(
        moved.assert_problem(422, "invalid-webhook-endpoint")["errors"][0]["field"],
        "url"
    );
    for url in ["ftp://127.0.0.1/x", "not a url", "http://user:pw@127.0.0.1/x"] {
        let bad = app.post("/v1/webhook-endpoints", &key, json!({"url": url})).await;
        assert_eq!(
            bad.assert_problem(422, "invalid-webhook-endpoint")["errors"][0]["field"],
            "url"
        );
    }

    // A tenant allowlisted for 127.0.0.2 may use it; once the allowlist is gone, the delivery
    // is refused at connect time and the attempt says so.
    let onprem = app
        .post(
            "/v1/admin/tenants",
            ADMIN_TOKEN,
            json!({"id": "onprem", "outbound_allow_cidrs": ["127.0.0.2/32"]}),
        )
        .await
        .json()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let allowed = create_endpoint(&app, &onprem, &internal.url, json!([])).await;
    emit(&app, &onprem, "order.created").await;
    internal.wait_for(1, WAIT).await;
    let emptied = app
        .call(
            "PATCH",
            "/v1/admin/tenants/onprem",
            Some(ADMIN_TOKEN),
            Some(json!({"outbound_allow_cidrs": []}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(emptied.status, 200, "{}", emptied.text());
    emit(&app, &onprem, "order.created").await;
    let attempts_path = format!("/v1/webhook-endpoints/{}/attempts", allowed["id"].as_str().unwrap());
    let mut attempts = Value::Null;
    for _ in 0..50 {
        attempts = app.get(&attempts_path, &onprem).await.json();
        if attempts["attempts"].as_array().is_some_and(|a| a.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refusal = &attempts["attempts"][0];
    assert_eq!(refusal["status_code"], Value::Null, "{attempts}");
    assert!(
        refusal["error"].as_str().is_some_and(|e| e.contains("refused")),
        "{attempts}"
    );
    internal.stays_at(1, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_a_fast_one() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let slow = Receiver::start("127.0.0.1", |_| Reply {
        delay: Duration::from_secs(5),
        ..Reply::status(200)
    })
    .await;
    let fast = Receiver::ok().await;
    create_endpoint(&app, &key, &slow.url, json!([])).await;
    create_endpoint(&app, &key, &fast.url, json!([])).await;

    let started = Instant::now();
    for _ in 0..6 {
        emit(&app, &key, "order.created").await;
    }
    fast.wait_for(6, Duration::from_millis(1500)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // Meanwhile the slow endpoint has as many requests open as one endpoint may: four.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slow.hits().len(), 4, "at most 4 in flight to one endpoint");
}

#[tokio::test]
async fn attempts_are_listed_newest_first_in_bounded_pages() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::start("127.0.0.1", |_| Reply {
        body: "thanks".into(),
        ..Reply::status(200)
    })
    .await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let path = format!("/v1/webhook-endpoints/{}/attempts", endpoint["id"].as_str().unwrap());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(emit(&app, &key, "order.created").await);
    }
    receiver.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let first = app.get(&format!("{path}?limit=2"), &key).await.json();
    assert_eq!(first["attempts"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = app.get(&format!("{path}?limit=2&before={next}"), &key).await.json();
    assert_eq!(second["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(second["next"], Value::Null);
    let listed: Vec<Value> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["attempts"].as_array().unwrap())
        .cloned()
        .collect();
    let positions: Vec<i64> = listed
        .iter()
        .map(|a| a["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "newest first: {positions:?}");
    let mut webhook_ids: Vec<String> = listed
        .iter()
        .map(|a| a["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    webhook_ids.sort();
    ids.sort();
    assert_eq!(webhook_ids, ids);
    assert!(listed
        .iter()
        .all(|a| a["status_code"] == 200 && a["response_body"] == "thanks" && a["error"] == Value::Null));
    app.get(&format!("{path}?before=abc"), &key)
        .await
        .assert_problem(422, "invalid-request");
}

#[tokio::test]
async fn endpoints_are_private_to_their_tenant() {
    let app = app_with_schedule("0,1,2").await;
    let acme = app.tenant("acme", json!({})).await;
    let globex = app.tenant("globex", json!({})).await;
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &acme, &receiver.url, json!([])).await;
    let path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());

    app.get(&path, &globex)
        .await
        .assert_problem(404, "webhook-endpoint-not-found");
    patch(&app, &globex, &path, json!({"enabled": false}))
        .await
        .assert_problem(404, "webhook-endpoint-not-found");
    for action in ["rotate-secret", "replay"] {
        app.post(&format!("{path}/{action}"), &globex, json!({"since": 0}))
            .await
            .assert_problem(404, "webhook-endpoint-not-found");
    }
    app.get(&format!("{path}/attempts"), &globex)
        .await
        .assert_problem(404, "webhook-endpoint-not-found");
    app.delete(&path, &globex)
        .await
        .assert_problem(404, "webhook-endpoint-not-found");
    assert_eq!(
        app.get("/v1/webhook-endpoints", &globex).await.json()["endpoints"],
        json!([])
    );
    assert_eq!(
        app.get("/v1/webhook-endpoints", &acme).await.json()["endpoints"][0]["id"],
        endpoint["id"]
    );

    // Another tenant's events never reach it.
    emit(&app, &globex, "order.created").await;
    let own = emit(&app, &acme, "order.created").await;
    let hits = receiver.wait_for(1, WAIT).await;
    receiver.stays_at(1, Duration::from_millis(700)).await;
    assert_eq!(hits[0].webhook_id(), own);

    assert_eq!(app.delete(&path, &acme).await.status, 204);
    app.get(&path, &acme)
        .await
        .assert_problem(404, "webhook-endpoint-not-found");
}

#[tokio::test]
async fn malformed_endpoints_are_refused_naming_the_field() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": 5}), "url"),
        (json!({"url": receiver.url, "event_types": "jira.*"}), "event_types"),
        (
            json!({"url": receiver.url, "event_types": ["jira.*", "bad type"]}),
            "event_types.1",
        ),
        (json!({"url": receiver.url, "event_types": ["*.jira"]}), "event_types.0"),
        (json!({"url": receiver.url, "enabled": "yes"}), "enabled"),
        (json!({"url": receiver.url, "colour": "red"}), "colour"),
    ] {
        let refused = app.post("/v1/webhook-endpoints", &key, body.clone()).await;
        let problem = refused.assert_problem(422, "invalid-webhook-endpoint");
        assert_eq!(problem["errors"][0]["field"], field, "{body} → {problem}");
    }
    app.call("GET", "/v1/webhook-endpoints", None, None)
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once() {
    let app = app_with_schedule("0,1,2").await;
    let replica = app.restart_with(|_| {}).await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::start("127.0.0.1", |_| Reply {
        delay: Duration::from_millis(50),
        ..Reply::status(200)
    })
    .await;
    create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let host = if n % 2 == 0 { &app } else { &replica };
        ids.push(emit(host, &key, "order.created").await);
    }
    receiver.wait_for(20, Duration::from_secs(20)).await;
    receiver.stays_at(20, Duration::from_secs(1)).await;
    let mut delivered: Vec<String> = receiver.hits().iter().map(|hit| hit.webhook_id()).collect();
    delivered.sort();
    ids.sort();
    assert_eq!(delivered, ids, "each event exactly once");
}

/// Creates tenant `id` through the admin API with `limits` (e.g. `max_webhook_endpoints`).
async fn tenant_with(app: &TestApp, id: &str, limits: Value) -> String {
    let mut body = json!({"id": id});
    body.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    let created = app.post("/v1/admin/tenants", ADMIN_TOKEN, body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()["api_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn past_its_endpoint_quota_a_tenant_gets_409_and_others_still_create() {
    let app = app_with_schedule("0,1,2").await;
    let acme = tenant_with(&app, "acme", json!({"max_webhook_endpoints": 3})).await;
    let globex = app.tenant("globex", json!({})).await;
    let receiver = Receiver::ok().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_endpoint(&app, &acme, &receiver.url, json!([])).await["id"].clone());
    }
    let refused = app
        .post("/v1/webhook-endpoints", &acme, json!({"url": receiver.url}))
        .await;
    let problem = refused.assert_problem(409, "quota-exceeded");
    assert_eq!(problem["resource"], "webhook endpoints");
    assert_eq!(problem["limit"], 3);
    let listed = app.get("/v1/webhook-endpoints", &acme).await.json();
    assert_eq!(listed["endpoints"].as_array().unwrap().len(), 3, "nothing stored");
    create_endpoint(&app, &globex, &receiver.url, json!([])).await;

    // Deleting one makes room again.
    let path = format!("/v1/webhook-endpoints/{}", ids[0].as_str().unwrap());
    assert_eq!(app.delete(&path, &acme).await.status, 204);
    create_endpoint(&app, &acme, &receiver.url, json!([])).await;
}

#[tokio::test]
async fn the_endpoint_list_is_paged_with_an_opaque_cursor() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(create_endpoint(&app, &key, &receiver.url, json!([])).await["id"].clone());
    }
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(cursor) => format!("/v1/webhook-endpoints?limit=2&after={cursor}"),
            None => "/v1/webhook-endpoints?limit=2".to_owned(),
        };
        let page = app.get(&path, &key).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        let endpoints = page["endpoints"].as_array().unwrap();
        assert!(endpoints.len() <= 2);
        listed.extend(endpoints.iter().map(|e| e["id"].clone()));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = created.clone();
    expected.sort_by_key(|id| id.to_string());
    let mut got = listed.clone();
    got.sort_by_key(|id| id.to_string());
    assert_eq!(got, expected, "each endpoint once");
    let all = app.get("/v1/webhook-endpoints", &key).await.json();
    assert_eq!(all["endpoints"].as_array().unwrap().len(), 5);
    assert_eq!(all["next"], Value::Null);
    app.get("/v1/webhook-endpoints?after=bogus", &key)
        .await
        .assert_problem(422, "invalid-request");
}

#[tokio::test]
async fn an_endpoint_url_is_stored_as_checked_normalised_or_refused() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let base = receiver.url.trim_end_matches("/hook").to_owned();
    let refused = |body: crate::harness::TestResponse| {
        let problem = body.assert_problem(422, "invalid-webhook-endpoint");
        assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
    };
    for url in [
        format!("{base}/a b"),
        format!(" {}", receiver.url),
        format!("{}\t", receiver.url),
        format!("{base}/a\nb"),
        format!("{}#part", receiver.url),
    ] {
        refused(app.post("/v1/webhook-endpoints", &key, json!({"url": url})).await);
    }
    assert_eq!(
        app.get("/v1/webhook-endpoints", &key).await.json()["endpoints"],
        json!([]),
        "nothing refused is stored"
    );

    // Stored, shown and delivered to in the form that was checked.
    let given = format!("{}/x/../hook", base.replace("http://", "HTTP://"));
    let endpoint = create_endpoint(&app, &key, &given, json!([])).await;
    assert_eq!(endpoint["url"], receiver.url.as_str());
    let path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());
    assert_eq!(app.get(&path, &key).await.json()["url"], receiver.url.as_str());
    emit(&app, &key, "order.created").await;
    receiver.wait_for(1, WAIT).await;

    // The same on PATCH.
    refused(patch(&app, &key, &path, json!({"url": format!("{base}/a\tb")})).await);
    let moved = patch(&app, &key, &path, json!({"url": format!("{base}/other/./hook")})).await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.json()["url"], format!("{base}/other/hook"));
}

#[tokio::test]
async fn deliveries_to_a_stored_url_no_request_can_be_made_to_fail_on_the_schedule() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    // As stored before URLs were checked as given.
    sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE id = $2")
        .bind(format!("{}/a b", receiver.url))
        .bind(&id)
        .execute(app.store().pool())
        .await
        .unwrap();
    emit(&app, &key, "order.created").await;
    let path = format!("/v1/webhook-endpoints/{id}/attempts");
    let mut attempts = Value::Null;
    for _ in 0..100 {
        attempts = app.get(&path, &key).await.json();
        if attempts["attempts"][0]["delivery_status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = attempts["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 3, "every attempt of the schedule, then dead: {attempts}");
    for attempt in &listed {
        assert_eq!(attempt["status_code"], Value::Null);
        assert!(
            attempt["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot be requested")),
            "{attempt}"
        );
        assert_eq!(attempt["delivery_status"], "failed");
    }
    receiver.stays_at(0, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_rate_limited_endpoint_gets_every_event_paced_and_others_at_once() {
    let app = app_with_schedule("0,1,2").await;
    let acme = app.tenant("acme", json!({})).await;
    let globex = app.tenant("globex", json!({})).await;
    let (paced, free, other) = (Receiver::ok().await, Receiver::ok().await, Receiver::ok().await);
    let created = app
        .post(
            "/v1/webhook-endpoints",
            &acme,
            json!({"url": paced.url, "rate_limit_per_sec": 2}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["rate_limit_per_sec"], 2);
    let shown = create_endpoint(&app, &acme, &free.url, json!([])).await;
    assert_eq!(shown["rate_limit_per_sec"], Value::Null, "unlimited unless set");
    create_endpoint(&app, &globex, &other.url, json!([])).await;

    for _ in 0..10 {
        emit(&app, &acme, "order.created").await;
        emit(&app, &globex, "order.created").await;
    }
    let free_hits = free.wait_for(10, WAIT).await;
    let other_hits = other.wait_for(10, WAIT).await;
    let paced_hits = paced.wait_for(10, Duration::from_secs(20)).await;
    paced.stays_at(10, Duration::from_millis(700)).await;

    // Every event, none dropped, each once.
    let mut ids: Vec<String> = paced_hits.iter().map(|hit| hit.webhook_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    // Spread over time: 2 per second, so any five span at least about two seconds.
    let at: Vec<Instant> = paced_hits.iter().map(|hit| hit.at).collect();
    for window in at.windows(5) {
        let span = window[4] - window[0];
        assert!(span >= Duration::from_millis(1500), "five deliveries within {span:?}");
    }
    // The others were not held back: both had all ten before the paced one had its fifth.
    let last = |hits: &[crate::receiver::Hit]| hits.iter().map(|hit| hit.at).max().unwrap();
    assert!(last(&free_hits) < at[4], "the same tenant's unlimited endpoint waited");
    assert!(last(&other_hits) < at[4], "another tenant's endpoint waited");
}

#[tokio::test]
async fn a_rate_limit_is_set_changed_and_lifted_by_patch() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());
    let set = patch(&app, &key, &path, json!({"rate_limit_per_sec": 5})).await;
    assert_eq!(set.json()["rate_limit_per_sec"], 5, "{}", set.text());
    let kept = patch(&app, &key, &path, json!({"description": "x"})).await;
    assert_eq!(kept.json()["rate_limit_per_sec"], 5, "a PATCH without it keeps it");
    for bad in [json!(0), json!(2.5), json!("5"), json!(10_001)] {
        let refused = patch(&app, &key, &path, json!({"rate_limit_per_sec": bad})).await;
        let problem = refused.assert_problem(422, "invalid-webhook-endpoint");
        assert_eq!(problem["errors"][0]["field"], "rate_limit_per_sec", "{bad}");
    }
    let lifted = patch(&app, &key, &path, json!({"rate_limit_per_sec": null})).await;
    assert_eq!(lifted.json()["rate_limit_per_sec"], Value::Null);
    assert_eq!(app.get(&path, &key).await.json()["rate_limit_per_sec"], Value::Null);
}

#[tokio::test]
async fn a_replay_while_one_is_being_written_for_the_endpoint_is_409() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let busy = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let idle = create_endpoint(&app, &key, &receiver.url, json!([])).await;
    let replay = |endpoint: &Value| format!("/v1/webhook-endpoints/{}/replay", endpoint["id"].as_str().unwrap());
    emit(&app, &key, "order.created").await;
    receiver.wait_for(2, WAIT).await;

    // As while another replica writes a replay for it.
    let mark = |until: i64| {
        sqlx::query("UPDATE webhook_endpoints SET replay_until = $1 WHERE id = $2")
            .bind(until)
            .bind(busy["id"].as_str().unwrap().to_owned())
            .execute(app.store().pool())
    };
    mark(unix_now() * 1000 + 60_000).await.unwrap();
    app.post(&replay(&busy), &key, json!({"since": 0}))
        .await
        .assert_problem(409, "replay-in-progress");
    let other = app.post(&replay(&idle), &key, json!({"since": 0})).await;
    assert_eq!(
        other.status,
        202,
        "another endpoint replays meanwhile: {}",
        other.text()
    );

    // A mark whose replica died lapses.
    mark(unix_now() * 1000 - 1).await.unwrap();
    let again = app.post(&replay(&busy), &key, json!({"since": 0})).await;
    assert_eq!(again.status, 202, "{}", again.text());
    assert_eq!(again.json()["replayed"], 1);
    // And one that finished leaves no mark behind.
    let after = app.post(&replay(&busy), &key, json!({"since": 0})).await;
    assert_eq!(after.status, 202, "{}", after.text());
}

#[tokio::test]
async fn a_replay_reads_event_ids_and_types_not_their_data() {
    let app = app_with_schedule("0,1,2").await;
    let key = app.tenant("acme", json!({})).await;
    let receiver = Receiver::ok().await;
    let endpoint = create_endpoint(&app, &key, &receiver.url, json!(["order.*"])).await;
    let event = emit(&app, &key, "order.created").await;
    receiver.wait_for(1, WAIT).await;
    // The event's data now refers to a stored body that cannot even be read as text: a replay
    // that read the data would fail on it.
    let pool = app.store().pool();
    sqlx::query(
        "INSERT INTO webhook_events (id, tenant_id, plugin, delivery_id, event_type, payload, received_at) \
         VALUES ('whe_unreadable', 'acme', 'jira', 'd-unreadable', NULL, $1, 0)",
    )
    .bind(vec![0xffu8, 0xfe, 0x00])
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE events SET webhook_id = 'whe_unreadable' WHERE id = $1")
        .bind(&event)
        .execute(pool)
        .await
        .unwrap();
    let replay = app
        .post(
            &format!("/v1/webhook-endpoints/{}/replay", endpoint["id"].as_str().unwrap()),
            &key,
            json!({"since": 0}),
        )
        .await;
    assert_eq!(replay.status, 202, "{}", replay.text());
    assert_eq!(replay.json()["replayed"], 1);
}
