//! The SQLite log is copied into the database file behind the webhook writer, not by it.

use super::*;

/// The database file's length in bytes.
fn file_length(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn committed_webhooks_reach_the_database_file_without_the_writer_checkpointing() {
    let (dir, store) = sqlite_store().await;
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let database = dir.path().join("t.db");
    let before = file_length(&database);
    // A hundred commits of 8 KiB each: some six hundred pages of log, well short of the length
    // at which the writer's own checkpoint would copy them.
    let payload = vec![b'x'; 8 * 1024];
    for n in 0..100 {
        let event = NewWebhookDelivery {
            payload: payload.clone(),
            ..webhook(n, "acme", &format!("d{n}"))
        };
        store.insert_webhook_delivery(&event).await.unwrap();
    }
    let copied = 96 * payload.len() as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while file_length(&database) < before + copied {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file grew from {before} to only {} bytes",
            file_length(&database)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
