//! Outbound deliveries: written by the log's fan-out consumer in the transaction that advances its
//! cursor, claimed by dispatchers with a lease (a conditional UPDATE, so two replicas never attempt
//! the same delivery at once), and every attempt recorded with the delivery's next state.

use sqlx::Row;

use crate::event_log::{event_from_row, event_from_row_at, EVENT_COLUMNS};
use crate::webhook_endpoints::{endpoint_from_row, ENDPOINT_COLUMNS};
use crate::{now_unix, Store, StoreError, StoredEvent, WebhookEndpoint};

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

/// A delivery to create: one event to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// The endpoint's tenant (the event's).
    pub tenant_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event's position in the log.
    pub event_seq: i64,
    /// When the first attempt is due, unix milliseconds.
    pub next_attempt_at: i64,
}

/// A claimed delivery with what sending it needs.
#[derive(Clone, Debug)]
pub struct DeliveryJob {
    /// The delivery.
    pub delivery_id: i64,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Its endpoint as it is now.
    pub endpoint: WebhookEndpoint,
    /// The event.
    pub event: StoredEvent,
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
    /// Advances consumer `consumer` from `from` to `to` and writes `deliveries`, in one
    /// transaction. Returns false, writing nothing, when the cursor is no longer at `from`
    /// (another replica got there first).
    pub async fn record_fanout(
        &self,
        consumer: &str,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.relaxed.begin().await?;
        sqlx::query("INSERT INTO event_cursors (name, seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING")
            .bind(consumer)
            .execute(&mut *tx)
            .await?;
        let moved = sqlx::query("UPDATE event_cursors SET seq = $1 WHERE name = $2 AND seq = $3")
            .bind(to)
            .bind(consumer)
            .bind(from)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Writes deliveries outside the fan-out (replays).
    pub async fn insert_deliveries(&self, deliveries: &[NewDelivery]) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Leases up to `limit` due deliveries of enabled endpoints until `lease_until` (unix ms) under
    /// `token`: at most `per_endpoint` of any one endpoint, and of an endpoint listed in `busy`
    /// (attempts already in flight) at most the number given with it. Returns the deliveries this
    /// call leased, with their endpoints; one leased elsewhere is not among them.
    pub async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_until: i64,
        token: &str,
        per_endpoint: i64,
        limit: i64,
        busy: &[(String, i64)],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        // Ranking per endpoint keeps one endpoint's backlog from filling the whole claim.
        let capacity = if busy.is_empty() {
            "$2".to_owned()
        } else {
            let cases: String = (0..busy.len())
                .map(|i| format!("WHEN ${} THEN ${} ", 4 + 2 * i, 5 + 2 * i))
                .collect();
            format!("CASE endpoint_id {cases}ELSE $2 END")
        };
        let select = format!(
            "SELECT id FROM (SELECT d.id, d.endpoint_id, d.next_attempt_at, \
               ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS endpoint_rank \
               FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
               WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 \
               AND e.state = 'enabled') ranked \
             WHERE endpoint_rank <= {capacity} ORDER BY next_attempt_at, id LIMIT $3"
        );
        let _turn = self.write_turn().await;
        let mut query = sqlx::query(&select).bind(now_ms).bind(per_endpoint).bind(limit);
        for (endpoint, room) in busy {
            query = query.bind(endpoint).bind(*room);
        }
        let candidates: Vec<i64> = query.fetch_all(&self.relaxed).await?.iter().map(|r| r.get(0)).collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // The lease is taken only where it is still free: of two replicas, one wins each row.
        let update = format!(
            "UPDATE webhook_deliveries SET lease_until = $1, lease_token = $2 \
             WHERE status = 'pending' AND lease_until <= $3 AND id IN ({}) RETURNING id, endpoint_id",
            placeholders(4, candidates.len())
        );
        let mut query = sqlx::query(&update).bind(lease_until).bind(token).bind(now_ms);
        for id in &candidates {
            query = query.bind(id);
        }
        let claimed = query.fetch_all(&self.relaxed).await?;
        Ok(claimed.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The delivery with its endpoint and event; `None` when any of them is gone.
    pub async fn delivery_job(&self, delivery_id: i64) -> Result<Option<DeliveryJob>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT tenant_id, endpoint_id, event_seq, attempts FROM webhook_deliveries WHERE id = $1")
                .bind(delivery_id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let (tenant, endpoint_id, seq, attempts): (String, String, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let endpoint = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(&tenant)
        .bind(&endpoint_id)
        .fetch_optional(&self.pool)
        .await?;
        let event = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1"))
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        let (Some(endpoint), Some(event)) = (endpoint, event) else {
            return Ok(None);
        };
        Ok(Some(DeliveryJob {
            delivery_id,
            attempts,
            endpoint: endpoint_from_row(&endpoint)?,
            event: event_from_row(&event)?,
        }))
    }

    /// The deliveries with their endpoints and events, in two queries however many there are;
    /// one whose endpoint or event is gone is left out.
    pub async fn delivery_jobs(&self, delivery_ids: &[i64]) -> Result<Vec<DeliveryJob>, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let qualified: String = EVENT_COLUMNS
            .split(',')
            .map(|column| format!("e.{}", column.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let select = format!(
            "SELECT d.id, d.attempts, d.endpoint_id, {qualified} FROM webhook_deliveries d \
             JOIN events e ON e.seq = d.event_seq WHERE d.id IN ({})",
            placeholders(1, delivery_ids.len())
        );
        let mut query = sqlx::query(&select);
        for id in delivery_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut endpoint_ids: Vec<String> = rows.iter().map(|r| r.get::<String, _>(2)).collect();
        endpoint_ids.sort();
        endpoint_ids.dedup();
        if endpoint_ids.is_empty() {
            return Ok(Vec::new());
        }
        let select = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id IN ({})",
            placeholders(1, endpoint_ids.len())
        );
        let mut query = sqlx::query(&select);
        for id in &endpoint_ids {
            query = query.bind(id);
        }
        let mut endpoints = std::collections::HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let endpoint = endpoint_from_row(&row)?;
            endpoints.insert(endpoint.id.clone(), endpoint);
        }
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let endpoint_id: String = row.get(2);
            let Some(endpoint) = endpoints.get(&endpoint_id) else {
                continue;
            };
            jobs.push(DeliveryJob {
                delivery_id: row.get(0),
                attempts: row.get(1),
                endpoint: endpoint.clone(),
                event: event_from_row_at(row, 3)?,
            });
        }
        Ok(jobs)
    }

