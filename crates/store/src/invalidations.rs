//! Telling other replicas what changed: every mutation of what replicas cache sends a PostgreSQL
//! `NOTIFY` inside its own transaction, so the notice goes out exactly when the change commits
//! (and never when it does not). SQLite has one process per database: nobody to tell.

use sqlx::postgres::PgListener;

use crate::{Backend, Store, StoreError};

/// The channel every replica listens on.
pub const INVALIDATION_CHANNEL: &str = "integrations_invalidations";

/// The payload of a liveness probe: proves the channel still delivers, invalidates nothing.
const PING: &str = "ping";

/// What a committed mutation made stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Anything about one tenant (traits, allowlist, installations, configs, existence).
    Tenant(String),
    /// One API key.
    Key(String),
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Self::Tenant(id) => format!("t:{id}"),
            Self::Key(id) => format!("k:{id}"),
        }
    }
}

/// What a listener heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A change committed by some replica.
    Change(Change),
    /// A liveness probe.
    Ping,
    /// A payload this version does not know: treat everything as stale.
    Unknown,
}

fn decode(payload: &str) -> Heard {
    match payload.split_once(':') {
        _ if payload == PING => Heard::Ping,
        Some(("t", id)) => Heard::Change(Change::Tenant(id.to_owned())),
        Some(("k", id)) => Heard::Change(Change::Key(id.to_owned())),
        _ => Heard::Unknown,
    }
}

/// Hears every replica's changes.
pub struct InvalidationListener {
    listener: PgListener,
}

impl InvalidationListener {
    /// The next notice; `None` when the connection dropped and notices may have been missed.
    pub async fn next(&mut self) -> Result<Option<Heard>, StoreError> {
        Ok(self
            .listener
            .try_recv()
            .await?
            .map(|notification| decode(notification.payload())))
    }
}

/// Sends `change` to every replica when `tx` commits (PostgreSQL only).
pub(crate) async fn notify_on_commit(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    change: &Change,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query(sql::postgres::NOTIFY)
            .bind(INVALIDATION_CHANNEL)
            .bind(change.encode())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Sends a liveness probe on the invalidation channel (PostgreSQL only).
    pub async fn ping_invalidations(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query(sql::postgres::NOTIFY)
                .bind(INVALIDATION_CHANNEL)
                .bind(PING)
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

/// Invalidations' statements.
pub(crate) mod sql {
    /// PostgreSQL's notifications.
    pub(crate) mod postgres {
        statements! {
            /// Sends `$2` on channel `$1` when the transaction commits.
            NOTIFY = "SELECT pg_notify($1, $2)";
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_reads_back_as_itself() {
        for change in [Change::Tenant("acme".into()), Change::Key("0a1b".into())] {
            assert_eq!(decode(&change.encode()), Heard::Change(change));
        }
        assert_eq!(decode(PING), Heard::Ping);
        assert_eq!(decode("x:1"), Heard::Unknown);
    }
}
