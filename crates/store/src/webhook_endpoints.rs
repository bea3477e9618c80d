//! Tenants' outbound webhook endpoints: where their events are sent, with sealed signing secrets.

use sqlx::Row;

use crate::{now_unix, Store, StoreError};

/// A tenant's endpoint. The secrets are ciphertexts sealed with the tenant's data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `ep_…`.
    pub id: String,
    /// The owner.
    pub tenant_id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Type filters (`jira.*`, `*`, exact types); empty means every type.
    pub event_types: Vec<String>,
    /// The tenant's note.
    pub description: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled, when the service disabled it (410 Gone, failing too long).
    pub disabled_reason: Option<String>,
    /// The sealed signing secret.
    pub secret: Vec<u8>,
    /// The sealed secret it replaced, which still signs until `previous_secret_expires_at`.
    pub previous_secret: Option<Vec<u8>>,
    /// Unix seconds.
    pub previous_secret_expires_at: Option<i64>,
    /// Unix seconds of the first failed attempt since the last success.
    pub failing_since: Option<i64>,
    /// The endpoint receives events after this position in the log (set on insert).
    pub start_seq: i64,
    /// Most deliveries per second it receives; `None`: as fast as it takes them.
    pub rate_limit_per_sec: Option<u32>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An event paired with an enabled endpoint of its tenant created before it: a delivery, if the
/// endpoint's type filter takes the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRoute {
    /// The event's position in the log.
    pub seq: i64,
    /// The event's tenant, and the endpoint's.
    pub tenant_id: String,
    /// The event's type.
    pub event_type: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The endpoint's type filters.
    pub event_types: Vec<String>,
}

/// What a tenant may change of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpointSettings {
    /// Where deliveries go.
    pub url: String,
    /// Type filters.
    pub event_types: Vec<String>,
    /// The tenant's note.
    pub description: String,
    /// Enabling clears the disabled reason and the failure streak.
    pub enabled: bool,
    /// Most deliveries per second; `None`: unlimited.
    pub rate_limit_per_sec: Option<u32>,
}

impl Store {
    /// Stores a new endpoint unless its tenant has `max_endpoints` already (then `None`); it
    /// receives events appended from now on (its `start_seq` is the log's current end, whatever
    /// the argument says). Returns it as stored. The count and the insert are one statement, and
    /// on PostgreSQL the tenant's row is locked first, so concurrent creates never pass the limit.
    pub async fn insert_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        max_endpoints: u32,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let inserted = {
            let _turn = self.write_turn().await;
            let mut tx = self.pool.begin().await?;
            if self.backend == crate::Backend::Postgres {
                // Concurrent creates of one tenant queue here; each then counts what the ones
                // before it committed. (NO KEY: rows referring to the tenant are not held up.)
                sqlx::query(sql::postgres::LOCK_TENANT)
                    .bind(&endpoint.tenant_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let inserted = sqlx::query(sql::INSERT_WITHIN_QUOTA)
                .bind(&endpoint.id)
                .bind(&endpoint.tenant_id)
                .bind(&endpoint.url)
                .bind(types_json(&endpoint.event_types))
                .bind(&endpoint.description)
                .bind(state(endpoint.enabled))
                .bind(&endpoint.secret)
                .bind(endpoint.created_at)
                .bind(i64::from(max_endpoints))
                .bind(endpoint.rate_limit_per_sec.map(i64::from))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            inserted.rows_affected() > 0
        };
        if !inserted {
            return Ok(None);
        }
        self.webhook_endpoint(&endpoint.tenant_id, &endpoint.id)
            .await?
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt("inserted endpoint not found".into()))
    }

