//! Replicas announce themselves, so that each can take its share of a deployment-wide limit.

use sqlx::Row;

use crate::{Store, StoreError};

impl Store {
    /// Records that `replica` is alive at `now` (unix seconds), forgets replicas not seen since
    /// `now - ttl_secs`, and returns how many are alive, this one included.
    pub async fn replica_heartbeat(&self, replica: &str, now: i64, ttl_secs: i64) -> Result<u32, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.relaxed.begin().await?;
        sqlx::query(sql::HEARTBEAT)
            .bind(replica)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::FORGET_SILENT)
            .bind(now - ttl_secs)
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query(sql::COUNT).fetch_one(&mut *tx).await?.get(0);
        tx.commit().await?;
        Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
    }

    /// Forgets a replica that is stopping, so the others take its share at once.
    pub async fn replica_gone(&self, replica: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(sql::LEAVE).bind(replica).execute(&self.relaxed).await?;
        Ok(())
    }
}

/// This resource's statements.
pub(crate) mod sql {
    statements! {
        /// A replica's heartbeat.
        HEARTBEAT = "INSERT INTO service_replicas (id, seen_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at";
        /// Replicas not heard from since `$1`.
        FORGET_SILENT = "DELETE FROM service_replicas WHERE seen_at < $1";
        /// How many replicas there are.
        COUNT = "SELECT COUNT(*) FROM service_replicas";
        /// A replica leaving.
        LEAVE = "DELETE FROM service_replicas WHERE id = $1";
    }
}
