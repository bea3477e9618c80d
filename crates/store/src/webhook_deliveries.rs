//! Outbound deliveries: written by the log's fan-out consumer in the transaction that advances its
//! cursor, claimed by dispatchers with a lease (a conditional UPDATE, so two replicas never attempt
//! the same delivery at once), and every attempt recorded with the delivery's next state.

use sqlx::Row;

use crate::event_log::{event_columns, event_from_row, event_from_row_at, WEBHOOK_OF_EVENT};
use crate::webhook_endpoints::{endpoint_from_row, ENDPOINT_COLUMNS};
use crate::{now_unix, Store, StoreError, StoredEvent, WebhookEndpoint};

/// A constant `$n` statement in SQLite's `?n` form, converted once per call site rather than on
/// every execution (attempt records run these per attempt).
macro_rules! sqlite_form {
    ($sql:expr) => {{
        static FORM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| numbered($sql));
        FORM.as_str()
    }};
}

/// The endpoints with pending deliveries, found by skipping through the pending-by-endpoint index
/// one endpoint at a time (a loose index scan: as many probes as such endpoints, however many
/// deliveries they have).
macro_rules! pending_endpoints_cte {
    () => {
        "pending(endpoint_id) AS ( \
           SELECT MIN(endpoint_id) FROM webhook_deliveries WHERE status = 'pending' \
           UNION ALL \
           SELECT (SELECT MIN(d.endpoint_id) FROM webhook_deliveries d \
                   WHERE d.status = 'pending' AND d.endpoint_id > pending.endpoint_id) \
           FROM pending WHERE pending.endpoint_id IS NOT NULL)"
    };
}

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
    /// Where fan-out consumer `consumer` has got to: `(seq, endpoint)`, every event up to `seq`
    /// fanned out, and event `seq + 1` to its endpoints up to `endpoint` (`""`: none yet).
    pub async fn fanout_cursor(&self, consumer: &str) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, after_endpoint FROM event_cursors WHERE name = $1")
            .bind(consumer)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or((0, String::new()), |r| (r.get(0), r.get(1))))
    }

    /// Advances consumer `consumer` from position `from` to `to` (see [`Store::fanout_cursor`])
    /// and writes `deliveries`, in one transaction. Returns false, writing nothing, when the
    /// cursor is no longer at `from` (another replica got there first).
    pub async fn record_fanout(
        &self,
        consumer: &str,
        from: (i64, &str),
        to: (i64, &str),
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let ((from_seq, from_endpoint), (to_seq, to_endpoint)) = (from, to);
        if self.sqlite_file.is_some() {
            let (consumer, deliveries) = (consumer.to_owned(), deliveries.to_vec());
            let (from_endpoint, to_endpoint) = (from_endpoint.to_owned(), to_endpoint.to_owned());
            let written = self
                .group_commit()
                .run_on_writer(move |connection| {
                    connection.execute(sqlite_form!(INSERT_CURSOR), rusqlite::params![consumer])?;
                    let moved = connection.execute(
                        sqlite_form!(MOVE_CURSOR),
                        rusqlite::params![to_seq, to_endpoint, consumer, from_seq, from_endpoint],
                    )?;
                    if moved == 0 {
                        return Ok(false);
                    }
                    let mut insert = connection.prepare_cached(sqlite_form!(INSERT_DELIVERY))?;
                    let now = now_unix();
                    for delivery in &deliveries {
                        insert.execute(rusqlite::params![
                            delivery.tenant_id,
                            delivery.endpoint_id,
                            delivery.event_seq,
                            delivery.next_attempt_at,
                            now
                        ])?;
                    }
                    Ok(true)
                })
                .await;
            if let Some(written) = written {
                return written;
            }
        }
        let _turn = self.write_turn().await;
        let mut tx = self.relaxed.begin().await?;
        sqlx::query(INSERT_CURSOR).bind(consumer).execute(&mut *tx).await?;
        let moved = sqlx::query(MOVE_CURSOR)
            .bind(to_seq)
            .bind(to_endpoint)
            .bind(consumer)
            .bind(from_seq)
            .bind(from_endpoint)
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
    /// `token`: at most `per_endpoint` of any one endpoint, of an endpoint with a rate limit at
    /// most `paced_secs` seconds' worth of its rate, and of an endpoint listed in `busy`
    /// (attempts already in flight) at most the number given with it. Returns the deliveries this
    /// call leased, with their endpoints; one leased elsewhere is not among them.
    #[allow(clippy::too_many_arguments)]
    pub async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_until: i64,
        token: &str,
        per_endpoint: i64,
        paced_secs: i64,
        limit: i64,
        busy: &[(String, i64)],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let paced_secs = paced_secs.max(1);
        // The lease is taken only where it is still free: of two replicas, one wins each row.
        let update = |candidates: usize| {
            format!(
                "UPDATE webhook_deliveries SET lease_until = $1, lease_token = $2 \
                 WHERE status = 'pending' AND lease_until <= $3 AND id IN ({}) RETURNING id, endpoint_id",
                placeholders(4, candidates)
            )
        };
        if self.sqlite_file.is_some() {
            let token = token.to_owned();
            let rooms: std::collections::HashMap<String, i64> = busy.iter().cloned().collect();
            let claimed = self
                .group_commit()
                .run_on_writer(move |connection| {
                    // Each endpoint with room gives its earliest due deliveries, then the
                    // earliest of all of them are taken.
                    let mut endpoints = connection.prepare_cached(sqlite_form!(PENDING_ENDPOINTS))?;
                    let endpoints = endpoints
                        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?)))?
                        .collect::<Result<Vec<(String, Option<i64>)>, _>>()?;
                    let mut due = connection.prepare_cached(sqlite_form!(DUE_OF_ENDPOINT))?;
                    let mut candidates: Vec<(i64, i64)> = Vec::new();
                    for (endpoint, rate) in &endpoints {
                        let room = rooms.get(endpoint).copied().unwrap_or(per_endpoint);
                        let room = match rate {
                            Some(rate) => room.min(rate.saturating_mul(paced_secs)),
                            None => room,
                        };
                        if room <= 0 {
                            continue;
                        }
                        let rows = due.query_map(rusqlite::params![endpoint, now_ms, room], |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })?;
                        for row in rows {
                            candidates.push(row?);
                        }
                    }
                    if candidates.is_empty() {
                        return Ok(Vec::new());
                    }
                    candidates.sort_unstable();
                    candidates.truncate(limit as usize);
                    // Not cached: one statement per claim size would push the ingest statements
                    // out of the writer's cache.
                    let mut update = connection.prepare(&numbered(&update(candidates.len())))?;
                    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&lease_until, &token, &now_ms];
                    values.extend(candidates.iter().map(|(_, id)| id as &dyn rusqlite::ToSql));
                    let claimed = update
                        .query_map(values.as_slice(), |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<Result<Vec<(i64, String)>, _>>()?;
                    Ok(claimed)
                })
                .await;
            if let Some(claimed) = claimed {
                return claimed;
            }
        }
        // An endpoint listed in `busy` gets the room given with it, any other `per_endpoint`.
        let room = if busy.is_empty() {
            "$2".to_owned()
        } else {
            let cases: String = (0..busy.len())
                .map(|i| format!("WHEN ${} THEN ${} ", 4 + 2 * i, 5 + 2 * i))
                .collect();
            format!("CASE {{endpoint}} {cases}ELSE $2 END")
        };
        let select = match self.backend {
            // The same walk in one statement: each pending endpoint's earliest due deliveries,
            // ranked, as many as its room.
            crate::Backend::Postgres => format!(
                concat!(
                    "WITH RECURSIVE ",
                    pending_endpoints_cte!(),
                    " SELECT c.id FROM pending p \
                     JOIN webhook_endpoints e ON e.id = p.endpoint_id AND e.state = 'enabled' \
                     CROSS JOIN LATERAL (SELECT d.id, d.next_attempt_at, \
                       ROW_NUMBER() OVER (ORDER BY d.next_attempt_at, d.id) AS endpoint_rank \
                       FROM webhook_deliveries d WHERE d.endpoint_id = p.endpoint_id AND d.status = 'pending' \
                       AND d.next_attempt_at <= $1 AND d.lease_until <= $1 \
                       ORDER BY d.next_attempt_at, d.id LIMIT $2) c \
                     WHERE c.endpoint_rank <= {room} \
                     AND (e.rate_limit_per_sec IS NULL OR c.endpoint_rank <= e.rate_limit_per_sec * {paced_secs}) \
                     ORDER BY c.next_attempt_at, c.id LIMIT $3"
                ),
                room = room.replace("{endpoint}", "p.endpoint_id"),
                paced_secs = paced_secs
            ),
            // A SQLite database without a file of its own (in memory) has no writer thread.
            crate::Backend::Sqlite => format!(
                "SELECT id FROM (SELECT d.id, d.endpoint_id, d.next_attempt_at, e.rate_limit_per_sec, \
                   ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS endpoint_rank \
                   FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                   WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 \
                   AND e.state = 'enabled') ranked \
                 WHERE endpoint_rank <= {room} \
                 AND (rate_limit_per_sec IS NULL OR endpoint_rank <= rate_limit_per_sec * {paced_secs}) \
                 ORDER BY next_attempt_at, id LIMIT $3",
                room = room.replace("{endpoint}", "endpoint_id")
            ),
        };
        let _turn = self.write_turn().await;
        let mut query = sqlx::query(&select).bind(now_ms).bind(per_endpoint).bind(limit);
        for (endpoint, room) in busy {
            query = query.bind(endpoint).bind((*room).min(per_endpoint));
        }
        let chosen: Vec<i64> = query.fetch_all(&self.relaxed).await?.iter().map(|r| r.get(0)).collect();
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let update = update(chosen.len());
        let mut query = sqlx::query(&update).bind(lease_until).bind(token).bind(now_ms);
        for id in &chosen {
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
        let event = sqlx::query(&format!(
            "SELECT {} FROM events e {WEBHOOK_OF_EVENT} WHERE e.seq = $1",
            event_columns(self.backend)
        ))
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
        let select = format!(
            "SELECT d.id, d.attempts, d.endpoint_id, {} FROM webhook_deliveries d \
             JOIN events e ON e.seq = d.event_seq {WEBHOOK_OF_EVENT} WHERE d.id IN ({})",
            event_columns(self.backend),
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

    /// Extends, to `lease_until`, the leases of the given deliveries while claim `token` still
    /// holds them (a dispatcher renews what it still has queued or in flight); returns how many
    /// it extended.
    pub async fn renew_delivery_leases(
        &self,
        token: &str,
        delivery_ids: &[i64],
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(0);
        }
        let update = format!(
            "UPDATE webhook_deliveries SET lease_until = $1 \
             WHERE status = 'pending' AND lease_token = $2 AND id IN ({})",
            placeholders(3, delivery_ids.len())
        );
        if self.sqlite_file.is_some() {
            let (update, token, ids) = (numbered(&update), token.to_owned(), delivery_ids.to_vec());
            let renewed = self
                .group_commit()
                .run_on_writer(move |connection| {
                    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&lease_until, &token];
                    values.extend(ids.iter().map(|id| id as &dyn rusqlite::ToSql));
                    // Not cached, as claims: one statement per number of deliveries held.
                    Ok(connection.prepare(&update)?.execute(values.as_slice())? as u64)
                })
                .await;
            if let Some(renewed) = renewed {
                return renewed;
            }
        }
        let _turn = self.write_turn().await;
        let mut query = sqlx::query(&update).bind(lease_until).bind(token);
        for id in delivery_ids {
            query = query.bind(id);
        }
        Ok(query.execute(&self.relaxed).await?.rows_affected())
    }

    /// The bytes of event data each delivery brings into memory when loaded (its event's data,
    /// or the body of the webhook the event refers to), found without reading the data; a
    /// delivery whose event is gone is left out.
    pub async fn delivery_sizes(&self, delivery_ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let select = format!(
            "SELECT d.id, CASE WHEN e.webhook_id IS NULL THEN octet_length(e.data) \
             ELSE COALESCE(octet_length(w.payload), 4) END \
             FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq {WEBHOOK_OF_EVENT} WHERE d.id IN ({})",
            placeholders(1, delivery_ids.len())
        );
        let mut query = sqlx::query(&select);
        for id in delivery_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Gives leased deliveries back untried, while claim `token` still holds them (a dispatcher
    /// took more than its memory budget lets it hold).
    pub async fn release_deliveries(&self, delivery_ids: &[i64], token: &str) -> Result<(), StoreError> {
        if delivery_ids.is_empty() {
            return Ok(());
        }
        let update = format!(
            "UPDATE webhook_deliveries SET lease_until = 0, lease_token = NULL \
             WHERE lease_token = $1 AND id IN ({})",
            placeholders(2, delivery_ids.len())
        );
        let _turn = self.write_turn().await;
        let mut query = sqlx::query(&update).bind(token);
        for id in delivery_ids {
            query = query.bind(id);
        }
        query.execute(&self.relaxed).await?;
        Ok(())
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
        if self.sqlite_file.is_some() {
            let attempts = attempts.to_vec();
            let recorded = self
                .group_commit()
                .run_on_writer(move |connection| {
                    attempts
                        .iter()
                        .map(|recorded| record_one_sqlite(connection, recorded))
                        .collect()
                })
                .await;
            if let Some(recorded) = recorded {
                return recorded;
            }
        }
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

    /// The positions and types of the tenant's events that occurred at or after `since_ms`, after
    /// `after` in the log, in log order: what a replay sends again (their data is not read).
    pub async fn tenant_event_types_since(
        &self,
        tenant_id: &str,
        since_ms: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, type FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND seq > $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(tenant_id)
        .bind(since_ms)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }
}

/// The enabled endpoints with pending deliveries, with their rate limits.
const PENDING_ENDPOINTS: &str = concat!(
    "WITH RECURSIVE ",
    pending_endpoints_cte!(),
    " SELECT p.endpoint_id, e.rate_limit_per_sec FROM pending p JOIN webhook_endpoints e ON e.id = p.endpoint_id \
     WHERE e.state = 'enabled'"
);
/// One endpoint's earliest due, unleased deliveries: `$3` of them at most.
const DUE_OF_ENDPOINT: &str = "SELECT next_attempt_at, id FROM webhook_deliveries \
     WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2 AND lease_until <= $2 \
     ORDER BY next_attempt_at, id LIMIT $3";
const INSERT_CURSOR: &str = "INSERT INTO event_cursors (name, seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING";
const MOVE_CURSOR: &str = "UPDATE event_cursors SET seq = $1, after_endpoint = $2 \
     WHERE name = $3 AND seq = $4 AND after_endpoint = $5";
const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_seq, status, attempts, \
     next_attempt_at, lease_until, lease_token, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, 0, NULL, $5)";
const INSERT_ATTEMPT: &str =
    "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, attempted_at, \
     status_code, error, latency_ms, response_body, succeeded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
/// Moves the delivery on, only while the attempt's lease token still holds it.
const MOVE_DELIVERY: &str = "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
     lease_until = 0, lease_token = NULL WHERE id = $4 AND lease_token = $5";
const HEALTHY: &str = "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL";
const FAILING: &str = "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL";
/// Disables an enabled endpoint; with `$4` = 1 only when its failure streak began at or before `$5`.
const DISABLE: &str = "UPDATE webhook_endpoints SET state = 'disabled', disabled_reason = $1, updated_at = $2 \
     WHERE id = $3 AND state = 'enabled' AND ($4 = 0 OR failing_since <= $5)";

/// A statement written with `$n` placeholders (PostgreSQL's) as SQLite's `?n`, so one text
/// serves sqlx and the writer thread's rusqlite connection.
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
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
    let disabled = sqlx::query(DISABLE)
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
        sqlx::query(INSERT_DELIVERY)
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

/// The delivery's state and next due time after an attempt.
fn next_state(attempt: &AttemptRecord, next: DeliveryNext) -> (&'static str, i64) {
    match next {
        DeliveryNext::Succeeded => ("succeeded", attempt.attempted_at),
        DeliveryNext::RetryAt(at) => ("pending", at),
        DeliveryNext::Failed => ("failed", attempt.attempted_at),
    }
}

/// One attempt, inside the caller's transaction.
async fn record_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    token: &str,
    attempt: &AttemptRecord,
    next: DeliveryNext,
    health: &EndpointHealth,
) -> Result<bool, StoreError> {
    sqlx::query(INSERT_ATTEMPT)
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
    let (status, next_at) = next_state(attempt, next);
    sqlx::query(MOVE_DELIVERY)
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
            sqlx::query(HEALTHY)
                .bind(&attempt.endpoint_id)
                .execute(&mut **tx)
                .await?;
            false
        }
        EndpointHealth::Failing { disable_after_secs } => {
            sqlx::query(FAILING)
                .bind(now)
                .bind(&attempt.endpoint_id)
                .execute(&mut **tx)
                .await?;
            let reason = failing_reason(*disable_after_secs);
            disable(tx, &attempt.endpoint_id, &reason, Some(now - disable_after_secs), now).await?
        }
        EndpointHealth::Gone(reason) => disable(tx, &attempt.endpoint_id, reason, None, now).await?,
    };
    Ok(disabled)
}

