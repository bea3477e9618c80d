//! Two server processes on one PostgreSQL database: a change made through one replica takes
//! effect on the other within a second (cache invalidation over LISTEN/NOTIFY).
//!
//! Needs PostgreSQL: runs when `TEST_DATABASE_URL` names a server (CI sets it), else is skipped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integrations_secrets::MasterKey;
use integrations_store::Store;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

const ADMIN: &str = "replica-admin-token";

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

async fn start_replica(database_url: &str, master_key: &str, data_dir: &std::path::Path) -> Replica {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_integrations"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("INTEGRATIONS_MASTER_KEY", master_key)
        .env("INTEGRATIONS_ADMIN_TOKEN", ADMIN)
        .env("INTEGRATIONS_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32")
        .env("INTEGRATIONS_BIND", format!("127.0.0.1:{port}"))
        .env("INTEGRATIONS_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("binary starts");
    let replica = Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{}/healthz", replica.base)).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "replica did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica
}

async fn request(method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut builder = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await.expect("replica answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
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
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let admin = Store::connect(&admin_url).await.expect("PostgreSQL");
    let name = format!("replicas_{}", std::process::id());
    let _ = sqlx_exec(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    sqlx_exec(&admin, &format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("database URL with a path");
    let database_url = format!("{base}/{name}");
    let (_, master_key) = MasterKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let one = start_replica(&database_url, &master_key, dir.path()).await;
    let two = start_replica(&database_url, &master_key, dir.path()).await;
    let on = |replica: &Replica, path: &str| format!("{}{path}", replica.base);
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
    let _ = sqlx_exec(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

async fn sqlx_exec(store: &Store, statement: &str) -> Result<(), String> {
    sqlx::query(statement)
        .execute(store.pool())
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}
