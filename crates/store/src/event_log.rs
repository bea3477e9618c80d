//! The normalized event log: appends (tenant-emitted, lifecycle, and from stored webhooks) and
//! retention; reading it is `event_reads`.
//!
//! Every append takes the log's lock first (an advisory lock on PostgreSQL; SQLite has one writer
//! anyway), so events commit in `seq` order: a reader that saw `seq` n will never later find an
//! event below n. Consumers can therefore follow the log with a cursor alone.

use std::collections::HashSet;

use serde_json::Value;
use sqlx::Row;

use crate::multi_row::power_of_two_chunks;
use crate::{now_unix, Backend, Store, StoreError};

/// Key of the PostgreSQL advisory lock that orders appends to the log.
const EVENT_LOG_LOCK: i64 = 0x696e_7465_6776_6e74;

/// An event to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Our id (`evt_…`), unique across the deployment.
    pub id: String,
    /// Whose event it is.
    pub tenant_id: String,
    /// The plugin it came from or is about; `None` for events the tenant emitted.
    pub plugin: Option<String>,
    /// `jira.issue_created`, `plugin.installed`, or the tenant's own type.
    pub event_type: String,
    /// When it happened, unix milliseconds.
    pub occurred_at: i64,
    /// The event's data.
    pub data: EventData,
    /// The tenant's `Idempotency-Key`, for events it emitted.
    pub idempotency_key: Option<String>,
}

/// An event's data as appended.
#[derive(Clone, Debug, PartialEq)]
pub enum EventData {
    /// JSON stored with the event.
    Json(Value),
    /// The body of the stored webhook with this id, which is JSON. Read back from the webhook's
    /// row, so that ingest writes each body once; retention removes a webhook only after its
    /// events.
    WebhookBody(String),
}

impl EventData {
    /// The `data` and `webhook_id` columns: an event that refers to its webhook stores no data.
    pub(crate) fn columns(&self) -> (String, Option<&str>) {
        match self {
            Self::Json(value) => (value.to_string(), None),
            Self::WebhookBody(webhook_id) => (String::new(), Some(webhook_id)),
        }
    }
}

/// An event as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Position in the log; the cursor readers keep.
    pub seq: i64,
    /// Our id.
    pub id: String,
    /// Whose event it is.
    pub tenant_id: String,
    /// The plugin, if any.
    pub plugin: Option<String>,
    /// The event type.
    pub event_type: String,
    /// When it happened, unix milliseconds.
    pub occurred_at: i64,
    /// The event's data, as stored JSON text.
    pub data: String,
}

/// A stored webhook not yet turned into events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingWebhookDelivery {
    /// The webhook event's id.
    pub id: String,
    /// The tenant it was addressed to.
    pub tenant_id: String,
    /// The plugin that verified it.
    pub plugin: String,
    /// The event name the plugin found at verification.
    pub event_type: Option<String>,
    /// The raw body.
    pub payload: Vec<u8>,
    /// Arrival, unix seconds.
    pub received_at: i64,
}

/// What a retention sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Processed webhook deliveries (their delivery ids stop deduplicating).
    pub webhooks: u64,
    /// Events.
    pub events: u64,
}

