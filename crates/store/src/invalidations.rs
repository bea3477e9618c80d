//! Cache invalidations between replicas: PostgreSQL `NOTIFY` on one channel. SQLite has one
//! process per database, so there is nobody to tell.

use sqlx::postgres::PgListener;

use crate::{Backend, Store, StoreError};

/// The channel every replica listens on.
pub const INVALIDATION_CHANNEL: &str = "integrations_invalidations";

/// Hears other replicas' invalidations.
pub struct InvalidationListener {
    listener: PgListener,
}

impl InvalidationListener {
    /// The next payload; `None` when the connection dropped and notifications may have been missed.
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .listener
            .try_recv()
            .await?
            .map(|notification| notification.payload().to_owned()))
    }
}

impl Store {
    /// Tells every replica (this one included) that what `payload` names has changed.
    pub async fn publish_invalidation(&self, payload: &str) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(INVALIDATION_CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A listener for invalidations, or `None` on SQLite.
    pub async fn invalidation_listener(&self) -> Result<Option<InvalidationListener>, StoreError> {
        let Some(url) = &self.postgres_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(INVALIDATION_CHANNEL).await?;
        Ok(Some(InvalidationListener { listener }))
    }
}
