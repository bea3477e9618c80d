use serde_json::{json, Map};

use super::*;
use crate::testing::tenant_records as tenant;

/// Runs `check(&Store)` on a PostgreSQL database of its own (named after `label`), dropped
/// afterwards; skips when `TEST_DATABASE_URL` names no server.
macro_rules! on_postgres {
    ($label:literal, $check:path) => {{
        let Some(database) = ScratchPostgres::create($label).await else {
            return;
        };
        $check(&database.store).await;
        database.drop().await;
    }};
}

/// Two tests of `check(&Store)`: `$sqlite` on a SQLite file of its own, `$postgres` through
/// `on_postgres!` (database `$label`); with `multi_thread`, each on two worker threads.
macro_rules! on_both_backends {
    (multi_thread, $sqlite:ident, $postgres:ident, $label:literal, $check:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let (_dir, store) = sqlite_store().await;
            $check(&store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            on_postgres!($label, $check);
        }
    };
    ($sqlite:ident, $postgres:ident, $label:literal, $check:path) => {
        #[tokio::test]
        async fn $sqlite() {
            let (_dir, store) = sqlite_store().await;
            $check(&store).await;
        }

        #[tokio::test]
        async fn $postgres() {
            on_postgres!($label, $check);
        }
    };
}

async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

fn lifecycle(tenant: &str, plugin: &str, event_type: &str) -> NewEvent {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    NewEvent {
        id: format!("evt_lifecycle_{n}"),
        tenant_id: tenant.into(),
        plugin: Some(plugin.into()),
        event_type: event_type.into(),
        occurred_at: 1,
        data: EventData::Json(json!({"plugin": plugin})),
        idempotency_key: None,
    }
}

