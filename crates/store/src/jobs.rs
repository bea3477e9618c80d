//! The durable job queue's rows: enqueue (within the tenant's limit), claim with a lease (fairly
//! across tenants), finish (fenced by the attempt number), reschedule, dead-letter, read in pages
//! bounded by bytes, retry, and expire.

use sqlx::Row;

use crate::multi_row::in_lists;
use crate::webhook_delivery_pages::within_budget;
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

/// What an announcement of a job finds: whether a claim may take the job now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobClaim {
    /// Runnable now: queued and due, or running under a lease that ran out.
    Due,
    /// Queued but not due before this time (unix milliseconds).
    NotDue(i64),
    /// Done, gone, or running under a live lease.
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

/// The columns `job_from_row` reads.
macro_rules! job_columns {
    () => {
        "id, tenant_id, kind, payload, state, attempts, max_attempts, run_at, result, last_error, created_at, updated_at"
    };
}

/// Key of the PostgreSQL advisory lock that orders claims across replicas, so that each claim
/// counts the running jobs every earlier claim committed.
const JOB_CLAIM_LOCK: i64 = 0x696e_7465_6a6f_6273;

impl Store {
    /// Adds a job, runnable at once, unless its tenant already has `max_queued` jobs queued or
    /// running: then nothing is added and false comes back.
    ///
    /// One statement counts and inserts. SQLite runs one writer at a time, so the count is exact;
    /// PostgreSQL's concurrent enqueues of one tenant do not see each other's uncommitted rows, so
    /// they may pass the limit by at most the number of them in flight at once.
    pub async fn enqueue_job(&self, job: &NewJob, now_ms: i64, max_queued: u32) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let inserted = sqlx::query(sql::ENQUEUE)
            .bind(&job.id)
            .bind(&job.tenant_id)
            .bind(&job.kind)
            .bind(&job.payload)
            .bind(job.max_attempts)
            .bind(now_ms)
            .bind(i64::from(max_queued))
            .execute(&self.pool)
            .await?;
        Ok(inserted.rows_affected() > 0)
    }

    /// Claims up to `limit` runnable jobs (due, or running with a lease that ran out) for
    /// `lease_ms`, counting the attempt, fairly across tenants: round robin, and never more than
    /// `per_tenant` of one tenant's jobs running at once (across every replica).
    ///
    /// On PostgreSQL, claims take a transaction-scoped advisory lock first, so replicas claim one
    /// after another and each counts what the others claimed; the claim rechecks each row's state
    /// as it updates it, so a job finished meanwhile is not claimed again.
    pub async fn claim_jobs(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        per_tenant: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let query = sqlx::query(sql::CLAIM)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(limit)
            .bind(per_tenant.max(1));
        let rows = match self.backend {
            Backend::Sqlite => {
                let _turn = self.write_turn().await;
                query.fetch_all(&self.relaxed).await?
            }
            Backend::Postgres => {
                let mut tx = self.relaxed.begin().await?;
                sqlx::query(sql::postgres::LOCK_CLAIMS)
                    .bind(JOB_CLAIM_LOCK)
                    .execute(&mut *tx)
                    .await?;
                let rows = query.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows
            }
        };
        rows.iter().map(job_from_row).collect()
    }

    /// Whether a claim may take job `id` now, as a message announcing it arrives.
    pub async fn job_claim(&self, id: &str, now_ms: i64) -> Result<JobClaim, StoreError> {
        let row = sqlx::query(sql::CLAIM_STATE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(JobClaim::Unavailable);
        };
        let state: String = row.get(0);
        let run_at: i64 = row.get(1);
        let lease_until: Option<i64> = row.get(2);
        Ok(match state.as_str() {
            "queued" if run_at > now_ms => JobClaim::NotDue(run_at),
            "queued" => JobClaim::Due,
            "running" if lease_until.is_some_and(|until| until < now_ms) => JobClaim::Due,
            _ => JobClaim::Unavailable,
        })
    }

    /// Records the end of attempt `attempt`: `state` with `result` or `error`, or (queued) a retry
    /// at `run_at`. Returns false when that attempt no longer holds the job (its lease ran out and
    /// another attempt claimed it), so a late finish changes nothing. A job that ends (succeeded,
    /// failed, dead) keeps `run_at`, its end, for retention.
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
        let updated = sqlx::query(sql::FINISH)
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
        let row = sqlx::query(sql::JOB)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// A tenant's jobs, optionally in one state, newest first, before `before` (an id): at most
    /// `limit` of them, and no more than `max_bytes` of requests, results and errors (the first
    /// job is returned even when it alone exceeds it).
    ///
    /// Read in two steps so that no more than the budget is ever loaded: the ids and sizes of the
    /// candidates first (sizes from the row headers), then the jobs that fit.
    pub async fn list_jobs(
        &self,
        tenant_id: &str,
        state: Option<JobState>,
        before: Option<&str>,
        limit: i64,
        max_bytes: u64,
    ) -> Result<Vec<Job>, StoreError> {
        let candidates = sqlx::query(sql::SIZES)
            .bind(tenant_id)
            .bind(state.map(JobState::as_str))
            .bind(before)
            .bind(limit.max(1))
            .fetch_all(&self.pool)
            .await?;
        let sizes = candidates.iter().map(|row| {
            let bytes: i64 = row.get(1);
            (row.get::<String, _>(0), u64::try_from(bytes).unwrap_or_default())
        });
        let ids = within_budget(sizes, max_bytes);
        self.jobs_by_id(tenant_id, &ids).await
    }

    /// The tenant's jobs with these ids, newest first.
    async fn jobs_by_id(&self, tenant_id: &str, ids: &[String]) -> Result<Vec<Job>, StoreError> {
        let mut rows = Vec::with_capacity(ids.len());
        for list in in_lists(ids) {
            let mut statement = sqlx::query(sql::BY_ID.get(list.size)).bind(tenant_id);
            for id in list.ids() {
                statement = statement.bind(id);
            }
            rows.extend(statement.fetch_all(&self.pool).await?);
        }
        rows.iter().map(job_from_row).collect()
    }

    /// Queues a dead or failed job again with a fresh set of attempts, unless the tenant already
    /// has `max_queued` jobs queued or running. Returns false for a job that is not dead or failed
    /// (or not the tenant's), and for a tenant at its limit.
    pub async fn retry_job(&self, tenant_id: &str, id: &str, now_ms: i64, max_queued: u32) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let updated = sqlx::query(sql::RETRY)
            .bind(now_ms)
            .bind(tenant_id)
            .bind(id)
            .bind(i64::from(max_queued))
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Deletes up to `batch` jobs that ended (succeeded, failed or dead) before `before` (unix
    /// milliseconds), oldest first; returns how many it deleted. Callers repeat it while it
    /// deletes a whole batch, so that no sweep holds the database for long.
    pub async fn expire_jobs(&self, before: i64, batch: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let deleted = sqlx::query(sql::EXPIRE)
            .bind(before)
            .bind(batch.max(1))
            .execute(&self.relaxed)
            .await?;
        Ok(deleted.rows_affected())
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

/// This resource's statements.
pub(crate) mod sql {
    use crate::multi_row::placeholders;

    statements! {
        /// Claims up to `$3` jobs at `$2` (unix milliseconds), due by `$2`, at most `$4`
        /// running per tenant: round robin across tenants. A job's turn is its place among its tenant's
        /// claimable jobs plus the jobs the tenant already has running under live leases; jobs are
        /// claimed lowest turn first, oldest first within a turn, and never past a turn of `$4`.
        ///
        /// The tenants with queued jobs are found by skipping through `jobs_waiting` (one probe per
        /// tenant), and at most `$4` jobs per tenant are ranked, so a tenant's long backlog costs a claim
        /// no more than a short one. Jobs whose lease ran out (their worker died) are claimable too.
        CLAIM = concat!("\
    WITH RECURSIVE waiting(tenant_id) AS ( \
    SELECT MIN(tenant_id) FROM jobs WHERE state = 'queued' \
    UNION ALL \
    SELECT (SELECT MIN(j.tenant_id) FROM jobs j WHERE j.state = 'queued' AND j.tenant_id > w.tenant_id) \
    FROM waiting w WHERE w.tenant_id IS NOT NULL \
    ), candidates AS ( \
    SELECT j.id, j.tenant_id, j.run_at FROM waiting w JOIN jobs j ON j.id IN ( \
        SELECT q.id FROM jobs q WHERE q.state = 'queued' AND q.tenant_id = w.tenant_id AND q.run_at <= $2 \
        ORDER BY q.run_at, q.id LIMIT $4) \
    UNION ALL \
    SELECT id, tenant_id, run_at FROM jobs WHERE state = 'running' AND lease_until < $2 \
    ), ranked AS ( \
    SELECT c.id, c.run_at, ROW_NUMBER() OVER (PARTITION BY c.tenant_id ORDER BY c.run_at, c.id) \
        + (SELECT COUNT(*) FROM jobs r WHERE r.state = 'running' AND r.tenant_id = c.tenant_id \
           AND r.lease_until >= $2) AS turn \
    FROM candidates c \
    ) \
    UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2 \
    WHERE id IN (SELECT id FROM ranked WHERE turn <= $4 ORDER BY turn, run_at, id LIMIT $3) \
    AND ((state = 'queued' AND run_at <= $2) OR (state = 'running' AND lease_until < $2)) \
    RETURNING ", job_columns!());
        /// A tenant's job.
        JOB = concat!("SELECT ", job_columns!(), " FROM jobs WHERE tenant_id = $1 AND id = $2");
        /// The ids of a tenant's jobs, newest first, with the bytes each shows the tenant (its
        /// request, result and last error); in state `$2` and before `$3` when they are given
        /// (text: cast so that PostgreSQL knows their type when it prepares the statement).
        SIZES = "SELECT id, CAST(octet_length(payload) + COALESCE(octet_length(result), 0) \
             + COALESCE(octet_length(last_error), 0) AS BIGINT) FROM jobs \
             WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR state = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR id < $3) ORDER BY id DESC LIMIT $4";
        /// Up to `$2` jobs that ended (succeeded, failed or dead: the states a job leaves only
        /// when the tenant retries it) before `$1`, oldest first.
        EXPIRE = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'dead') \
             AND run_at < $1 ORDER BY run_at LIMIT $2)";
        /// A queued job, unless its tenant has `$7` queued or running.
        ENQUEUE = "INSERT INTO jobs (id, tenant_id, kind, payload, state, attempts, max_attempts, run_at, created_at, updated_at) \
             SELECT $1, $2, $3, $4, 'queued', 0, $5, $6, $6, $6 \
             WHERE (SELECT COUNT(*) FROM jobs WHERE tenant_id = $2 AND state IN ('queued', 'running')) < $7";
        /// Whether a job may be claimed.
        CLAIM_STATE = "SELECT state, run_at, lease_until FROM jobs WHERE id = $1";
        /// Ends attempt `$7` of a running job.
        FINISH = "UPDATE jobs SET state = $1, result = $2, last_error = $3, run_at = $4, lease_until = NULL, updated_at = $5 \
             WHERE id = $6 AND state = 'running' AND attempts = $7";
        /// Queues a dead or failed job again, unless its tenant has `$4` queued or running.
        RETRY = "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1, lease_until = NULL \
             WHERE tenant_id = $2 AND id = $3 AND state IN ('dead', 'failed') \
             AND (SELECT COUNT(*) FROM jobs WHERE tenant_id = $2 AND state IN ('queued', 'running')) < $4";
        @sized:
        /// A tenant's jobs with these ids, newest first.
        BY_ID = |ids| format!(
            concat!("SELECT ", job_columns!(), " FROM jobs WHERE tenant_id = $1 AND id IN ({}) ORDER BY id DESC"),
            placeholders(2, ids)
        );
    }

    /// PostgreSQL's lock.
    pub(crate) mod postgres {
        statements! {
            /// The lock that orders claims across replicas.
            LOCK_CLAIMS = "SELECT pg_advisory_xact_lock($1)";
        }
    }
}
