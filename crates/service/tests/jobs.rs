//! Tool calls queued as jobs, driven on the service directly (no worker runs them here): checked
//! as a synchronous call is, bounded by the tenant's `max_queued_jobs`, and visible to their own
//! tenant only.

mod support;

use std::sync::atomic::Ordering;

use integrations_service::{JobId, JobView, LimitsUpdate, ServiceError, TenantUpdate, TOOL_CALL_JOB};
use serde_json::{json, Value};
use support::{acme, config, create_tenant, crm, find_things, get_thing, globex, harness, Harness};

fn request(job: &JobView) -> Value {
    serde_json::from_str(job.request.get()).expect("the stored request is JSON")
}

fn job_id(job: &JobView) -> JobId {
    JobId::parse(&job.id).expect("a job id")
}

#[tokio::test]
async fn a_queued_tool_call_is_checked_and_stored_not_run() {
    let Harness {
        service,
        seen,
        vendor,
        _dir,
        ..
    } = harness(200).await;
    let hidden = service
        .call_tool_async(&acme(), &get_thing(), json!({}))
        .await
        .expect_err("not installed");
    assert!(matches!(hidden, ServiceError::ToolNotFound(_)), "{hidden:?}");
    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    let invalid = service
        .call_tool_async(&acme(), &find_things(), json!({"limit": 3}))
        .await
        .expect_err("query is required");
    assert!(matches!(invalid, ServiceError::InvalidArguments(_)), "{invalid:?}");
    assert!(service.jobs(&acme(), None, None, 10).await.expect("jobs").is_empty());

    let job = service
        .call_tool_async(&acme(), &find_things(), json!({"query": "printers"}))
        .await
        .expect("queued");
    assert_eq!(job.kind, TOOL_CALL_JOB);
    assert_eq!(job.state, "queued");
    assert_eq!(job.attempts, 0);
    assert!(job.next_attempt_at.is_some());
    assert_eq!(
        request(&job),
        json!({"tool": "crm_find_things", "arguments": {"query": "printers"}})
    );
    let read = service.job(&acme(), &job_id(&job)).await.expect("the job");
    assert_eq!((read.id.as_str(), read.state), (job.id.as_str(), "queued"));
    let listed: Vec<String> = service
        .jobs(&acme(), Some("queued"), None, 10)
        .await
        .expect("jobs")
        .into_iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(listed, [job.id.as_str()]);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0, "queued, not run");
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_tenant_queues_no_more_jobs_than_its_limit() {
    let Harness { service, _dir, .. } = harness(200).await;
    create_tenant(&service, &globex()).await;
    let two = TenantUpdate {
        limits: LimitsUpdate {
            max_queued_jobs: Some(Some(2)),
            ..LimitsUpdate::default()
        },
        ..TenantUpdate::default()
    };
    service.update_tenant(&acme(), two).await.expect("limit");
    for tenant in [acme(), globex()] {
        service
            .install(&tenant, &crm(), config("https://one.example"))
            .await
            .expect("install");
    }
    for _ in 0..2 {
        service
            .call_tool_async(&acme(), &get_thing(), json!({}))
            .await
            .expect("within the limit");
    }
    let over = service
        .call_tool_async(&acme(), &get_thing(), json!({}))
        .await
        .expect_err("over the limit");
    assert!(matches!(over, ServiceError::TooManyQueuedJobs { limit: 2 }), "{over:?}");
    assert_eq!(service.jobs(&acme(), None, None, 10).await.expect("jobs").len(), 2);
    service
        .call_tool_async(&globex(), &get_thing(), json!({}))
        .await
        .expect("globex's limit is its own");
}

#[tokio::test]
async fn another_tenants_job_is_not_found() {
    let Harness { service, _dir, .. } = harness(200).await;
    create_tenant(&service, &globex()).await;
    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    let job = service
        .call_tool_async(&acme(), &get_thing(), json!({}))
        .await
        .expect("queued");
    let id = job_id(&job);
    let read = service.job(&globex(), &id).await.expect_err("acme's job");
    assert!(matches!(read, ServiceError::JobNotFound), "{read:?}");
    let retried = service.retry_job(&globex(), &id).await.expect_err("acme's job");
    assert!(matches!(retried, ServiceError::JobNotFound), "{retried:?}");
    assert!(service.jobs(&globex(), None, None, 10).await.expect("jobs").is_empty());
    let unknown = JobId::parse(&format!("job_{}", "0".repeat(32))).expect("a job id");
    let missing = service.job(&acme(), &unknown).await.expect_err("no such job");
    assert!(matches!(missing, ServiceError::JobNotFound), "{missing:?}");
    assert_eq!(service.job(&acme(), &id).await.expect("acme's own").state, "queued");
}
