//! Claims and leases: a dispatcher leases due deliveries (fairly across endpoints, paced for
//! rate-limited ones), renews the leases of what it still holds, and gives back what it will not
//! attempt. A lease is taken only where it is still free, so of two replicas one wins each row.

use std::collections::HashMap;

use sqlx::Row;

use crate::multi_row::in_lists;
use crate::sqlite_writer::cached;
use crate::{Backend, Store, StoreError};

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

/// What a claim asks for (see [`Store::claim_deliveries`]).
struct Claim {
    now_ms: i64,
    lease_until: i64,
    token: String,
    per_endpoint: i64,
    paced_secs: i64,
    limit: i64,
}

impl Store {
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
        let claim = Claim {
            now_ms,
            lease_until,
            token: token.to_owned(),
            per_endpoint,
            paced_secs: paced_secs.max(1),
            limit,
        };
        match self.backend {
            Backend::Sqlite => self.claim_on_writer(claim, busy.iter().cloned().collect()).await,
            Backend::Postgres => self.claim_on_pool(claim, busy).await,
        }
    }

    /// Each endpoint with room gives its earliest due deliveries, then the earliest of all of
    /// them are leased.
    async fn claim_on_writer(
        &self,
        claim: Claim,
        busy: HashMap<String, i64>,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.on_writer(move |connection| {
            let mut endpoints = cached(connection, sql::sqlite::PENDING_ENDPOINTS)?;
            let endpoints = endpoints
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?)))?
                .collect::<Result<Vec<(String, Option<i64>)>, _>>()?;
            let mut due = cached(connection, sql::sqlite::DUE_OF_ENDPOINT)?;
            let mut candidates: Vec<(i64, i64)> = Vec::new();
            for (endpoint, rate) in &endpoints {
                let room = busy.get(endpoint).copied().unwrap_or(claim.per_endpoint);
                let room = match rate {
                    Some(rate) => room.min(rate.saturating_mul(claim.paced_secs)),
                    None => room,
                };
                if room <= 0 {
                    continue;
                }
                let rows = due.query_map(rusqlite::params![endpoint, claim.now_ms, room], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
                for row in rows {
                    candidates.push(row?);
                }
            }
            candidates.sort_unstable();
            candidates.truncate(claim.limit as usize);
            let ids: Vec<i64> = candidates.into_iter().map(|(_, id)| id).collect();
            let mut claimed = Vec::with_capacity(ids.len());
            for list in in_lists(&ids) {
                let mut lease = cached(connection, sql::LEASE.get(list.size))?;
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&claim.lease_until, &claim.token, &claim.now_ms];
                values.extend(list.ids().map(|id| id as &dyn rusqlite::ToSql));
                let rows = lease.query_map(values.as_slice(), |row| Ok((row.get(0)?, row.get(1)?)))?;
                for row in rows {
                    claimed.push(row?);
                }
            }
            Ok(claimed)
        })
        .await
    }

    /// The same walk in one statement: each pending endpoint's earliest due deliveries, ranked,
    /// as many as its room; then the lease.
    async fn claim_on_pool(&self, claim: Claim, busy: &[(String, i64)]) -> Result<Vec<(i64, String)>, StoreError> {
        // An endpoint listed in `busy` gets the room given with it, any other `per_endpoint`.
        let rooms: serde_json::Map<String, serde_json::Value> = busy
            .iter()
            .map(|(endpoint, room)| (endpoint.clone(), (*room).min(claim.per_endpoint).into()))
            .collect();
        let chosen: Vec<i64> = sqlx::query(sql::postgres::CHOOSE)
            .bind(claim.now_ms)
            .bind(claim.per_endpoint)
            .bind(claim.limit)
            .bind(serde_json::Value::Object(rooms).to_string())
            .bind(claim.paced_secs)
            .fetch_all(&self.relaxed)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut claimed = Vec::with_capacity(chosen.len());
        for list in in_lists(&chosen) {
            let mut query = sqlx::query(sql::LEASE.get(list.size))
                .bind(claim.lease_until)
                .bind(&claim.token)
                .bind(claim.now_ms);
            for id in list.ids() {
                query = query.bind(id);
            }
            let rows = query.fetch_all(&self.relaxed).await?;
            claimed.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
        }
        Ok(claimed)
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
        if self.backend == Backend::Sqlite {
            let (token, ids) = (token.to_owned(), delivery_ids.to_vec());
            return self
                .on_writer(move |connection| {
                    let mut renewed = 0;
                    for list in in_lists(&ids) {
                        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&lease_until, &token];
                        values.extend(list.ids().map(|id| id as &dyn rusqlite::ToSql));
                        renewed += cached(connection, sql::RENEW.get(list.size))?.execute(values.as_slice())? as u64;
                    }
                    Ok(renewed)
                })
                .await;
        }
        let mut renewed = 0;
        for list in in_lists(delivery_ids) {
            let mut query = sqlx::query(sql::RENEW.get(list.size)).bind(lease_until).bind(token);
            for id in list.ids() {
                query = query.bind(id);
            }
            renewed += query.execute(&self.relaxed).await?.rows_affected();
        }
        Ok(renewed)
    }

    /// Gives leased deliveries back untried, while claim `token` still holds them (a dispatcher
    /// took more than its memory budget lets it hold).
    pub async fn release_deliveries(&self, delivery_ids: &[i64], token: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        for list in in_lists(delivery_ids) {
            let mut query = sqlx::query(sql::RELEASE.get(list.size)).bind(token);
            for id in list.ids() {
                query = query.bind(id);
            }
            query.execute(&self.relaxed).await?;
        }
        Ok(())
    }

    /// Gives a leased delivery back untried (its endpoint was disabled meanwhile).
    pub async fn release_delivery(&self, delivery_id: i64, token: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(sql::RELEASE_ONE)
            .bind(delivery_id)
            .bind(token)
            .execute(&self.relaxed)
            .await?;
        Ok(())
    }
}

