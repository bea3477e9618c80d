//! Two server processes on one PostgreSQL database: a change made through one replica takes
//! effect on the other within a second (cache invalidation over LISTEN/NOTIFY).
//!
//! Needs PostgreSQL: runs when `TEST_DATABASE_URL` names a server (CI sets it), else is skipped.

mod support;

use std::time::{Duration, Instant};

use integrations_secrets::MasterKey;
use integrations_store::Store;
use serde_json::json;
use support::{request, ScratchDatabase, Server, ADMIN};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

async fn start_replica(database_url: &str, master_key: &str, data_dir: &std::path::Path) -> Server {
    let env = [
        ("DATABASE_URL", database_url.to_owned()),
        ("INTEGRATIONS_MASTER_KEY", master_key.to_owned()),
    ];
    Server::start(&env, data_dir).await
}

/// Polls `check` on the other replica until it holds; fails if that takes more than a second.
async fn within_one_second<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let changed_at = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(1),
            "{what}: the other replica still serves the old state after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn changes_through_one_replica_take_effect_on_the_other_within_a_second() {
    let Some(scratch) = ScratchDatabase::create("replicas").await else {
        return;
    };
    let database_url = scratch.url.clone();
    let (_, master_key) = MasterKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let one = start_replica(&database_url, &master_key, dir.path()).await;
    let two = start_replica(&database_url, &master_key, dir.path()).await;
    let on = |replica: &Server, path: &str| replica.url(path);
    use reqwest::Method;

    let (status, created) = request(
        Method::POST,
        on(&one, "/v1/admin/tenants"),
        ADMIN,
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(status, 201);
    let key = created["api_key"].as_str().unwrap().to_owned();
    let (_, second) = request(Method::POST, on(&one, "/v1/admin/tenants/acme/keys"), ADMIN, None).await;
    let second_key = second["api_key"].as_str().unwrap().to_owned();

    // Replica two caches the keys and the tenant's (empty) gate.
    let tools = |key: String| {
        let url = on(&two, "/v1/tools");
        async move { request(Method::GET, url, &key, None).await }
    };
    assert_eq!(tools(key.clone()).await, (200, json!({"tools": []})));
    assert_eq!(tools(second_key.clone()).await.0, 200);

    // A Jira that passes install's credential check; the test makes no other call to it.
    let jira = wiremock::MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .and(header("authorization", "Basic Ym90QGV4YW1wbGUuY29tOnQ="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accountId": "1"})))
        .expect(1)
        .mount(&jira)
        .await;
    let (status, installed) = request(
        Method::POST,
        on(&one, "/v1/plugins/jira/install"),
        &key,
        Some(json!({"host": jira.uri(), "email": "bot@example.com", "api_token": "t"})),
    )
    .await;
    assert_eq!(status, 201, "{installed}");
    within_one_second("install", || async {
        tools(key.clone()).await.1["tools"].as_array().map_or(0, Vec::len) == 3
    })
    .await;

    // Replica two answers from its cache: a row changed behind the service's back (no notice)
    // goes unseen there...
    let database = Store::connect(&database_url).await.expect("test database");
    sqlx::query("UPDATE installations SET state = 'disabled' WHERE tenant_id = 'acme'")
        .execute(database.pool())
        .await
        .expect("disable behind the service's back");
    for _ in 0..5 {
        let listed = tools(key.clone()).await.1["tools"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, 3, "replica two read the database instead of its cache");
    }
    database.close().await;
    // ...until a change made through a replica sends its notice with the commit.
    assert_eq!(
        request(Method::POST, on(&one, "/v1/plugins/jira/disable"), &key, None)
            .await
            .0,
        200
    );
    within_one_second("disable", || async { tools(key.clone()).await.1["tools"] == json!([]) }).await;

    let revoke = on(
        &one,
        &format!("/v1/admin/tenants/acme/keys/{}", second["key_id"].as_str().unwrap()),
    );
    assert_eq!(request(Method::DELETE, revoke, ADMIN, None).await.0, 204);
    within_one_second("key revocation", || async { tools(second_key.clone()).await.0 == 401 }).await;

    assert_eq!(
        request(Method::DELETE, on(&one, "/v1/admin/tenants/acme"), ADMIN, None)
            .await
            .0,
        204
    );
    within_one_second("tenant deletion", || async { tools(key.clone()).await.0 == 401 }).await;

    drop((one, two));
    scratch.drop_database().await;
}
