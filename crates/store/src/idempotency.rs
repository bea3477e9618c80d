//! Idempotency keys of tool calls: who holds a key, and the response a finished one replays.

use sqlx::Row;

use crate::{Store, StoreError};

/// A finished call's response, as it is replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// The status.
    pub status: u16,
    /// The headers worth replaying (content type, location), as a JSON object of strings.
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
}

/// What a request with an idempotency key finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// Nobody holds the key (or its holder's lease ran out): the caller now does.
    Claimed,
    /// A request with the same key and body is running.
    Running,
    /// A request with the same key and body finished with this response.
    Finished(StoredResponse),
    /// The key was used with another request.
    OtherRequest,
}

impl Store {
    /// Claims `key` for `tenant` with the request's `fingerprint` until `lease_until` (unix
    /// seconds), unless it is held or finished.
    pub async fn claim_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        fingerprint: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(sql::KEY)
            .bind(tenant)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = found {
            let expires_at: i64 = row.get(5);
            if expires_at > now {
                let stored: String = row.get(0);
                if stored != fingerprint {
                    return Ok(IdempotencyClaim::OtherRequest);
                }
                if row.get::<i64, _>(1) == 0 {
                    return Ok(IdempotencyClaim::Running);
                }
                let status: i64 = row.try_get::<Option<i64>, _>(2)?.unwrap_or(500);
                return Ok(IdempotencyClaim::Finished(StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    headers: row.try_get::<Option<String>, _>(3)?.unwrap_or_else(|| "{}".into()),
                    body: row.try_get::<Option<Vec<u8>>, _>(4)?.unwrap_or_default(),
                }));
            }
            sqlx::query(sql::DELETE)
                .bind(tenant)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(sql::CLAIM)
            .bind(tenant)
            .bind(key)
            .bind(fingerprint)
            .bind(lease_until)
            .execute(&mut *tx)
            .await;
        match inserted.map_err(StoreError::from) {
            Ok(_) => {
                tx.commit().await?;
                Ok(IdempotencyClaim::Claimed)
            }
            // Another replica claimed it between the read and the insert.
            Err(StoreError::Conflict) => Ok(IdempotencyClaim::Running),
            Err(error) => Err(error),
        }
    }

    /// Records the response of the call holding `key`, kept until `expires_at`.
    pub async fn finish_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        response: &StoredResponse,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(sql::FINISH)
            .bind(i64::from(response.status))
            .bind(&response.headers)
            .bind(&response.body)
            .bind(expires_at)
            .bind(tenant)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives up `key` without a response, so that the client may try again.
    pub async fn release_idempotency_key(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(sql::RELEASE)
            .bind(tenant)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets keys past their retention or lease, at most `batch` of them; returns how many.
    pub async fn delete_expired_idempotency_keys(&self, now: i64, batch: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let deleted = sqlx::query(sql::EXPIRE)
            .bind(now)
            .bind(batch)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// This resource's statements.
pub(crate) mod sql {
    statements! {
        /// A tenant's idempotency key with its stored response.
        KEY = "SELECT fingerprint, finished, status, headers, body, expires_at FROM idempotency_keys \
             WHERE tenant_id = $1 AND key = $2";
        /// A tenant's idempotency key.
        DELETE = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2";
        /// Claims an idempotency key (unfinished).
        CLAIM = "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, finished, expires_at) \
             VALUES ($1, $2, $3, 0, $4)";
        /// Stores the response of a claimed key.
        FINISH = "UPDATE idempotency_keys SET finished = 1, status = $1, headers = $2, body = $3, expires_at = $4 \
             WHERE tenant_id = $5 AND key = $6";
        /// Gives back a claim that has no response.
        RELEASE = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND finished = 0";
        /// Up to `$2` keys expired before `$1`.
        EXPIRE = "DELETE FROM idempotency_keys WHERE (tenant_id, key) IN \
             (SELECT tenant_id, key FROM idempotency_keys WHERE expires_at < $1 LIMIT $2)";
    }
}
