//! Reading the normalized event log: a tenant's events after a cursor (the events API), every
//! tenant's for the log's consumers with their cursors, and the positions a replay sends again.

use sqlx::Row;

use crate::webhook_delivery_pages::within_budget;
use crate::{Backend, Store, StoreError, StoredEvent};

impl Store {
    /// A tenant's events after `after`, oldest first: at most `limit` of them, and no more than
    /// `max_data_bytes` of their data (the first event is returned even when it alone exceeds it).
    ///
    /// Read in two steps so that no more than the budget is ever loaded: the positions and data
    /// sizes of the candidates first (sizes from the row headers), then the events that fit. The
    /// log commits in `seq` order, so no event can appear between the two among those seen.
    pub async fn tenant_events_after(
        &self,
        tenant_id: &str,
        after: i64,
        limit: i64,
        max_data_bytes: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sizes = sqlx::query(sql::TENANT_SIZES_AFTER)
            .bind(tenant_id)
            .bind(after)
            .bind(limit.max(1))
            .fetch_all(&self.pool)
            .await?;
        let sizes = sizes.iter().map(|row| {
            let bytes: i64 = row.get(1);
            (row.get::<i64, _>(0), u64::try_from(bytes).unwrap_or_default())
        });
        let chosen = within_budget(sizes, max_data_bytes);
        let Some(last) = chosen.last() else {
            return Ok(Vec::new());
        };
        let statement = match self.backend {
            Backend::Sqlite => sql::sqlite::TENANT_EVENTS_AFTER,
            Backend::Postgres => sql::postgres::TENANT_EVENTS_AFTER,
        };
        let rows = sqlx::query(statement)
            .bind(tenant_id)
            .bind(after)
            .bind(*last)
            .bind(chosen.len() as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The position in the log of the tenant's event `id`; `None` for another tenant's event, an
    /// unknown id, or one that retention removed.
    pub async fn tenant_event_seq(&self, tenant_id: &str, id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(sql::TENANT_EVENT_SEQ)
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.get(0)))
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
        let rows = sqlx::query(sql::TENANT_EVENT_TYPES_SINCE)
            .bind(tenant_id)
            .bind(since_ms)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Every tenant's events after `after`, oldest first: for the log's consumers.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let statement = match self.backend {
            Backend::Sqlite => sql::sqlite::EVENTS_AFTER,
            Backend::Postgres => sql::postgres::EVENTS_AFTER,
        };
        let rows = sqlx::query(statement)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The highest `seq` in the log (0 when empty).
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(sql::LAST_SEQ).fetch_one(&self.pool).await?;
        Ok(row.get(0))
    }

    /// Where consumer `name` has got to (0 before its first event).
    pub async fn event_cursor(&self, name: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(sql::CURSOR).bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Moves consumer `name` forward to `seq` (never back).
    pub async fn advance_event_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(sql::ADVANCE_CURSOR)
            .bind(name)
            .bind(seq)
            .execute(&self.relaxed)
            .await?;
        Ok(())
    }
}

/// An event read with `event_columns!` first in the row.
pub(crate) fn event_from_row(row: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
    event_from_row_at(row, 0)
}

/// An event whose columns (`event_columns!`) start at `first` in the row.
pub(crate) fn event_from_row_at(row: &sqlx::any::AnyRow, first: usize) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        seq: row.get(first),
        id: row.get(first + 1),
        tenant_id: row.get(first + 2),
        plugin: row.get(first + 3),
        event_type: row.get(first + 4),
        occurred_at: row.get(first + 5),
        data: row.get(first + 6),
    })
}

/// Reading the log.
pub(crate) mod sql {
    statements! {
        /// The positions and data sizes of a tenant's events after `$2`.
        TENANT_SIZES_AFTER = concat!(
            "SELECT e.seq, CAST(COALESCE(octet_length(w.payload), octet_length(e.data)) AS BIGINT) FROM events e ",
            webhook_of_event!(),
            " WHERE e.tenant_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"
        );
        /// The position of a tenant's event.
        TENANT_EVENT_SEQ = "SELECT seq FROM events WHERE id = $1 AND tenant_id = $2";
        /// The positions and types of a tenant's events that occurred at or after `$2`.
        TENANT_EVENT_TYPES_SINCE = "SELECT seq, type FROM events WHERE tenant_id = $1 AND occurred_at >= $2 \
             AND seq > $3 ORDER BY seq LIMIT $4";
        /// The end of the log.
        LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM events";
        /// Where a consumer has got to.
        CURSOR = "SELECT seq FROM event_cursors WHERE name = $1";
        /// Moves a consumer forward, never back.
        ADVANCE_CURSOR = "INSERT INTO event_cursors (name, seq) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET seq = excluded.seq WHERE event_cursors.seq < excluded.seq";
    }

    /// Events in SQLite's dialect.
    pub(crate) mod sqlite {
        statements! {
            /// A tenant's events after `$2` up to `$3`.
            TENANT_EVENTS_AFTER = concat!(
                "SELECT ", event_columns!(sqlite), " FROM events e ", webhook_of_event!(),
                " WHERE e.tenant_id = $1 AND e.seq > $2 AND e.seq <= $3 ORDER BY e.seq LIMIT $4"
            );
            /// Every tenant's events after `$1`.
            EVENTS_AFTER = concat!(
                "SELECT ", event_columns!(sqlite), " FROM events e ", webhook_of_event!(),
                " WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
            );
        }
    }

    /// Events in PostgreSQL's dialect.
    pub(crate) mod postgres {
        statements! {
            /// A tenant's events after `$2` up to `$3`.
            TENANT_EVENTS_AFTER = concat!(
                "SELECT ", event_columns!(postgres), " FROM events e ", webhook_of_event!(),
                " WHERE e.tenant_id = $1 AND e.seq > $2 AND e.seq <= $3 ORDER BY e.seq LIMIT $4"
            );
            /// Every tenant's events after `$1`.
            EVENTS_AFTER = concat!(
                "SELECT ", event_columns!(postgres), " FROM events e ", webhook_of_event!(),
                " WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
            );
        }
    }
}
