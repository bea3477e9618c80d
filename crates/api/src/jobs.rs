//! The tenant's background jobs, and the handler that runs queued tool calls.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use integrations_jobs::{Job, JobHandler, JobOutcome};
use integrations_service::{retryable, JobView, Service, DEFAULT_JOB_PAGE, TOOL_CALL_JOB};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::CurrentTenant;
use crate::params::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list))
        .route("/v1/jobs/{id}", get(details))
        .route("/v1/jobs/{id}/retry", post(retry))
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
    /// The id of the last job of the previous page.
    before: Option<String>,
}

async fn list(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let jobs = state
        .service
        .jobs(
            &tenant,
            query.state.as_deref(),
            query.before.as_deref(),
            query.limit.unwrap_or(DEFAULT_JOB_PAGE),
        )
        .await?;
    let next = jobs.last().map(|job| job.id.clone());
    Ok(Json(JobPage { jobs, next }))
}

/// A page of the tenant's jobs, written out directly (through `json!` each job's stored request,
/// result and error would be parsed again).
#[derive(Serialize)]
struct JobPage {
    jobs: Vec<JobView>,
    /// The last job's id: pass it as `before` for the next page.
    next: Option<String>,
}

async fn details(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.service.job(&tenant, &id).await?))
}

async fn retry(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.service.retry_job(&tenant, &id).await?)))
}

/// The job handlers the host's worker runs, by job kind.
pub fn job_handlers(service: &Arc<Service>) -> HashMap<String, Arc<dyn JobHandler>> {
    let tool_calls: Arc<dyn JobHandler> = Arc::new(ToolCallJobs {
        // Weak: the service keeps the worker, and the worker must not keep the service alive.
        service: Arc::downgrade(service),
    });
    HashMap::from([(TOOL_CALL_JOB.to_owned(), tool_calls)])
}

/// Runs a queued tool call through the same path as `POST /v1/tools/{name}`; a failure is kept as
/// the problem document that call would have answered.
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
        match service.call_tool_in_background(&job.tenant_id, tool, arguments).await {
            Ok(result) => JobOutcome::Succeeded(result),
            Err(error) => {
                let again = retryable(&error);
                let (_, problem) = ApiError::from(error).problem_document();
                if again {
                    JobOutcome::Retry(problem)
                } else {
                    JobOutcome::Fail(problem)
                }
            }
        }
    }
}