/// Claims and leases.
pub(crate) mod sql {
    use crate::multi_row::placeholders;

    statements! {
        /// Gives a leased delivery back, while the claim `$2` holds it.
        RELEASE_ONE =
            "UPDATE webhook_deliveries SET lease_until = 0, lease_token = NULL WHERE id = $1 AND lease_token = $2";
        @sized:
        /// Leases deliveries until `$1` under token `$2`, only those whose lease is free at `$3`.
        LEASE = |ids| format!(
            "UPDATE webhook_deliveries SET lease_until = $1, lease_token = $2 \
             WHERE status = 'pending' AND lease_until <= $3 AND id IN ({}) RETURNING id, endpoint_id",
            placeholders(4, ids)
        );
        /// Extends to `$1` the leases claim `$2` holds.
        RENEW = |ids| format!(
            "UPDATE webhook_deliveries SET lease_until = $1 \
             WHERE status = 'pending' AND lease_token = $2 AND id IN ({})",
            placeholders(3, ids)
        );
        /// Gives leased deliveries back, those the claim `$1` holds.
        RELEASE = |ids| format!(
            "UPDATE webhook_deliveries SET lease_until = 0, lease_token = NULL \
             WHERE lease_token = $1 AND id IN ({})",
            placeholders(2, ids)
        );
    }

    /// SQLite walks the endpoints on the writer thread, one cached statement per step.
    pub(crate) mod sqlite {
        statements! {
            /// The enabled endpoints with pending deliveries, with their rate limits.
            PENDING_ENDPOINTS = concat!(
                "WITH RECURSIVE ",
                pending_endpoints_cte!(),
                " SELECT p.endpoint_id, e.rate_limit_per_sec FROM pending p \
                 JOIN webhook_endpoints e ON e.id = p.endpoint_id WHERE e.state = 'enabled'"
            );
            /// One endpoint's earliest due, unleased deliveries: `$3` of them at most.
            DUE_OF_ENDPOINT = "SELECT next_attempt_at, id FROM webhook_deliveries \
                 WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2 AND lease_until <= $2 \
                 ORDER BY next_attempt_at, id LIMIT $3";
        }
    }

    /// PostgreSQL chooses in one statement.
    pub(crate) mod postgres {
        statements! {
            /// The `$3` earliest due deliveries at `$1` of the enabled endpoints with pending
            /// ones: of each endpoint at most its room (the object `$4` maps endpoints with
            /// attempts in flight to their room, any other has `$2`), and of one with a rate
            /// limit at most `$5` seconds' worth of it. (`$4` is text, as sqlx's `Any` driver binds
            /// it, parsed here.)
            CHOOSE = concat!(
                "WITH RECURSIVE ",
                pending_endpoints_cte!(),
                " SELECT c.id FROM pending p \
                 JOIN webhook_endpoints e ON e.id = p.endpoint_id AND e.state = 'enabled' \
                 CROSS JOIN LATERAL (SELECT d.id, d.next_attempt_at, \
                   ROW_NUMBER() OVER (ORDER BY d.next_attempt_at, d.id) AS endpoint_rank \
                   FROM webhook_deliveries d WHERE d.endpoint_id = p.endpoint_id AND d.status = 'pending' \
                   AND d.next_attempt_at <= $1 AND d.lease_until <= $1 \
                   ORDER BY d.next_attempt_at, d.id LIMIT $2) c \
                 WHERE c.endpoint_rank <= COALESCE((CAST($4 AS TEXT)::jsonb ->> p.endpoint_id)::bigint, $2) \
                 AND (e.rate_limit_per_sec IS NULL OR c.endpoint_rank <= e.rate_limit_per_sec * $5) \
                 ORDER BY c.next_attempt_at, c.id LIMIT $3"
            );
        }
    }
}