    /// Frees every delivery lease: for a SQLite database at start-up, where the only process that
    /// could hold a lease is this one's previous run (one process per database file), so its
    /// deliveries are attempted again at once instead of after their leases run out.
    pub async fn release_all_delivery_leases(&self) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let released = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = 0, lease_token = NULL WHERE status = 'pending' AND lease_until > 0",
        )
        .execute(&self.relaxed)
        .await?;
        Ok(released.rows_affected())
    }

    /// Gives a leased delivery back untried (its endpoint was disabled meanwhile).
    pub async fn release_delivery(&self, delivery_id: i64, token: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = 0, lease_token = NULL WHERE id = $1 AND lease_token = $2",
        )
        .bind(delivery_id)
        .bind(token)
        .execute(&self.relaxed)
        .await?;
        Ok(())
    }

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
        let _turn = self.write_turn().await;
        let mut tx = self.relaxed.begin().await?;
        let mut disabled = Vec::with_capacity(attempts.len());
        for recorded in attempts {
            disabled.push(
                record_one(
                    &mut tx,
                    &recorded.token,
                    &recorded.attempt,
                    recorded.next,
                    &recorded.health,
                )
                .await?,
            );
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
        let rows = sqlx::query(
            "SELECT a.id, a.delivery_id, a.endpoint_id, a.event_id, a.attempt, a.attempted_at, a.status_code, \
             a.error, a.latency_ms, a.response_body, a.succeeded, ev.type, d.status \
             FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id \
             JOIN events ev ON ev.seq = d.event_seq \
             WHERE d.tenant_id = $1 AND a.endpoint_id = $2 AND a.id < $3 ORDER BY a.id DESC LIMIT $4",
        )
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

    /// The tenant's events that occurred at or after `since_ms`, after `after` in the log: what a
    /// replay sends again.
    pub async fn tenant_events_since(
        &self,
        tenant_id: &str,
        since_ms: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND seq > $3 \
             ORDER BY seq LIMIT $4"
        ))
        .bind(tenant_id)
        .bind(since_ms)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}

/// Disables an enabled endpoint, when its failure streak began at or before `failing_before` if
/// given; returns whether it did.
async fn disable(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    endpoint_id: &str,
    reason: &str,
    failing_before: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let disabled = sqlx::query(
        "UPDATE webhook_endpoints SET state = 'disabled', disabled_reason = $1, updated_at = $2 \
         WHERE id = $3 AND state = 'enabled' AND ($4 = 0 OR failing_since <= $5)",
    )
    .bind(reason)
    .bind(now)
    .bind(endpoint_id)
    .bind(i64::from(failing_before.is_some()))
    .bind(failing_before.unwrap_or(0))
    .execute(&mut **tx)
    .await?;
    Ok(disabled.rows_affected() > 0)
}

async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    let now = now_unix();
    for delivery in deliveries {
        sqlx::query(
            "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_seq, status, attempts, next_attempt_at, \
             lease_until, lease_token, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, 0, NULL, $5)",
        )
        .bind(&delivery.tenant_id)
        .bind(&delivery.endpoint_id)
        .bind(delivery.event_seq)
        .bind(delivery.next_attempt_at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// `$first, $first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One attempt, inside the caller's transaction.
async fn record_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    token: &str,
    attempt: &AttemptRecord,
    next: DeliveryNext,
    health: &EndpointHealth,
) -> Result<bool, StoreError> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, attempted_at, status_code, \
             error, latency_ms, response_body, succeeded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
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
    let (status, next_at) = match next {
        DeliveryNext::Succeeded => ("succeeded", attempt.attempted_at),
        DeliveryNext::RetryAt(at) => ("pending", at),
        DeliveryNext::Failed => ("failed", attempt.attempted_at),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_until = 0, \
             lease_token = NULL WHERE id = $4 AND lease_token = $5",
    )
    .bind(status)
    .bind(attempt.attempt)
    .bind(next_at)
    .bind(attempt.delivery_id)
    .bind(token)
    .execute(&mut **tx)
    .await?;
    let now = now_unix();
    let disabled = match health {
        EndpointHealth::Healthy => {
            sqlx::query(
                "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(&attempt.endpoint_id)
            .execute(&mut **tx)
            .await?;
            false
        }
        EndpointHealth::Failing { disable_after_secs } => {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL")
                .bind(now)
                .bind(&attempt.endpoint_id)
                .execute(&mut **tx)
                .await?;
            let reason = format!("failing continuously for more than {disable_after_secs} seconds");
            disable(tx, &attempt.endpoint_id, &reason, Some(now - disable_after_secs), now).await?
        }
        EndpointHealth::Gone(reason) => disable(tx, &attempt.endpoint_id, reason, None, now).await?,
    };
    Ok(disabled)
}
