//! Outbound deliveries: one event to one endpoint. Written by the log's fan-out consumer in the
//! transaction that advances its cursor (`fanout`), claimed by dispatchers with a lease
//! (`claims`: a conditional UPDATE, so two replicas never attempt the same delivery at once),
//! loaded with their endpoints and events (here), and every attempt recorded with the delivery's
//! next state (`attempts`).

mod attempts;
mod claims;
mod fanout;

use sqlx::Row;

#[cfg(test)]
pub(crate) use attempts::sql as attempts_sql;
#[cfg(test)]
pub(crate) use claims::sql as claims_sql;
#[cfg(test)]
pub(crate) use fanout::sql as fanout_sql;

pub use attempts::{AttemptRecord, DeliveryNext, EndpointHealth, RecordedAttempt, StoredAttempt};

use crate::event_reads::{event_from_row, event_from_row_at};
use crate::multi_row::{in_lists, placeholders};
use crate::webhook_endpoints::endpoint_from_row;
use crate::{Backend, Store, StoreError, StoredEvent, WebhookEndpoint};

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

impl Store {
    /// The delivery with its endpoint and event; `None` when any of them is gone.
    pub async fn delivery_job(&self, delivery_id: i64) -> Result<Option<DeliveryJob>, StoreError> {
        let Some(row) = sqlx::query(sql::DELIVERY)
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let (tenant, endpoint_id, seq, attempts): (String, String, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let endpoint = sqlx::query(crate::webhook_endpoints::sql::ENDPOINT)
            .bind(&tenant)
            .bind(&endpoint_id)
            .fetch_optional(&self.pool)
            .await?;
        let event = match self.backend {
            Backend::Sqlite => sql::sqlite::EVENT,
            Backend::Postgres => sql::postgres::EVENT,
        };
        let event = sqlx::query(event).bind(seq).fetch_optional(&self.pool).await?;
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

    /// The deliveries with their endpoints and events, in two queries however many there are (up
    /// to 256); one whose endpoint or event is gone is left out.
    pub async fn delivery_jobs(&self, delivery_ids: &[i64]) -> Result<Vec<DeliveryJob>, StoreError> {
        let jobs = match self.backend {
            Backend::Sqlite => &sql::sqlite::JOBS,
            Backend::Postgres => &sql::postgres::JOBS,
        };
        let mut rows = Vec::with_capacity(delivery_ids.len());
        for list in in_lists(delivery_ids) {
            let mut query = sqlx::query(jobs.get(list.size));
            for id in list.ids() {
                query = query.bind(id);
            }
            rows.extend(query.fetch_all(&self.pool).await?);
        }
        let mut endpoint_ids: Vec<String> = rows.iter().map(|r| r.get::<String, _>(2)).collect();
        endpoint_ids.sort();
        endpoint_ids.dedup();
        let mut endpoints = std::collections::HashMap::new();
        for list in in_lists(&endpoint_ids) {
            let mut query = sqlx::query(sql::ENDPOINTS.get(list.size));
            for id in list.ids() {
                query = query.bind(id);
            }
            for row in query.fetch_all(&self.pool).await? {
                let endpoint = endpoint_from_row(&row)?;
                endpoints.insert(endpoint.id.clone(), endpoint);
            }
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

    /// The bytes of event data each delivery brings into memory when loaded (its event's data,
    /// or the body of the webhook the event refers to), found without reading the data; a
    /// delivery whose event is gone is left out.
    pub async fn delivery_sizes(&self, delivery_ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut sizes = Vec::with_capacity(delivery_ids.len());
        for list in in_lists(delivery_ids) {
            let mut query = sqlx::query(sql::SIZES.get(list.size));
            for id in list.ids() {
                query = query.bind(id);
            }
            let rows = query.fetch_all(&self.pool).await?;
            sizes.extend(rows.iter().map(|row| (row.get(0), row.get(1))));
        }
        Ok(sizes)
    }
}

/// Loading deliveries.
pub(crate) mod sql {
    use super::placeholders;

    statements! {
        /// A delivery's tenant, endpoint, event and attempts so far.
        DELIVERY = "SELECT tenant_id, endpoint_id, event_seq, attempts FROM webhook_deliveries WHERE id = $1";
        @sized:
        /// The endpoints with these ids.
        ENDPOINTS = |ids| format!(
            concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE id IN ({})"),
            placeholders(1, ids)
        );
        /// The bytes of event data each delivery brings into memory when loaded.
        SIZES = |ids| format!(
            concat!(
                "SELECT d.id, CASE WHEN e.webhook_id IS NULL THEN octet_length(e.data) \
                 ELSE COALESCE(octet_length(w.payload), 4) END \
                 FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq ",
                webhook_of_event!(),
                " WHERE d.id IN ({})"
            ),
            placeholders(1, ids)
        );
    }

    /// SQLite's event columns.
    pub(crate) mod sqlite {
        use super::placeholders;

        statements! {
            /// The event at `seq`.
            EVENT = concat!("SELECT ", event_columns!(sqlite), " FROM events e ", webhook_of_event!(), " WHERE e.seq = $1");
            @sized:
            /// Deliveries with their attempts, endpoints and events.
            JOBS = |ids| format!(
                concat!(
                    "SELECT d.id, d.attempts, d.endpoint_id, ", event_columns!(sqlite),
                    " FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq ", webhook_of_event!(),
                    " WHERE d.id IN ({})"
                ),
                placeholders(1, ids)
            );
        }
    }

    /// PostgreSQL's event columns.
    pub(crate) mod postgres {
        use super::placeholders;

        statements! {
            /// The event at `seq`.
            EVENT = concat!("SELECT ", event_columns!(postgres), " FROM events e ", webhook_of_event!(), " WHERE e.seq = $1");
            @sized:
            /// Deliveries with their attempts, endpoints and events.
            JOBS = |ids| format!(
                concat!(
                    "SELECT d.id, d.attempts, d.endpoint_id, ", event_columns!(postgres),
                    " FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq ", webhook_of_event!(),
                    " WHERE d.id IN ({})"
                ),
                placeholders(1, ids)
            );
        }
    }
}