/// An event `tenant` emits.
fn emitted(id: &str, tenant: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        tenant_id: tenant.into(),
        plugin: None,
        event_type: "order.created".into(),
        occurred_at: 1,
        data: EventData::Json(json!({})),
        idempotency_key: None,
    }
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
    let event = NewWebhookDelivery {
        id: "evt_1".into(),
        tenant_id: "acme".into(),
        plugin: "jira".into(),
        delivery_id: "d1".into(),
        event_type: Some("jira:issue_created".into()),
        payload: b"{}".to_vec(),
        received_at: 5,
    };
    assert_eq!(
        store.insert_webhook_delivery(&event).await.unwrap(),
        ("evt_1".into(), false)
    );
    let again = NewWebhookDelivery {
        id: "evt_2".into(),
        ..event
    };
    assert_eq!(
        store.insert_webhook_delivery(&again).await.unwrap(),
        ("evt_1".into(), true)
    );
    assert_eq!(
        store
            .list_webhook_deliveries("acme", Some("jira"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.list_webhook_deliveries("acme", None, 10).await.unwrap().len(), 1);
    assert_eq!(store.list_webhook_deliveries("other", None, 10).await.unwrap().len(), 0);
}

on_both_backends!(
    deleting_a_tenant_removes_everything_it_owns,
    deleting_a_tenant_removes_everything_it_owns_on_postgres,
    "store_tenant_deletion",
    tenant_deletion
);

async fn tenant_deletion(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let installation = Installation {
        plugin: "jira".into(),
        state: InstallationState::Enabled,
        config: Map::new(),
        reauthorization_reason: None,
    };
    store
        .insert_installation(
            "acme",
            &installation,
            &[SecretRow {
                field: "api_token".into(),
                ciphertext: vec![1],
            }],
            &lifecycle("acme", "jira", "plugin.installed"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.tenant_events_after("acme", 0, 10, u64::MAX).await.unwrap().len(),
        1
    );
    assert!(store.delete_tenant("acme").await.unwrap());
    assert!(store.get_data_key("acme").await.unwrap().is_none());
    assert!(store.get_secrets("acme", "jira").await.unwrap().is_empty());
    assert!(store.get_api_key("key-acme").await.unwrap().is_none());
    assert!(store
        .tenant_events_after("acme", 0, 10, u64::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(!store.delete_tenant("acme").await.unwrap());
}

/// PostgreSQL checks the tenant as it appends (its `events` has no foreign key; SQLite's has).
#[tokio::test]
async fn an_event_is_appended_only_for_an_existing_tenant_on_postgres() {
    on_postgres!("store_emit_tenant", appends_need_their_tenant);
}

/// The store runs on a file, in tests as in production: an in-memory database is refused.
#[tokio::test]
async fn an_in_memory_sqlite_database_is_refused() {
    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite:file:m?mode=memory&cache=shared",
    ] {
        assert!(
            matches!(Store::connect(url).await, Err(StoreError::UnsupportedUrl)),
            "{url}"
        );
    }
}

async fn appends_need_their_tenant(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    crate::event_log::lock_log(store.backend, &mut tx).await.unwrap();
    for (id, tenant, appended) in [("evt_a", "acme", true), ("evt_b", "nobody", false)] {
        assert_eq!(
            crate::event_log::insert_event_of_existing_tenant(&mut tx, &emitted(id, tenant))
                .await
                .unwrap(),
            appended,
            "{tenant}"
        );
    }
    tx.commit().await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(ids, ["evt_a"]);
}

/// PostgreSQL's event log has no foreign keys (their checks cost P2 about a tenth), so tenant
/// deletion and the events a tenant emits order themselves: a deletion waits for an emit in
/// flight and deletes its event, and an emit after the deletion appends nothing.
#[tokio::test]
async fn tenant_deletion_and_emitted_events_exclude_each_other_on_postgres() {
    on_postgres!("store_tenant_emit", deletion_and_emits);
}

async fn deletion_and_emits(store: &Store) {
    let foreign_keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
         AND conrelid IN ('events'::regclass, 'webhook_backlog'::regclass)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(foreign_keys, 0);
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    // An emit in flight: appended, not committed yet.
    let mut in_flight = store.pool().begin().await.unwrap();
    crate::event_log::lock_log(Backend::Postgres, &mut in_flight)
        .await
        .unwrap();
    assert!(
        crate::event_log::insert_event_of_existing_tenant(&mut in_flight, &emitted("evt_in_flight", "acme"))
            .await
            .unwrap()
    );
    let deletion = tokio::spawn({
        let store = store.clone();
        async move { store.delete_tenant("acme").await.unwrap() }
    });
    // Long enough for the deletion to run every statement it could run without waiting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    in_flight.commit().await.unwrap();
    assert!(deletion.await.unwrap());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = 'acme'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "the deletion left the event emitted while it ran");
    assert!(matches!(
        store.append_tenant_event(&emitted("evt_after", "acme")).await,
        Err(StoreError::UnknownTenant)
    ));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = 'acme'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "an event was appended for a deleted tenant");
}

on_both_backends!(
    deleting_a_tenant_takes_its_webhooks_out_of_the_backlog,
    deleting_a_tenant_takes_its_webhooks_out_of_the_backlog_on_postgres,
    "store_tenant_backlog",
    backlog_after_tenant_deletion
);

/// A deleted tenant's webhooks leave the backlog with it (or the pipeline would look for them
/// forever), and only its own.
async fn backlog_after_tenant_deletion(store: &Store) {
    for id in ["acme", "globex"] {
        let (t, k, d) = tenant(id);
        store.create_tenant(&t, &k, &d).await.unwrap();
    }
    store.insert_webhook_delivery(&webhook(1, "acme", "d1")).await.unwrap();
    store
        .insert_webhook_delivery(&webhook(2, "globex", "d1"))
        .await
        .unwrap();
    assert!(store.delete_tenant("acme").await.unwrap());
    let backlog: Vec<String> = sqlx::query_scalar("SELECT id FROM webhook_backlog ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(backlog, ["evt_2"]);
    let pending: Vec<String> = store
        .pending_webhooks(10, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|webhook| webhook.id)
        .collect();
    assert_eq!(pending, ["evt_2"]);
}

fn webhook(id: usize, tenant: &str, delivery: &str) -> NewWebhookDelivery {
    NewWebhookDelivery {
        id: format!("evt_{id}"),
        tenant_id: tenant.into(),
        plugin: "jira".into(),
        delivery_id: delivery.into(),
        event_type: None,
        payload: b"{}".to_vec(),
        received_at: 1,
    }
}

on_both_backends!(
    multi_thread,
    concurrent_webhook_inserts_share_transactions_and_keep_their_own_outcomes,
    concurrent_webhook_inserts_share_transactions_on_postgres,
    "store_group_commit",
    grouped_inserts
);

/// A database of its own on the PostgreSQL server TEST_DATABASE_URL names; `None` (the test skips)
/// when it is not set.
struct ScratchPostgres {
    admin: Store,
    name: String,
    store: Store,
}

impl ScratchPostgres {
    async fn create(label: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return None;
        };
        let admin = Store::connect(&admin_url).await.unwrap();
        let name = format!("{label}_{}", std::process::id());
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(admin.pool())
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let store = Store::connect(&format!("{base}/{name}")).await.unwrap();
        store.migrate().await.unwrap();
        Some(Self { admin, name, store })
    }

    async fn drop(self) {
        self.store.close().await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(self.admin.pool())
            .await
            .unwrap();
    }
}

on_both_backends!(
    refresh_token_rotation_and_reauthorization_compare_the_stored_value,
    refresh_token_rotation_and_reauthorization_compare_the_stored_value_on_postgres,
    "store_token_rotation",
    rotation_and_reauthorization
);

async fn rotation_and_reauthorization(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let installation = Installation {
        plugin: "teams".into(),
        state: InstallationState::Enabled,
        config: Map::new(),
        reauthorization_reason: None,
    };
    let secret = |ciphertext: Vec<u8>| SecretRow {
        field: "refresh_token".into(),
        ciphertext,
    };
    store
        .insert_installation(
            "acme",
            &installation,
            &[secret(vec![1])],
            &lifecycle("acme", "teams", "plugin.installed"),
        )
        .await
        .unwrap();
    // A rotation applies only over the value it was derived from.
    assert!(!store
        .replace_secret_if_unchanged("acme", "teams", "refresh_token", &[9], &[2])
        .await
        .unwrap());
    assert!(store
        .replace_secret_if_unchanged("acme", "teams", "refresh_token", &[1], &[2])
        .await
        .unwrap());
    assert_eq!(store.get_secrets("acme", "teams").await.unwrap(), vec![secret(vec![2])]);
    // So does marking for re-authorisation.
    assert!(!store
        .mark_reauthorization_required("acme", "teams", "refresh_token", &[1], "expired")
        .await
        .unwrap());
    assert!(store
        .mark_reauthorization_required("acme", "teams", "refresh_token", &[2], "expired")
        .await
        .unwrap());
    let marked = store.get_installation("acme", "teams").await.unwrap().unwrap();
    assert_eq!(marked.reauthorization_reason.as_deref(), Some("expired"));
    // A new configuration is the new authorisation.
    assert!(store
        .update_installation_config(
            "acme",
            "teams",
            &Map::new(),
            &[secret(vec![3])],
            &[],
            &lifecycle("acme", "teams", "plugin.configured"),
        )
        .await
        .unwrap());
    let configured = store.get_installation("acme", "teams").await.unwrap().unwrap();
    assert_eq!(configured.reauthorization_reason, None);
}

async fn grouped_inserts(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let before = store.webhook_commits();
    // 200 distinct deliveries, one repeated delivery, and one for a tenant that does not exist.
    let mut events: Vec<NewWebhookDelivery> = (0..200).map(|i| webhook(i, "acme", &format!("d{i}"))).collect();
    events.push(webhook(900, "acme", "d7"));
    events.push(webhook(901, "ghost", "d1"));
    let outcomes = futures_join_all(events.iter().map(|event| store.insert_webhook_delivery(event))).await;

    for (i, outcome) in outcomes.iter().take(200).enumerate().filter(|(i, _)| *i != 7) {
        assert_eq!(outcome.as_ref().unwrap(), &(format!("evt_{i}"), false));
    }
    // d7 was sent twice at once: both name the same stored event, exactly one stored it.
    let (first, repeat) = (outcomes[7].as_ref().unwrap(), outcomes[200].as_ref().unwrap());
    assert_eq!(first.0, repeat.0);
    assert!(first.1 != repeat.1, "exactly one of the two is a duplicate");
    assert!(outcomes[201].is_err(), "an event for a missing tenant fails alone");
    let commits = store.webhook_commits() - before;
    assert!(
        commits < 50,
        "{commits} commits for 202 concurrent inserts: not grouped"
    );
    assert_eq!(
        store.list_webhook_deliveries("acme", None, 500).await.unwrap().len(),
        200
    );
}

/// Polls every future from one task, so all of them queue before the writer drains them.
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[tokio::test]
async fn debug_output_never_shows_the_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/secret-password-path.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    assert!(!format!("{store:?}").contains("secret-password-path"));
}

mod checkpoints;
mod event_bodies;
mod jobs;
mod outbound;
mod statements;
mod tenant_pages;
