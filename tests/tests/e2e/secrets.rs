//! Secrets at rest, in responses and in logs; master-key rotation.

use integrations_secrets::MasterKey;
use serde_json::json;
use sqlx::Row;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{jira_basic, jira_server, TestApp};

const TOKEN: &str = "plaintext-api-token-4f1c";
const HOOK: &str = "plaintext-hook-secret-9b2e";

async fn mock_get_issue(jira: &MockServer, token: &str) {
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/ABC-1"))
        .and(header("authorization", jira_basic(token).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "key": "ABC-1"})))
        .mount(jira)
        .await;
}

async fn secret_rows(app: &TestApp) -> Vec<(String, String, Vec<u8>)> {
    sqlx::query("SELECT tenant_id, field, ciphertext FROM secrets ORDER BY tenant_id, field")
        .fetch_all(app.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn database_holds_only_ciphertext_and_api_never_returns_secrets() {
    let app = TestApp::start().await;
    let jira = jira_server().await;
    let key = app.tenant("acme", json!({})).await;
    let installed = app.install_jira(&key, &jira.uri(), TOKEN, Some(HOOK)).await;
    assert_eq!(installed.status, 201);
    let rows = secret_rows(&app).await;
    assert_eq!(rows.len(), 2);
    for (_, _, ciphertext) in &rows {
        for plaintext in [TOKEN, HOOK] {
            assert!(!ciphertext.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()));
        }
    }
    let config: String = sqlx::query("SELECT config FROM installations")
        .fetch_one(app.store().pool())
        .await
        .unwrap()
        .get(0);
    assert!(!config.contains(TOKEN) && !config.contains(HOOK));

    for response in [
        installed,
        app.get("/v1/plugins/jira", &key).await,
        app.get("/v1/plugins", &key).await,
        app.put(
            "/v1/plugins/jira/configure",
            &key,
            json!({"host": jira.uri(), "email": "bot@example.com"}),
        )
        .await,
        app.post("/v1/plugins/jira/disable", &key, json!({})).await,
        app.post("/v1/plugins/jira/enable", &key, json!({})).await,
        app.get("/v1/tools", &key).await,
    ] {
        let text = response.text();
        assert!(!text.contains(TOKEN) && !text.contains(HOOK), "secret leaked: {text}");
    }
}

#[tokio::test]
async fn ciphertext_moved_to_another_tenant_or_field_does_not_decrypt() {
    let app = TestApp::start().await;
    let jira = jira_server().await;
    let acme = app.tenant("acme", json!({})).await;
    let evil = app.tenant("evil", json!({})).await;
    app.install_jira(&acme, &jira.uri(), TOKEN, Some(HOOK)).await;
    app.install_jira(&evil, &jira.uri(), "evil-token", Some("evil-hook"))
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&jira)
        .await;

    let rows = secret_rows(&app).await;
    let acme_token = rows
        .iter()
        .find(|(t, f, _)| t == "acme" && f == "api_token")
        .unwrap()
        .2
        .clone();
    let acme_hook = rows
        .iter()
        .find(|(t, f, _)| t == "acme" && f == "webhook_secret")
        .unwrap()
        .2
        .clone();
    let overwrite = |tenant: &'static str, field: &'static str, ciphertext: Vec<u8>| {
        let pool = app.store().pool().clone();
        async move {
            sqlx::query("UPDATE secrets SET ciphertext = $1 WHERE tenant_id = $2 AND field = $3")
                .bind(ciphertext)
                .bind(tenant)
                .bind(field)
                .execute(&pool)
                .await
                .unwrap();
        }
    };

    overwrite("evil", "api_token", acme_token).await;
    app.post("/v1/tools/jira_get_issue", &evil, json!({"issue_key": "ABC-1"}))
        .await
        .assert_problem(500, "internal");
    overwrite("acme", "api_token", acme_hook).await;
    app.post("/v1/tools/jira_get_issue", &acme, json!({"issue_key": "ABC-1"}))
        .await
        .assert_problem(500, "internal");
    // Past the two installs' credential checks, no request was made with any credential at all.
    let paths: Vec<String> = jira
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths, ["/rest/api/3/myself", "/rest/api/3/myself"]);
}