    /// A page of the tenant's endpoints, oldest first (by creation time, then id), after the
    /// endpoint created at `after.0` with id `after.1` when given.
    pub async fn webhook_endpoints_page(
        &self,
        tenant_id: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let (created_at, id) = after.unwrap_or((i64::MIN, ""));
        let rows = sqlx::query(sql::PAGE)
            .bind(tenant_id)
            .bind(created_at)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// The pairs (event, enabled endpoint of its tenant created before it) after position
    /// `after` up to event `upto`, in log order then endpoint id, at most `limit` of them: for the
    /// fan-out. `after` is `(seq, endpoint)`: every event up to `seq` is done, and event `seq + 1`
    /// for the endpoints up to `endpoint` (`""`: none of them), so one event's many endpoints can
    /// be covered over several calls. The pairing is a join in the database: the events of
    /// tenants without endpoints (often most of the log) never leave it, and a span costs one
    /// query however many tenants its events belong to.
    pub async fn event_routes(&self, after: (i64, &str), upto: i64, limit: i64) -> Result<Vec<EventRoute>, StoreError> {
        let rows = sqlx::query(sql::EVENT_ROUTES)
            .bind(after.0)
            .bind(after.1)
            .bind(upto)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        // Each endpoint's filters are decoded once per call, not once per event.
        let mut filters: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        let mut routes = Vec::with_capacity(rows.len());
        for row in &rows {
            let endpoint_id: String = row.try_get(3)?;
            let event_types = match filters.get(&endpoint_id) {
                Some(types) => types.clone(),
                None => {
                    let types = parse_types(row.try_get(4)?)?;
                    filters.insert(endpoint_id.clone(), types.clone());
                    types
                }
            };
            routes.push(EventRoute {
                seq: row.try_get(0)?,
                tenant_id: row.try_get(1)?,
                event_type: row.try_get(2)?,
                endpoint_id,
                event_types,
            });
        }
        Ok(routes)
    }

    /// One of the tenant's endpoints; `None` for another tenant's.
    pub async fn webhook_endpoint(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(sql::ENDPOINT)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    /// Applies the tenant's changes; returns whether the endpoint exists. Enabling clears the
    /// disabled reason and the failure streak; disabling by the tenant leaves no reason.
    pub async fn update_webhook_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        settings: &WebhookEndpointSettings,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let updated = sqlx::query(sql::UPDATE)
            .bind(&settings.url)
            .bind(types_json(&settings.event_types))
            .bind(&settings.description)
            .bind(state(settings.enabled))
            .bind(now_unix())
            .bind(tenant_id)
            .bind(id)
            .bind(settings.rate_limit_per_sec.map(i64::from))
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Reserves `count` consecutive send slots `interval_us` apart for the endpoint, from its
    /// last reserved slot or from `now_us` (unix microseconds) if that has passed; returns the
    /// first slot's time. Replicas reserve from the same row, so together they keep the
    /// endpoint's rate. An endpoint deleted meanwhile gets `now_us`.
    pub async fn reserve_send_slots(
        &self,
        endpoint_id: &str,
        count: i64,
        interval_us: i64,
        now_us: i64,
    ) -> Result<i64, StoreError> {
        let span = count.saturating_mul(interval_us);
        let _turn = self.write_turn().await;
        let reserved = sqlx::query(sql::RESERVE_SLOTS)
            .bind(now_us)
            .bind(span)
            .bind(endpoint_id)
            .fetch_optional(&self.relaxed)
            .await?;
        Ok(reserved.map_or(now_us, |row| row.get::<i64, _>(0) - span))
    }

    /// Marks a replay as being written for the tenant's endpoint until `until_ms` (unix ms), unless
    /// another one is (its mark later than `now_ms`); returns whether it did. `until_ms` is the
    /// replay's token for [`Store::end_replay`].
    pub async fn begin_replay(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let marked = sqlx::query(sql::BEGIN_REPLAY)
            .bind(until_ms)
            .bind(tenant_id)
            .bind(id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(marked.rows_affected() > 0)
    }

    /// Clears the mark of the replay that [`Store::begin_replay`] made with `until_ms` (not a
    /// later one's, if it lapsed meanwhile).
    pub async fn end_replay(&self, id: &str, until_ms: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(sql::END_REPLAY)
            .bind(id)
            .bind(until_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes an endpoint with its deliveries and attempts; returns whether it existed.
    pub async fn delete_webhook_endpoint(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let deleted = sqlx::query(sql::DELETE)
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Makes `secret` the signing secret; the one it replaces keeps signing until
    /// `previous_expires_at` (unix seconds). Returns whether the endpoint exists.
    pub async fn rotate_webhook_endpoint_secret(
        &self,
        tenant_id: &str,
        id: &str,
        secret: &[u8],
        previous_expires_at: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let updated = sqlx::query(sql::ROTATE_SECRET)
            .bind(previous_expires_at)
            .bind(secret)
            .bind(now_unix())
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }
}

fn state(enabled: bool) -> &'static str {
    if enabled {
        "enabled"
    } else {
        "disabled"
    }
}

fn parse_types(types: String) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(&types).map_err(|e| StoreError::Corrupt(format!("event_types: {e}")))
}

fn types_json(types: &[String]) -> String {
    serde_json::Value::from(types.to_vec()).to_string()
}

pub(crate) fn endpoint_from_row(row: &sqlx::any::AnyRow) -> Result<WebhookEndpoint, StoreError> {
    let types: String = row.get(3);
    let event_types = parse_types(types)?;
    let state: String = row.get(5);
    Ok(WebhookEndpoint {
        id: row.get(0),
        tenant_id: row.get(1),
        url: row.get(2),
        event_types,
        description: row.get(4),
        enabled: match state.as_str() {
            "enabled" => true,
            "disabled" => false,
            other => return Err(StoreError::Corrupt(format!("endpoint state {other:?}"))),
        },
        disabled_reason: row.get(6),
        secret: row.get(7),
        previous_secret: row.get(8),
        previous_secret_expires_at: row.get(9),
        failing_since: row.get(10),
        start_seq: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
        rate_limit_per_sec: row
            .get::<Option<i64>, _>(14)
            .map(u32::try_from)
            .transpose()
            .map_err(|_| StoreError::Corrupt("endpoint rate limit out of range".into()))?,
    })
}

/// This resource's statements.
pub(crate) mod sql {
    statements! {
        /// Inserts an endpoint (`$1`…`$8`, `$10`) only while its tenant has fewer than `$9`.
        INSERT_WITHIN_QUOTA = "INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, description, state, \
     disabled_reason, secret, previous_secret, previous_secret_expires_at, failing_since, start_seq, created_at, \
     updated_at, rate_limit_per_sec) \
     SELECT $1, $2, $3, $4, $5, $6, NULL, $7, NULL, NULL, NULL, (SELECT COALESCE(MAX(seq), 0) FROM events), $8, $8, \
     $10 WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $2) < $9";
        /// One of the tenant's endpoints.
        ENDPOINT = concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2");
        /// The tenant's endpoints after `($2, $3)`, oldest first.
        PAGE = concat!(
            "SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE tenant_id = $1 \
             AND (created_at > $2 OR (created_at = $2 AND id > $3)) ORDER BY created_at, id LIMIT $4"
        );
        /// Pairs of (event, enabled endpoint of its tenant created before it) after `($1, $2)` up to `$3`.
        EVENT_ROUTES = "SELECT e.seq, e.tenant_id, e.type, w.id, w.event_types FROM events e \
             JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.state = 'enabled' AND w.start_seq < e.seq \
             WHERE e.seq > $1 AND e.seq <= $3 AND (e.seq > $1 + 1 OR w.id > $2) ORDER BY e.seq, w.id LIMIT $4";
        /// Applies the tenant's settings.
        UPDATE = "UPDATE webhook_endpoints SET url = $1, event_types = $2, description = $3, \
             disabled_reason = CASE WHEN $4 = 'enabled' THEN NULL \
             WHEN state = 'disabled' THEN disabled_reason ELSE NULL END, \
             failing_since = CASE WHEN $4 = 'enabled' AND state = 'disabled' THEN NULL ELSE failing_since END, \
             state = $4, updated_at = $5, rate_limit_per_sec = $8 WHERE tenant_id = $6 AND id = $7";
        /// Reserves `$2` microseconds of send slots from `$1` or the endpoint's last reserved slot.
        RESERVE_SLOTS = "UPDATE webhook_endpoints SET paced_until = \
             (CASE WHEN paced_until > $1 THEN paced_until ELSE $1 END) + $2 WHERE id = $3 RETURNING paced_until";
        /// Marks a replay until `$1`, unless another one's mark is later than `$4`.
        BEGIN_REPLAY = "UPDATE webhook_endpoints SET replay_until = $1 WHERE tenant_id = $2 AND id = $3 AND replay_until <= $4";
        /// Clears the mark of the replay with token `$2`.
        END_REPLAY = "UPDATE webhook_endpoints SET replay_until = 0 WHERE id = $1 AND replay_until = $2";
        /// Deletes an endpoint (its deliveries and attempts with it).
        DELETE = "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2";
        /// Makes `$2` the signing secret, the one it replaces signing until `$1`.
        ROTATE_SECRET = "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $1, secret = $2, \
             updated_at = $3 WHERE tenant_id = $4 AND id = $5";
    }

    /// PostgreSQL's lock.
    pub(crate) mod postgres {
        statements! {
            /// Locks the tenant's row: concurrent creates of its endpoints queue here (NO KEY: rows
            /// referring to the tenant are not held up).
            LOCK_TENANT = "SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE";
        }
    }
}
