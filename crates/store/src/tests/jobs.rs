//! The jobs table: retention in bounded batches, and the claim's per-tenant share.

use super::*;
use crate::{JobState, NewJob};

fn job(id: &str, tenant: &str) -> NewJob {
    NewJob {
        id: id.into(),
        tenant_id: tenant.into(),
        kind: "echo".into(),
        payload: "{}".into(),
        max_attempts: 3,
    }
}

/// Enqueues `id` at `at` (unix milliseconds), claims it and ends it in `state` at `at`.
async fn ended(store: &Store, id: &str, state: JobState, at: i64) {
    assert!(store.enqueue_job(&job(id, "acme"), at, u32::MAX).await.unwrap());
    let claimed = store.claim_jobs(at, 1000, 1, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(store.finish_job(id, 1, state, Some("{}"), None, at, at).await.unwrap());
}

on_both_backends!(
    retention_removes_ended_jobs_in_bounded_batches,
    retention_removes_ended_jobs_in_bounded_batches_on_postgres,
    "store_job_retention",
    job_retention
);

async fn job_retention(store: &Store) {
    crate::testing::add_tenant(store, "acme").await.unwrap();
    for (n, state) in [
        JobState::Succeeded,
        JobState::Failed,
        JobState::Dead,
        JobState::Succeeded,
        JobState::Dead,
    ]
    .into_iter()
    .enumerate()
    {
        ended(store, &format!("job_old_{n}"), state, 1_000 + n as i64).await;
    }
    ended(store, "job_recent", JobState::Succeeded, 50_000).await;
    // Old, but still to run (or running): never removed.
    assert!(store
        .enqueue_job(&job("job_queued", "acme"), 2_000, u32::MAX)
        .await
        .unwrap());
    assert!(store
        .enqueue_job(&job("job_running", "acme"), 3_000, u32::MAX)
        .await
        .unwrap());
    let running = store.claim_jobs(3_000, 1_000_000, 10, 10).await.unwrap();
    assert_eq!(running.len(), 2);
    assert!(store
        .finish_job("job_queued", 1, JobState::Queued, None, None, 1_000_000, 3_000)
        .await
        .unwrap());

    let mut batches = Vec::new();
    loop {
        let deleted = store.expire_jobs(10_000, 2).await.unwrap();
        batches.push(deleted);
        if deleted < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 2, 1]);
    let mut left: Vec<String> = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(store.pool())
        .await
        .unwrap();
    left.sort();
    assert_eq!(left, ["job_queued", "job_recent", "job_running"]);
}