fn failing_reason(disable_after_secs: i64) -> String {
    format!("failing continuously for more than {disable_after_secs} seconds")
}

/// [`record_one`] on the SQLite writer thread's connection, inside its open transaction.
fn record_one_sqlite(connection: &rusqlite::Connection, recorded: &RecordedAttempt) -> Result<bool, StoreError> {
    let attempt = &recorded.attempt;
    connection
        .prepare_cached(sqlite_form!(INSERT_ATTEMPT))?
        .execute(rusqlite::params![
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
    connection
        .prepare_cached(sqlite_form!(MOVE_DELIVERY))?
        .execute(rusqlite::params![
            status,
            attempt.attempt,
            next_at,
            attempt.delivery_id,
            recorded.token
        ])?;
    let now = now_unix();
    let disable = |reason: &str, failing_before: Option<i64>| -> Result<bool, StoreError> {
        let disabled = connection
            .prepare_cached(sqlite_form!(DISABLE))?
            .execute(rusqlite::params![
                reason,
                now,
                attempt.endpoint_id,
                i64::from(failing_before.is_some()),
                failing_before.unwrap_or(0)
            ])?;
        Ok(disabled > 0)
    };
    match &recorded.health {
        EndpointHealth::Healthy => {
            connection
                .prepare_cached(sqlite_form!(HEALTHY))?
                .execute(rusqlite::params![attempt.endpoint_id])?;
            Ok(false)
        }
        EndpointHealth::Failing { disable_after_secs } => {
            connection
                .prepare_cached(sqlite_form!(FAILING))?
                .execute(rusqlite::params![now, attempt.endpoint_id])?;
            disable(&failing_reason(*disable_after_secs), Some(now - disable_after_secs))
        }
        EndpointHealth::Gone(reason) => disable(reason, None),
    }
}
