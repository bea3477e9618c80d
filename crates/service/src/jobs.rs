//! Tool calls as background jobs, and the tenant's view of its jobs.

use integrations_jobs::JobQueue;
use integrations_store::{Job, JobState};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{Service, ServiceError};

/// The job kind of an asynchronous tool call.
pub const TOOL_CALL_JOB: &str = "tool_call";

/// Jobs per page unless the caller asks for another number (at most 500).
pub const DEFAULT_JOB_PAGE: i64 = 50;

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
    pub request: Value,
    /// The outcome of a success.
    pub result: Option<Value>,
    /// The last failure, as the problem document the synchronous call would have answered.
    pub error: Option<Value>,
    /// When a queued job runs next (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            next_attempt_at: (job.state == JobState::Queued).then(|| integrations_events::rfc3339_millis(job.run_at)),
            request: serde_json::from_str(&job.payload).unwrap_or(Value::Null),
            result: parse(job.result),
            error: parse(job.last_error),
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
        tenant_id: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<JobView, ServiceError> {
        self.checked_call(tenant_id, tool, &arguments).await?;
        let request = json!({"tool": tool, "arguments": arguments});
        let id = self.jobs.enqueue(tenant_id, TOOL_CALL_JOB, &request).await?;
        tracing::info!(tenant = tenant_id, tool, job = %id, "tool call queued");
        self.job(tenant_id, &id).await
    }

    /// One of the tenant's jobs; another tenant's is not found.
    pub async fn job(&self, tenant_id: &str, id: &str) -> Result<JobView, ServiceError> {
        self.existing_gate(tenant_id).await?;
        self.store
            .get_job(tenant_id, id)
            .await?
            .map(JobView::from)
            .ok_or(ServiceError::JobNotFound)
    }

    /// The tenant's jobs, newest first, optionally in one state, before the job `before`.
    pub async fn jobs(
        &self,
        tenant_id: &str,
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
            .list_jobs(tenant_id, state, before, limit.clamp(1, 500))
            .await?;
        Ok(jobs.into_iter().map(JobView::from).collect())
    }

    /// Queues a dead or failed job again; 409 for a job in another state.
    pub async fn retry_job(&self, tenant_id: &str, id: &str) -> Result<JobView, ServiceError> {
        let job = self.job(tenant_id, id).await?;
        if !self.jobs.retry(tenant_id, id).await? {
            return Err(ServiceError::JobNotRetryable(job.state));
        }
        self.job(tenant_id, id).await
    }

    /// The queue, for the host to start its worker with the handlers of each job kind.
    pub fn job_queue(&self) -> &std::sync::Arc<JobQueue> {
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