impl Store {
    /// Appends an event the tenant emitted. With an idempotency key already used by this tenant,
    /// nothing is appended and the earlier event's id comes back: `(id, true)`.
    pub async fn append_tenant_event(&self, event: &NewEvent) -> Result<(String, bool), StoreError> {
        // SQLite: on the writer thread, in its next transaction.
        if let Some(appended) = self.group_commit().append_tenant_event(event.clone()).await {
            return appended;
        }
        let mut tx = self.pool.begin().await?;
        lock_log(self.backend, &mut tx).await?;
        if let Some(key) = &event.idempotency_key {
            let existing = sqlx::query(sql::IDEMPOTENT_EVENT)
                .bind(&event.tenant_id)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                return Ok((row.get(0), true));
            }
        }
        if !insert_event_of_existing_tenant(&mut tx, event).await? {
            return Err(StoreError::UnknownTenant);
        }
        tx.commit().await?;
        Ok((event.id.clone(), false))
    }

    /// The oldest stored webhooks not yet turned into events, received before `received_before`
    /// (unix seconds).
    pub async fn pending_webhooks(
        &self,
        limit: i64,
        received_before: i64,
    ) -> Result<Vec<PendingWebhookDelivery>, StoreError> {
        let rows = sqlx::query(sql::PENDING_WEBHOOKS)
            .bind(limit)
            .bind(received_before)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingWebhookDelivery {
                id: r.get(0),
                tenant_id: r.get(1),
                plugin: r.get(2),
                event_type: r.get(3),
                payload: r.get(4),
                received_at: r.get(5),
            })
            .collect())
    }

    /// Appends each webhook's events and takes it out of the backlog, in one transaction; a webhook
    /// another replica processed meanwhile is skipped with its events. Returns how many webhooks
    /// this call processed.
    ///
    /// An event that carries a webhook's body (`EventData::WebhookBody`) must take its id from
    /// that webhook (as the event log does), or retention, which goes by id, could remove the
    /// webhook before the event.
    pub async fn record_processed_webhooks(&self, processed: &[(String, Vec<NewEvent>)]) -> Result<usize, StoreError> {
        // SQLite: on the writer thread, in its next transaction.
        if let Some(recorded) = self.group_commit().record_processed(processed.to_vec()).await {
            return recorded;
        }
        let mut tx = self.pool.begin().await?;
        lock_log(self.backend, &mut tx).await?;
        // The batch leaves the backlog, and its events enter the log, in a few multi-row
        // statements rather than a round trip per webhook and per event made while holding the
        // log's lock, which every append (on every replica) waits for.
        let ids: Vec<&str> = processed.iter().map(|(id, _)| id.as_str()).collect();
        let mut taken: HashSet<String> = HashSet::with_capacity(ids.len());
        for chunk in power_of_two_chunks(&ids) {
            let mut query = sqlx::query(sql::postgres::OUT_OF_BACKLOG.get(chunk.len()));
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *tx).await? {
                taken.insert(row.try_get(0)?);
            }
        }
        let count = taken.len();
        // One another replica took first is skipped with its events.
        let events: Vec<&NewEvent> = processed
            .iter()
            .filter(|(id, _)| taken.remove(id))
            .flat_map(|(_, events)| events)
            .collect();
        let now = now_unix();
        for chunk in power_of_two_chunks(&events) {
            let mut query = sqlx::query(sql::postgres::INSERT_EVENTS.get(chunk.len()));
            for event in chunk {
                query = bind_event(query, event, now);
            }
            // Rows take their `seq` in the order they are listed, so a webhook's events stay in order.
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(count)
    }

    /// Deletes events, and processed webhooks, older than `before` (unix seconds).
    ///
    /// Both go by id, which is time-ordered, through their primary indexes: an index on a time
    /// column would cost every ingest commit a page write. A webhook's events take their ids from
    /// the webhook's (the host's convention), so they fall on the same side of the cut as it does:
    /// no event outlives the webhook whose body it carries. A webhook still waiting to be
    /// processed is kept, however old.
    pub async fn expire_events(&self, before: i64) -> Result<Expired, StoreError> {
        let cut = ids_before(before);
        let _turn = self.write_turn().await;
        // Under the log's lock: no webhook is processed between the two deletes.
        let mut tx = self.pool.begin().await?;
        lock_log(self.backend, &mut tx).await?;
        let events = sqlx::query(sql::EXPIRE_EVENTS)
            .bind(&cut)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let webhooks = sqlx::query(sql::EXPIRE_WEBHOOKS)
            .bind(&cut)
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Expired { webhooks, events })
    }
}

/// The lowest id made at `before` (unix seconds) or later: event and webhook ids are `evt_`, then
/// the time they were made in milliseconds as 12 hex digits, then more.
fn ids_before(before: i64) -> String {
    let millis = before.max(0).saturating_mul(1000) as u64;
    format!("evt_{:012x}", millis & 0xffff_ffff_ffff)
}