#[tokio::test]
async fn master_key_rotation_rewraps_data_keys_without_touching_secrets() {
    let app = TestApp::start().await;
    let jira = jira_server().await;
    mock_get_issue(&jira, TOKEN).await;
    let acme = app.tenant("acme", json!({})).await;
    let beta = app.tenant("beta", json!({})).await;
    app.install_jira(&acme, &jira.uri(), TOKEN, None).await;
    app.install_jira(&beta, &jira.uri(), TOKEN, None).await;
    let secrets_before = secret_rows(&app).await;

    let (new_key, new_encoded) = MasterKey::generate().unwrap();
    let (keyring, _) = integrations::load_keyring(&app.config).unwrap().unwrap();
    let report = integrations_service::rotate_master_key(app.store(), &keyring, &new_key)
        .await
        .unwrap();
    assert_eq!((report.rewrapped, report.skipped), (2, 0));
    assert_eq!(secret_rows(&app).await, secrets_before, "secrets are not re-encrypted");
    for tenant in ["acme", "beta"] {
        assert_eq!(
            app.store().get_data_key(tenant).await.unwrap().unwrap().master_key_id,
            new_key.id()
        );
    }
    // Running it again has nothing left to do.
    let again = integrations_service::rotate_master_key(app.store(), &keyring, &new_key)
        .await
        .unwrap();
    assert_eq!(again.rewrapped, 0);

    let call = |app: TestApp, key: String| async move {
        app.post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
            .await
    };
    let old = app.master_key.clone();
    let with_new = app
        .restart_with(|c| c.master_key = Some(integrations_core::Secret::new(&new_encoded)))
        .await;
    assert_eq!(call(with_new, acme.clone()).await.status, 200);
    let with_both = app
        .restart_with(|c| {
            c.master_key = Some(integrations_core::Secret::new(&new_encoded));
            c.previous_master_keys = vec![integrations_core::Secret::new(&old)];
        })
        .await;
    assert_eq!(call(with_both, beta.clone()).await.status, 200);
    let with_old_only = app.restart_with(|_| {}).await;
    call(with_old_only, acme).await.assert_problem(500, "internal");
}

#[tokio::test]
async fn deleting_a_tenant_destroys_its_data_key_and_secrets() {
    let app = TestApp::start().await;
    let jira = jira_server().await;
    let key = app.tenant("acme", json!({})).await;
    assert_eq!(app.install_jira(&key, &jira.uri(), TOKEN, Some(HOOK)).await.status, 201);
    assert!(app.store().get_data_key("acme").await.unwrap().is_some());
    assert_eq!(
        app.delete("/v1/admin/tenants/acme", crate::harness::ADMIN_TOKEN)
            .await
            .status,
        204
    );
    assert!(app.store().get_data_key("acme").await.unwrap().is_none());
    assert!(secret_rows(&app).await.is_empty());
}

#[tokio::test]
async fn running_server_follows_a_file_mode_rotation_without_restart() {
    // The key file is the embedded default's, so this runs on SQLite whatever TEST_DATABASE_URL says.
    let app = TestApp::start_with(|c| {
        c.master_key = None;
        c.database_url = None;
    })
    .await;
    let jira = jira_server().await;
    mock_get_issue(&jira, TOKEN).await;
    let key = app.tenant("acme", json!({})).await;
    app.install_jira(&key, &jira.uri(), TOKEN, None).await;
    let key_file = app.config.data_dir.join("master.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    // What `integrations keys rotate` does in file mode, while this server keeps running.
    let (new_key, new_encoded) = MasterKey::generate().unwrap();
    let (keyring, _) = integrations::load_keyring(&app.config).unwrap().unwrap();
    integrations::replace_key_file(&key_file, &new_encoded).unwrap();
    let report = integrations_service::rotate_master_key(app.store(), &keyring, &new_key)
        .await
        .unwrap();
    assert_eq!(report.rewrapped, 1);
    let previous = std::fs::read_to_string(app.config.data_dir.join("master.key.previous")).unwrap();
    assert_eq!(previous.trim(), old_key.trim(), "the replaced key is kept");

    let call = app
        .post("/v1/tools/jira_get_issue", &key, json!({"issue_key": "ABC-1"}))
        .await;
    assert_eq!(call.status, 200, "{}", call.text());
    // Tenants created after the rotation work too, and so does a restart.
    let beta = app.tenant("beta", json!({})).await;
    assert_eq!(app.install_jira(&beta, &jira.uri(), TOKEN, None).await.status, 201);
    let restarted = app.restart_with(|_| {}).await;
    assert_eq!(
        restarted
            .post("/v1/tools/jira_get_issue", &beta, json!({"issue_key": "ABC-1"}))
            .await
            .status,
        200
    );
}
