//! The tenant's background jobs.

use crate::params::PathId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use integrations_service::JobId;
use integrations_service::{JobView, DEFAULT_JOB_PAGE};
use serde::{Deserialize, Serialize};

use crate::auth::CurrentTenant;
use crate::params::ApiQuery;
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
    PathId(id): PathId<JobId>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.service.job(&tenant, &id).await?))
}

async fn retry(
    CurrentTenant(tenant): CurrentTenant,
    State(state): State<AppState>,
    PathId(id): PathId<JobId>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.service.retry_job(&tenant, &id).await?)))
}
