//! The fan-out consumer's writes: its cursor, advanced in the transaction that writes the
//! deliveries of the events it passed (on SQLite in the writer thread's next transaction).

use sqlx::Row;

use super::NewDelivery;
use crate::sqlite_writer::cached;
use crate::{now_unix, Backend, Store, StoreError};

impl Store {
    /// Where fan-out consumer `consumer` has got to: `(seq, endpoint)`, every event up to `seq`
    /// fanned out, and event `seq + 1` to its endpoints up to `endpoint` (`""`: none yet).
    pub async fn fanout_cursor(&self, consumer: &str) -> Result<(i64, String), StoreError> {
        let row = sqlx::query(sql::CURSOR)
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
        match self.backend {
            Backend::Sqlite => self.record_fanout_on_writer(consumer, from, to, deliveries).await,
            Backend::Postgres => self.record_fanout_on_pool(consumer, from, to, deliveries).await,
        }
    }

    async fn record_fanout_on_writer(
        &self,
        consumer: &str,
        (from_seq, from_endpoint): (i64, &str),
        (to_seq, to_endpoint): (i64, &str),
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let (consumer, deliveries) = (consumer.to_owned(), deliveries.to_vec());
        let (from_endpoint, to_endpoint) = (from_endpoint.to_owned(), to_endpoint.to_owned());
        self.on_writer(move |connection| {
            cached(connection, sql::INSERT_CURSOR)?.execute(rusqlite::params![consumer])?;
            let moved = cached(connection, sql::MOVE_CURSOR)?.execute(rusqlite::params![
                to_seq,
                to_endpoint,
                consumer,
                from_seq,
                from_endpoint
            ])?;
            if moved == 0 {
                return Ok(false);
            }
            let mut insert = cached(connection, sql::INSERT_DELIVERY)?;
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
        .await
    }

    async fn record_fanout_on_pool(
        &self,
        consumer: &str,
        (from_seq, from_endpoint): (i64, &str),
        (to_seq, to_endpoint): (i64, &str),
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let mut tx = self.relaxed.begin().await?;
        sqlx::query(sql::INSERT_CURSOR).bind(consumer).execute(&mut *tx).await?;
        let moved = sqlx::query(sql::MOVE_CURSOR)
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
}

async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    let now = now_unix();
    for delivery in deliveries {
        sqlx::query(sql::INSERT_DELIVERY)
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

/// The fan-out's statements.
pub(crate) mod sql {
    statements! {
        /// Where a fan-out consumer has got to.
        CURSOR = "SELECT seq, after_endpoint FROM event_cursors WHERE name = $1";
        /// A consumer's cursor, at the start unless it exists.
        INSERT_CURSOR = "INSERT INTO event_cursors (name, seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING";
        /// Moves a consumer's cursor, only from where the caller saw it.
        MOVE_CURSOR = "UPDATE event_cursors SET seq = $1, after_endpoint = $2 \
             WHERE name = $3 AND seq = $4 AND after_endpoint = $5";
        /// A pending delivery, due at `$4`.
        INSERT_DELIVERY = "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_seq, status, attempts, \
             next_attempt_at, lease_until, lease_token, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, 0, NULL, $5)";
    }
}
