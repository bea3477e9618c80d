//! Attempts: each recorded with its delivery's next state and what it says about the endpoint's
//! health, in one transaction (on SQLite in the writer thread's next one); and listed for the
//! tenant.

use sqlx::Row;

use crate::sqlite_writer::cached;
use crate::{now_unix, Backend, Store, StoreError};

/// An attempt to record, with the lease it was made under and what follows it.
#[derive(Clone, Debug)]
pub struct RecordedAttempt {
    /// The lease token the attempt was made under.
    pub token: String,
    /// The attempt.
    pub attempt: AttemptRecord,
    /// What becomes of the delivery.
    pub next: DeliveryNext,
    /// What the attempt says about the endpoint.
    pub health: EndpointHealth,
}

/// One attempt, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery_id: i64,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The event id (the `webhook-id` sent).
    pub event_id: String,
    /// 1 for the first attempt of the delivery.
    pub attempt: i64,
    /// Unix milliseconds.
    pub attempted_at: i64,
    /// The receiver's status, when it answered.
    pub status_code: Option<i64>,
    /// Why no answer came (timeout, refused, connection error).
    pub error: Option<String>,
    /// Time to the answer or the error.
    pub latency_ms: i64,
    /// The start of the answer's body.
    pub response_body: String,
    /// Whether the receiver took it (2xx).
    pub succeeded: bool,
}

/// What becomes of a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryNext {
    /// Delivered.
    Succeeded,
    /// Attempt again at this unix millisecond.
    RetryAt(i64),
    /// No more attempts (dead).
    Failed,
}

/// What an attempt says about its endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointHealth {
    /// It took the delivery: its failure streak ends.
    Healthy,
    /// It failed; once it has been failing since more than `disable_after_secs` ago it is disabled.
    Failing {
        /// How long a failure streak may last.
        disable_after_secs: i64,
    },
    /// It asked never to be called again (410 Gone): disabled with this reason.
    Gone(String),
}

/// A recorded attempt as the tenant lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAttempt {
    /// Position in the listing.
    pub id: i64,
    /// The attempt's fields.
    pub record: AttemptRecord,
    /// The event's type.
    pub event_type: String,
    /// The delivery's state now: `pending`, `succeeded` or `failed`.
    pub delivery_status: String,
}

impl Store {
    /// Records an attempt, moves its delivery on (only while `token` still holds the lease) and
    /// updates the endpoint's health, in one transaction. Returns whether this disabled the endpoint.
    pub async fn record_attempt(
        &self,
        token: &str,
        attempt: &AttemptRecord,
        next: DeliveryNext,
        health: &EndpointHealth,
    ) -> Result<bool, StoreError> {
        let recorded = self
            .record_attempts(&[RecordedAttempt {
                token: token.to_owned(),
                attempt: attempt.clone(),
                next,
                health: health.clone(),
            }])
            .await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    /// Records many attempts in one transaction (one fsync for all); returns, for each, whether
    /// it disabled its endpoint.
    pub async fn record_attempts(&self, attempts: &[RecordedAttempt]) -> Result<Vec<bool>, StoreError> {
        if self.backend == Backend::Sqlite {
            let attempts = attempts.to_vec();
            return self
                .on_writer(move |connection| {
                    attempts
                        .iter()
                        .map(|recorded| record_on_writer(connection, recorded))
                        .collect()
                })
                .await;
        }
        let mut tx = self.relaxed.begin().await?;
        let mut disabled = Vec::with_capacity(attempts.len());
        for recorded in attempts {
            disabled.push(record_in(&mut tx, recorded).await?);
        }
        tx.commit().await?;
        Ok(disabled)
    }

    /// The endpoint's attempts, newest first, before attempt `before` when given.
    pub async fn webhook_attempts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredAttempt>, StoreError> {
        let rows = sqlx::query(sql::ATTEMPTS)
            .bind(tenant_id)
            .bind(endpoint_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredAttempt {
                id: r.get(0),
                record: AttemptRecord {
                    delivery_id: r.get(1),
                    endpoint_id: r.get(2),
                    event_id: r.get(3),
                    attempt: r.get(4),
                    attempted_at: r.get(5),
                    status_code: r.get(6),
                    error: r.get(7),
                    latency_ms: r.get(8),
                    response_body: r.get(9),
                    succeeded: r.get::<i64, _>(10) != 0,
                },
                event_type: r.get(11),
                delivery_status: r.get(12),
            })
            .collect())
    }
}

/// The delivery's state and next due time after an attempt.
fn next_state(attempt: &AttemptRecord, next: DeliveryNext) -> (&'static str, i64) {
    match next {
        DeliveryNext::Succeeded => ("succeeded", attempt.attempted_at),
        DeliveryNext::RetryAt(at) => ("pending", at),
        DeliveryNext::Failed => ("failed", attempt.attempted_at),
    }
}

/// Whether, and why, an attempt at `now` disables its endpoint: the reason, and the failure
/// streak's latest start that does (`None`: whenever it began).
fn disabling(health: &EndpointHealth, now: i64) -> Option<(std::borrow::Cow<'_, str>, Option<i64>)> {
    match health {
        EndpointHealth::Healthy => None,
        EndpointHealth::Failing { disable_after_secs } => Some((
            format!("failing continuously for more than {disable_after_secs} seconds").into(),
            Some(now - disable_after_secs),
        )),
        EndpointHealth::Gone(reason) => Some((reason.as_str().into(), None)),
    }
}