/// Takes the log's lock for the rest of the transaction (PostgreSQL; SQLite has one writer).
pub(crate) async fn lock_log(backend: Backend, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query(sql::postgres::LOCK_LOG)
            .bind(EVENT_LOG_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Appends one event; the caller holds the log's lock.
pub(crate) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &NewEvent,
) -> Result<(), StoreError> {
    bind_event(sqlx::query(sql::INSERT_EVENT), event, now_unix())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends one event unless its tenant is gone (PostgreSQL); the caller holds the log's lock.
/// Returns whether it was appended.
///
/// PostgreSQL's `events` has no foreign key (migration 0010), so the tenant is checked here, and
/// its row share-locked until commit: a tenant deletion, which locks that row first, either waits
/// for this event and deletes it, or has committed and leaves nothing to append to. The
/// pipeline's appends need no check: they come from webhooks it takes out of the backlog, which a
/// tenant deletion empties of the tenant's webhooks. SQLite's `events` has its foreign key.
pub(crate) async fn insert_event_of_existing_tenant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &NewEvent,
) -> Result<bool, StoreError> {
    let appended = bind_event(sqlx::query(sql::postgres::INSERT_EVENT_OF_TENANT), event, now_unix())
        .execute(&mut **tx)
        .await?;
    Ok(appended.rows_affected() == 1)
}

/// Binds one row of an event insert (`into_events!`): the event, created at `now`.
fn bind_event<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    event: &'q NewEvent,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let (data, webhook_id) = event.data.columns();
    query
        .bind(&event.id)
        .bind(&event.tenant_id)
        .bind(&event.plugin)
        .bind(&event.event_type)
        .bind(event.occurred_at)
        .bind(data)
        .bind(&event.idempotency_key)
        .bind(now)
        .bind(webhook_id)
}

/// The start of every event insert: the columns `bind_event` binds (and the SQLite writer's
/// `append_event`), in their order.
macro_rules! into_events {
    () => {
        "INSERT INTO events (id, tenant_id, plugin, type, occurred_at, data, idempotency_key, created_at, webhook_id)"
    };
}

/// Appending and expiring.
pub(crate) mod sql {
    statements! {
        /// One event (the SQLite writer's appends and both backends' lifecycle events).
        INSERT_EVENT = concat!(into_events!(), " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        /// The tenant's event with this idempotency key.
        IDEMPOTENT_EVENT = "SELECT id FROM events WHERE tenant_id = $1 AND idempotency_key = $2";
        /// The oldest stored webhooks not yet turned into events, received before `$2`.
        PENDING_WEBHOOKS = "SELECT w.id, w.tenant_id, w.plugin, w.event_type, w.payload, w.received_at \
             FROM webhook_backlog b JOIN webhook_events w ON w.id = b.id \
             WHERE w.received_at < $2 ORDER BY b.id LIMIT $1";
        /// Events made before the id `$1`.
        EXPIRE_EVENTS = "DELETE FROM events WHERE id < $1";
        /// Processed webhooks made before the id `$1`. Ids made before ids were time-ordered (`evt_`
        /// and 24 random hex digits) sort anywhere: those webhooks go by arrival alone (their
        /// events carry copies of their bodies).
        EXPIRE_WEBHOOKS = "DELETE FROM webhook_events WHERE (id < $1 OR length(id) <> 36) AND received_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM webhook_backlog b WHERE b.id = webhook_events.id)";
    }

    /// PostgreSQL's lock, tenant check and multi-row statements.
    pub(crate) mod postgres {
        use crate::multi_row::{placeholders, row_placeholders};

        statements! {
            /// The log's lock, until the transaction ends.
            LOCK_LOG = "SELECT pg_advisory_xact_lock($1)";
            /// One event, unless its tenant is gone (whose row stays share-locked until commit).
            INSERT_EVENT_OF_TENANT = concat!(
                into_events!(),
                " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2 FOR KEY SHARE)"
            );
            @sized:
            /// Webhooks out of the backlog, those still in it returned.
            OUT_OF_BACKLOG = |rows| format!(
                "DELETE FROM webhook_backlog WHERE id IN ({}) RETURNING id",
                placeholders(1, rows)
            );
            /// Events, in the order listed.
            INSERT_EVENTS = |rows| format!(concat!(into_events!(), " VALUES {}"), row_placeholders(rows, 9));
        }
    }
}
