//! The durable job queue's rows: enqueue, claim with a lease, finish (fenced by the attempt
//! number), reschedule, dead-letter, read and retry.

use sqlx::Row;

use crate::{Backend, Store, StoreError};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for `run_at`.
    Queued,
    /// Claimed by a worker until its lease runs out.
    Running,
    /// Done; `result` holds the outcome.
    Succeeded,
    /// Failed for good without retries (the failure cannot change by trying again).
    Failed,
    /// Failed on every attempt it was allowed: the dead letters.
    Dead,
}

impl JobState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// The state of a stored or requested name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// What claiming one job by id found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobClaim {
    /// Claimed: run it.
    Claimed(Job),
    /// Queued but not due before this time (unix milliseconds).
    NotDue(i64),
    /// Done, gone, or running under another worker's live lease.
    Unavailable,
}

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Our id (`job_…`).
    pub id: String,
    /// Whose job it is.
    pub tenant_id: String,
    /// What runs it (`tool_call`).
    pub kind: String,
    /// What it needs, as JSON text.
    pub payload: String,
    /// Attempts before it is dead.
    pub max_attempts: i64,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Our id.
    pub id: String,
    /// Whose job it is.
    pub tenant_id: String,
    /// What runs it.
    pub kind: String,
    /// What it needs, as JSON text.
    pub payload: String,
    /// Where it is.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// When it may run (next), unix milliseconds.
    pub run_at: i64,
    /// The outcome of a success, as JSON text.
    pub result: Option<String>,
    /// The last failure, as JSON text.
    pub last_error: Option<String>,
    /// Enqueued, unix milliseconds.
    pub created_at: i64,
    /// Last changed, unix milliseconds.
    pub updated_at: i64,
}

const JOB_COLUMNS: &str =
    "id, tenant_id, kind, payload, state, attempts, max_attempts, run_at, result, last_error, created_at, updated_at";

impl Store {
    /// Adds a job, runnable at once.
    pub async fn enqueue_job(&self, job: &NewJob, now_ms: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO jobs (id, tenant_id, kind, payload, state, attempts, max_attempts, run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $6, $6)",
        )
        .bind(&job.id)
        .bind(&job.tenant_id)
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(job.max_attempts)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` runnable jobs (due, or running with a lease that ran out) for
    /// `lease_ms`, counting the attempt. On PostgreSQL, rows another replica is claiming are
    /// skipped, so two replicas never claim one job.
    pub async fn claim_jobs(&self, now_ms: i64, lease_ms: i64, limit: i64) -> Result<Vec<Job>, StoreError> {
        self.claim_due_jobs(now_ms, now_ms, lease_ms, limit).await
    }

    /// Like [`Store::claim_jobs`], for jobs due by `due_by` only (a worker fed by a message queue
    /// polls for what the queue failed to deliver, later than the queue would have).
    pub async fn claim_due_jobs(
        &self,
        now_ms: i64,
        due_by: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let _turn = self.write_turn().await;
        let skip_locked = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2 \
             WHERE id IN (SELECT id FROM jobs \
               WHERE (state = 'queued' AND run_at <= $4) OR (state = 'running' AND lease_until < $2) \
               ORDER BY run_at LIMIT $3 {skip_locked}) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .bind(limit)
        .bind(due_by)
        .fetch_all(&self.relaxed)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Claims one job by id, as a message announcing it arrives: claimed, not due until a time,
    /// or not claimable (done, or running under a live lease).
    pub async fn claim_job(&self, id: &str, now_ms: i64, lease_ms: i64) -> Result<JobClaim, StoreError> {
        let _turn = self.write_turn().await;
        let claimed = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2 \
             WHERE id = $3 AND ((state = 'queued' AND run_at <= $2) OR (state = 'running' AND lease_until < $2)) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = claimed {
            return Ok(JobClaim::Claimed(job_from_row(&row)?));
        }
        let row = sqlx::query("SELECT state, run_at FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) if row.get::<String, _>(0) == "queued" => JobClaim::NotDue(row.get(1)),
            _ => JobClaim::Unavailable,
        })
    }

    /// Records the end of attempt `attempt`: `state` with `result` or `error`, or (queued) a retry
    /// at `run_at`. Returns false when that attempt no longer holds the job (its lease ran out and
    /// another attempt claimed it), so a late finish changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_job(
        &self,
        id: &str,
        attempt: i64,
        state: JobState,
        result: Option<&str>,
        error: Option<&str>,
        run_at: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let updated = sqlx::query(
            "UPDATE jobs SET state = $1, result = $2, last_error = $3, run_at = $4, lease_until = NULL, updated_at = $5 \
             WHERE id = $6 AND state = 'running' AND attempts = $7",
        )
        .bind(state.as_str())
        .bind(result)
        .bind(error)
        .bind(run_at)
        .bind(now_ms)
        .bind(id)
        .bind(attempt)
        .execute(&self.relaxed)
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// A tenant's job.
    pub async fn get_job(&self, tenant_id: &str, id: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// A tenant's jobs, optionally in one state, newest first, before `before` (an id).
    pub async fn list_jobs(
        &self,
        tenant_id: &str,
        state: Option<JobState>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND ($2 IS NULL OR state = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        ))
        .bind(tenant_id)
        .bind(state.map(JobState::as_str))
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Queues a dead or failed job again with a fresh set of attempts. Returns false for a job
    /// that is not dead or failed (or not the tenant's).
    pub async fn retry_job(&self, tenant_id: &str, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1, lease_until = NULL \
             WHERE tenant_id = $2 AND id = $3 AND state IN ('dead', 'failed')",
        )
        .bind(now_ms)
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() > 0)
    }
}

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<Job, StoreError> {
    let state: String = row.get(4);
    Ok(Job {
        id: row.get(0),
        tenant_id: row.get(1),
        kind: row.get(2),
        payload: row.get(3),
        state: JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("job state {state:?}")))?,
        attempts: row.get(5),
        max_attempts: row.get(6),
        run_at: row.get(7),
        result: row.get(8),
        last_error: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
    })
}
