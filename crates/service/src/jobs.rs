//! Tool calls as background jobs (within the tenant's limit of queued jobs), and the tenant's
//! view of its jobs: pages bounded by count and bytes, with each job's request, result and error
//! written out as stored, never parsed into a tree; and the handler the worker runs them with.

use integrations_core::{JobId, TenantId, ToolName};
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use integrations_jobs::{JobHandler, JobOutcome, JobQueue};
use integrations_problems::Problem;
use integrations_store::{Job, JobState};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::{Service, ServiceError};

/// The job kind of an asynchronous tool call.
pub const TOOL_CALL_JOB: &str = "tool_call";

/// Jobs per page unless the caller asks for another number (at most 500).
pub const DEFAULT_JOB_PAGE: i64 = 50;

/// Most bytes of requests, results and errors on one page of jobs (a page holds one job at
/// least, however large).
pub const MAX_JOB_PAGE_BYTES: u64 = 4 * 1024 * 1024;

/// A job as the tenant sees it.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// `tool_call`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `dead`.
    pub state: &'static str,
    /// Attempts started.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// What it runs (for a tool call: `{tool, arguments}`).
    pub request: Box<RawValue>,
    /// The outcome of a success.
    pub result: Option<Box<RawValue>>,
    /// The last failure, as the problem document the synchronous call would have answered.
    pub error: Option<Box<RawValue>>,
    /// When a queued job runs next (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// Stored JSON text as it is written out: checked, not parsed into a tree; `null` if it is not
/// JSON.
fn raw_json(text: String) -> Box<RawValue> {
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        Self {
            next_attempt_at: (job.state == JobState::Queued).then(|| integrations_events::rfc3339_millis(job.run_at)),
            request: raw_json(job.payload),
            result: job.result.map(raw_json),
            error: job.last_error.map(raw_json),
            id: job.id,
            kind: job.kind,
            state: job.state.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            created_at: integrations_events::rfc3339_millis(job.created_at),
            updated_at: integrations_events::rfc3339_millis(job.updated_at),
        }
    }
}

impl Service {
    /// Checks a tool call as the synchronous path does (tool available, arguments valid) and
    /// queues it; the job runs it through [`Service::call_tool`].
    pub async fn call_tool_async(
        &self,
        tenant_id: &TenantId,
        tool: &ToolName,
        arguments: Value,
    ) -> Result<JobView, ServiceError> {
        self.checked_call(tenant_id, tool, &arguments).await?;
        let limits = self.effective_limits(tenant_id).await?;
        let request = json!({"tool": tool, "arguments": arguments});
        let id = self
            .jobs
            .enqueue_within(tenant_id, TOOL_CALL_JOB, &request, limits.max_queued_jobs)
            .await?;
        tracing::info!(tenant = %tenant_id, %tool, job = %id, "tool call queued");
        self.job(tenant_id, &JobId::from_trusted(&id)).await
    }

    /// One of the tenant's jobs; another tenant's is not found.
    pub async fn job(&self, tenant_id: &TenantId, id: &JobId) -> Result<JobView, ServiceError> {
        self.existing_gate(tenant_id).await?;
        self.store
            .get_job(tenant_id, id)
            .await?
            .map(JobView::from)
            .ok_or(ServiceError::JobNotFound)
    }

    /// The tenant's jobs, newest first, optionally in one state, before the job `before`: at most
    /// `limit` (up to 500) and [`MAX_JOB_PAGE_BYTES`] of them.
    pub async fn jobs(
        &self,
        tenant_id: &TenantId,
        state: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<JobView>, ServiceError> {
        self.existing_gate(tenant_id).await?;
        let state = match state {
            None => None,
            Some(name) => Some(JobState::parse(name).ok_or_else(|| {
                ServiceError::InvalidRequest("state must be queued, running, succeeded, failed or dead".into())
            })?),
        };
        let jobs = self
            .store
            .list_jobs(tenant_id, state, before, limit.clamp(1, 500), MAX_JOB_PAGE_BYTES)
            .await?;
        Ok(jobs.into_iter().map(JobView::from).collect())
    }

    /// Queues a dead or failed job again; 409 for a job in another state, 429 for a tenant with
    /// as many jobs queued or running as it may have.
    pub async fn retry_job(&self, tenant_id: &TenantId, id: &JobId) -> Result<JobView, ServiceError> {
        self.job(tenant_id, id).await?;
        let limit = self.effective_limits(tenant_id).await?.max_queued_jobs;
        if !self.jobs.retry(tenant_id, id, limit).await? {
            let job = self.job(tenant_id, id).await?;
            return Err(match job.state {
                "dead" | "failed" => ServiceError::TooManyQueuedJobs { limit },
                state => ServiceError::JobNotRetryable(state),
            });
        }
        self.job(tenant_id, id).await
    }

    /// The queue, for the host to start its worker with [`job_handlers`].
    pub fn job_queue(&self) -> &Arc<JobQueue> {
        &self.jobs
    }
}

/// Whether another attempt may end differently: the vendor or the network failed, not the
/// request.
pub fn retryable(error: &ServiceError) -> bool {
    match error {
        ServiceError::Upstream { status, .. } => *status == 429 || *status >= 500,
        ServiceError::UpstreamUnavailable(_)
        | ServiceError::ToolDeadlineExceeded(_)
        | ServiceError::Store(_)
        | ServiceError::Internal(_) => true,
        _ => false,
    }
}

/// The job handlers the host's worker runs, by job kind.
pub fn job_handlers(service: &Arc<Service>) -> HashMap<String, Arc<dyn JobHandler>> {
    let tool_calls: Arc<dyn JobHandler> = Arc::new(ToolCallJobs {
        // Weak: the service keeps the worker, and the worker must not keep the service alive.
        service: Arc::downgrade(service),
    });
    HashMap::from([(TOOL_CALL_JOB.to_owned(), tool_calls)])
}

/// Runs a queued tool call through the same path as a synchronous call; a failure is kept as the
/// problem document that call would have answered.
struct ToolCallJobs {
    service: Weak<Service>,
}

#[async_trait::async_trait]
impl JobHandler for ToolCallJobs {
    async fn run(&self, job: &Job) -> JobOutcome {
        let Some(service) = self.service.upgrade() else {
            return JobOutcome::Retry(json!({"detail": "the service is shutting down"}));
        };
        let request: Value = serde_json::from_str(&job.payload).unwrap_or(Value::Null);
        let Some(tool) = request.get("tool").and_then(Value::as_str) else {
            return JobOutcome::Fail(json!({"detail": "the job names no tool"}));
        };
        let arguments = request.get("arguments").cloned().unwrap_or_else(|| json!({}));
        match service
            .call_tool_in_background(&TenantId::from_trusted(&job.tenant_id), tool, arguments)
            .await
        {
            Ok(result) => JobOutcome::Succeeded(result),
            Err(error) => {
                let problem = Problem::from(&error).document();
                if retryable(&error) {
                    JobOutcome::Retry(problem)
                } else {
                    JobOutcome::Fail(problem)
                }
            }
        }
    }
}
