//! Pages of the webhook deliveries a tenant's vendors sent, newest first, bounded by a count and
//! by payload bytes.
//!
//! A page is read in two steps so that no more than its byte budget is ever loaded: the positions
//! and payload lengths of the candidate rows first (lengths come from the row header, not the
//! payload), then the payloads of the rows that fit.

use sqlx::Row;

use crate::multi_row::in_lists;
use crate::webhook_deliveries::StoredWebhookDelivery;
use crate::{Store, StoreError};

/// Where an event sits in the newest-first order; a page continues after such a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryPosition {
    /// Arrival time, unix seconds.
    pub received_at: i64,
    /// Our event id, which breaks ties between events of the same second.
    pub id: String,
}

/// Which events a page holds.
#[derive(Clone, Copy, Debug)]
pub struct WebhookDeliveryQuery<'a> {
    /// Only this plugin's deliveries, when set.
    pub plugin: Option<&'a str>,
    /// Only events after (older than) this position, when set.
    pub after: Option<&'a DeliveryPosition>,
    /// Most events on the page.
    pub limit: i64,
    /// Most payload bytes on the page; the first event is returned even when it alone exceeds it.
    pub max_payload_bytes: u64,
}

/// A page of deliveries, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWebhookDeliveryPage {
    /// The events.
    pub deliveries: Vec<StoredWebhookDelivery>,
    /// The last event's position when more events may follow, `None` at the end.
    pub next: Option<DeliveryPosition>,
}

impl Store {
    /// A page of a tenant's webhook deliveries, newest first, within `query`'s count and byte budget.
    pub async fn webhook_delivery_page(
        &self,
        tenant_id: &str,
        query: &WebhookDeliveryQuery<'_>,
    ) -> Result<StoredWebhookDeliveryPage, StoreError> {
        let candidates = self.page_candidates(tenant_id, query).await?;
        let page_size = usize::try_from(query.limit.max(1)).unwrap_or(usize::MAX);
        let sizes = candidates
            .iter()
            .take(page_size)
            .map(|(position, length)| (position, *length));
        let chosen = within_budget(sizes, query.max_payload_bytes);
        // One candidate beyond the limit was read to learn whether the listing goes on.
        let more = chosen.len() < candidates.len();
        let next = chosen.last().filter(|_| more).map(|last| (*last).clone());
        let ids: Vec<&str> = chosen.iter().map(|position| position.id.as_str()).collect();
        let events = self.events_by_id(tenant_id, &ids).await?;
        Ok(StoredWebhookDeliveryPage {
            deliveries: events,
            next,
        })
    }

    /// Positions and payload lengths of up to `limit + 1` events of the page, newest first.
    async fn page_candidates(
        &self,
        tenant_id: &str,
        query: &WebhookDeliveryQuery<'_>,
    ) -> Result<Vec<(DeliveryPosition, u64)>, StoreError> {
        let limit = query.limit.max(1).saturating_add(1);
        let sql = if query.after.is_some() {
            sql::CANDIDATES_AFTER
        } else {
            sql::CANDIDATES
        };
        let mut statement = sqlx::query(sql).bind(tenant_id).bind(query.plugin.unwrap_or_default());
        if let Some(position) = query.after {
            statement = statement.bind(position.received_at).bind(&position.id);
        }
        let rows = statement.bind(limit).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let length: i64 = r.get(2);
                let position = DeliveryPosition {
                    id: r.get(0),
                    received_at: r.get(1),
                };
                (position, u64::try_from(length).unwrap_or_default())
            })
            .collect())
    }

    /// The tenant's events with these ids, newest first.
    async fn events_by_id(&self, tenant_id: &str, ids: &[&str]) -> Result<Vec<StoredWebhookDelivery>, StoreError> {
        let mut rows = Vec::with_capacity(ids.len());
        for list in in_lists(ids) {
            let mut statement = sqlx::query(sql::BY_ID.get(list.size)).bind(tenant_id);
            for id in list.ids() {
                statement = statement.bind(*id);
            }
            rows.extend(statement.fetch_all(&self.pool).await?);
        }
        Ok(rows
            .iter()
            .map(|r| StoredWebhookDelivery {
                id: r.get(0),
                plugin: r.get(1),
                delivery_id: r.get(2),
                event_type: r.get(3),
                payload: r.get(4),
                received_at: r.get(5),
            })
            .collect())
    }
}

/// The first items whose sizes fit in `max_bytes` together, and always the first: how every page
/// a tenant reads is cut (webhook deliveries, events, jobs).
pub(crate) fn within_budget<T>(sizes: impl IntoIterator<Item = (T, u64)>, max_bytes: u64) -> Vec<T> {
    let mut used = 0u64;
    let mut chosen = Vec::new();
    for (item, size) in sizes {
        if !chosen.is_empty() && used.saturating_add(size) > max_bytes {
            break;
        }
        used = used.saturating_add(size);
        chosen.push(item);
    }
    chosen
}

/// A page of webhook events: the tenant's (`$1`), of one plugin unless `$2` is empty, newest
/// first; after a position (`$3`, `$4`) when there is one.
pub(crate) mod sql {
    use crate::multi_row::placeholders;

    /// The candidates' filter.
    macro_rules! filter {
        () => {
            "SELECT id, received_at, CAST(length(payload) AS BIGINT) FROM webhook_events \
             WHERE tenant_id = $1 AND ($2 = '' OR plugin = $2)"
        };
    }

    statements! {
        /// The first page's candidates: positions and payload lengths, `$3` at most.
        CANDIDATES = concat!(filter!(), " ORDER BY received_at DESC, id DESC LIMIT $3");
        /// A later page's candidates, after `($3, $4)`: `$5` at most. Spelled out rather than as a
        /// row-value comparison `(received_at, id) < ($3, $4)`, which older SQLite versions lack;
        /// both databases use the (tenant_id, …) index prefix either way.
        CANDIDATES_AFTER = concat!(
            filter!(),
            " AND (received_at < $3 OR (received_at = $3 AND id < $4)) ORDER BY received_at DESC, id DESC LIMIT $5"
        );
        @sized:
        /// The tenant's webhook events with these ids, newest first.
        BY_ID = |ids| format!(
            "SELECT id, plugin, delivery_id, event_type, payload, received_at FROM webhook_events \
             WHERE tenant_id = $1 AND id IN ({}) ORDER BY received_at DESC, id DESC",
            placeholders(2, ids)
        );
    }
}