/// One attempt, inside the caller's transaction (PostgreSQL).
async fn record_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, recorded: &RecordedAttempt) -> Result<bool, StoreError> {
    let attempt = &recorded.attempt;
    sqlx::query(sql::INSERT_ATTEMPT)
        .bind(attempt.delivery_id)
        .bind(&attempt.endpoint_id)
        .bind(&attempt.event_id)
        .bind(attempt.attempt)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code)
        .bind(&attempt.error)
        .bind(attempt.latency_ms)
        .bind(&attempt.response_body)
        .bind(i64::from(attempt.succeeded))
        .execute(&mut **tx)
        .await?;
    let (status, next_at) = next_state(attempt, recorded.next);
    sqlx::query(sql::MOVE_DELIVERY)
        .bind(status)
        .bind(attempt.attempt)
        .bind(next_at)
        .bind(attempt.delivery_id)
        .bind(&recorded.token)
        .execute(&mut **tx)
        .await?;
    let now = now_unix();
    match &recorded.health {
        EndpointHealth::Healthy => sqlx::query(sql::HEALTHY).bind(&attempt.endpoint_id),
        EndpointHealth::Failing { .. } => sqlx::query(sql::FAILING).bind(now).bind(&attempt.endpoint_id),
        EndpointHealth::Gone(_) => return disable_in(tx, recorded, now).await,
    }
    .execute(&mut **tx)
    .await?;
    disable_in(tx, recorded, now).await
}

async fn disable_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    recorded: &RecordedAttempt,
    now: i64,
) -> Result<bool, StoreError> {
    let Some((reason, failing_before)) = disabling(&recorded.health, now) else {
        return Ok(false);
    };
    let disabled = sqlx::query(sql::DISABLE)
        .bind(reason.as_ref())
        .bind(now)
        .bind(&recorded.attempt.endpoint_id)
        .bind(i64::from(failing_before.is_some()))
        .bind(failing_before.unwrap_or(0))
        .execute(&mut **tx)
        .await?;
    Ok(disabled.rows_affected() > 0)
}

/// One attempt on the SQLite writer thread's connection, inside its open transaction.
fn record_on_writer(connection: &rusqlite::Connection, recorded: &RecordedAttempt) -> Result<bool, StoreError> {
    let attempt = &recorded.attempt;
    cached(connection, sql::INSERT_ATTEMPT)?.execute(rusqlite::params![
        attempt.delivery_id,
        attempt.endpoint_id,
        attempt.event_id,
        attempt.attempt,
        attempt.attempted_at,
        attempt.status_code,
        attempt.error,
        attempt.latency_ms,
        attempt.response_body,
        i64::from(attempt.succeeded)
    ])?;
    let (status, next_at) = next_state(attempt, recorded.next);
    cached(connection, sql::MOVE_DELIVERY)?.execute(rusqlite::params![
        status,
        attempt.attempt,
        next_at,
        attempt.delivery_id,
        recorded.token
    ])?;
    let now = now_unix();
    match &recorded.health {
        EndpointHealth::Healthy => cached(connection, sql::HEALTHY)?.execute(rusqlite::params![attempt.endpoint_id])?,
        EndpointHealth::Failing { .. } => {
            cached(connection, sql::FAILING)?.execute(rusqlite::params![now, attempt.endpoint_id])?
        }
        EndpointHealth::Gone(_) => 0,
    };
    let Some((reason, failing_before)) = disabling(&recorded.health, now) else {
        return Ok(false);
    };
    let disabled = cached(connection, sql::DISABLE)?.execute(rusqlite::params![
        reason,
        now,
        attempt.endpoint_id,
        i64::from(failing_before.is_some()),
        failing_before.unwrap_or(0)
    ])?;
    Ok(disabled > 0)
}

/// Recording and listing attempts.
pub(crate) mod sql {
    statements! {
        /// An attempt.
        INSERT_ATTEMPT = "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, attempted_at, \
             status_code, error, latency_ms, response_body, succeeded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        /// Moves the delivery on, only while the attempt's lease token still holds it.
        MOVE_DELIVERY = "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
             lease_until = 0, lease_token = NULL WHERE id = $4 AND lease_token = $5";
        /// Ends an endpoint's failure streak.
        HEALTHY = "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL";
        /// Starts an endpoint's failure streak at `$1`, unless it is failing already.
        FAILING = "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL";
        /// Disables an enabled endpoint; with `$4` = 1 only when its failure streak began at or
        /// before `$5`.
        DISABLE = "UPDATE webhook_endpoints SET state = 'disabled', disabled_reason = $1, updated_at = $2 \
             WHERE id = $3 AND state = 'enabled' AND ($4 = 0 OR failing_since <= $5)";
        /// An endpoint's attempts before `$3`, newest first.
        ATTEMPTS = "SELECT a.id, a.delivery_id, a.endpoint_id, a.event_id, a.attempt, a.attempted_at, a.status_code, \
             a.error, a.latency_ms, a.response_body, a.succeeded, ev.type, d.status \
             FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id \
             JOIN events ev ON ev.seq = d.event_seq \
             WHERE d.tenant_id = $1 AND a.endpoint_id = $2 AND a.id < $3 ORDER BY a.id DESC LIMIT $4";
    }
}
