//! Persistence on SQLite (embedded default, a file) or PostgreSQL.
//!
//! Queries use `$N` placeholders, which both drivers accept, through sqlx's `Any` driver; SQLite's
//! writes of ingest and outbound delivery go through the writer thread's own rusqlite connection
//! (`sqlite_writer`), PostgreSQL's ingest through a pool of the native driver (`postgres_writer`,
//! which binds arrays). The schema differs only in column types, so each backend has its own
//! migrations folder. Every statement is declared in a `sql` module (see `statements`) and
//! prepared by a test against each backend's migrated schema.

#[macro_use]
mod statements;

mod batch;
mod deliveries;
mod event_log;
mod event_reads;
mod group_commit;
mod idempotency;
mod ingest;
mod installations;
mod invalidations;
mod jobs;
mod multi_row;
mod postgres_writer;
mod replicas;
mod sqlite_checkpointer;
mod sqlite_presence;
mod sqlite_writer;
mod tenant_limits;
mod tenants;
mod webhook_deliveries;
mod webhook_delivery_pages;
mod webhook_endpoints;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

pub use deliveries::{
    AttemptRecord, DeliveryJob, DeliveryNext, EndpointHealth, NewDelivery, RecordedAttempt, StoredAttempt,
};
pub use event_log::{EventData, Expired, NewEvent, PendingWebhookDelivery, StoredEvent};
pub use idempotency::{IdempotencyClaim, StoredResponse};
pub use installations::{Installation, InstallationState, SecretRow};
pub use invalidations::{Change, Heard, InvalidationListener, INVALIDATION_CHANNEL};
pub use jobs::{Job, JobClaim, JobState, NewJob};
pub use tenant_limits::{RateLimit, TenantLimits};
pub use tenants::{ApiKeyRecord, DataKeyRecord, Tenant};
pub use webhook_deliveries::{NewWebhookDelivery, StoredWebhookDelivery};
pub use webhook_delivery_pages::{DeliveryPosition, StoredWebhookDeliveryPage, WebhookDeliveryQuery};
pub use webhook_endpoints::{EventRoute, WebhookEndpoint, WebhookEndpointSettings};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to create exists already.
    #[error("already exists")]
    Conflict,
    /// The tenant the rows belong to does not exist (deleted meanwhile).
    #[error("the tenant does not exist")]
    UnknownTenant,
    /// The database URL names no supported backend (an in-memory SQLite database is none: the
    /// store runs on a file, in tests as in production).
    #[error("unsupported database URL (expected sqlite://<file> or postgres://)")]
    UnsupportedUrl,
    /// A stored JSON document could not be read.
    #[error("stored document is corrupt: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The store's background writer has stopped (the runtime is shutting down).
    #[error("the store is shutting down")]
    Unavailable,
    /// The webhook writer's own SQLite connection failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The lock files beside a SQLite database could not be used.
    #[error("cannot lock beside the database file: {0}")]
    Presence(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(error),
        }
    }
}

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The database handle shared by the service.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time; queueing writers here avoids its busy-wait back-off,
    /// which otherwise turns contention into long latency tails.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Where a PostgreSQL listener connects (invalidations); `None` on SQLite.
    postgres_url: Option<String>,
    /// Where the webhook writer writes: the SQLite file (its own connection) or PostgreSQL's
    /// native pool (arrays bound, which the `Any` driver cannot).
    ingest: group_commit::Target,
    /// The webhook writer, started on first use (inside the runtime that uses the store).
    group_commit: Arc<std::sync::OnceLock<group_commit::GroupCommit>>,
    /// For bookkeeping whose loss on a power failure only repeats work the service does at least
    /// once anyway (leases, attempt records, consumer cursors, job claims): on SQLite a
    /// connection with `synchronous = NORMAL` (WAL: no fsync per commit, still durable across a
    /// process crash); on PostgreSQL the pool itself.
    relaxed: AnyPool,
    /// This store's presence among the SQLite file's users (see `sqlite_presence`).
    _presence: Option<Arc<sqlite_presence::Presence>>,
}

impl std::fmt::Debug for Store {
    // The PostgreSQL URL may carry a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `sqlite://…` (a file, created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            if sqlite_file(url).is_none() {
                return Err(StoreError::UnsupportedUrl);
            }
            let url = if rest.contains("mode=") {
                url.to_owned()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let max_connections = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            // A SQLite connection is a file handle on a thread of its own, with no peer to lose:
            // pinging it on every checkout was a round trip to that thread per query.
            .test_before_acquire(backend == Backend::Postgres)
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            // Write-ahead logging: one fsync per commit (synchronous stays FULL, so a commit is
            // durable when it returns), and readers never wait for the writer. The mode is kept in
            // the file, so setting it once per start is enough.
            sqlx::query(sql::sqlite::WAL).execute(&pool).await?;
        }
        let relaxed = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            sqlx::query(sql::sqlite::RELAXED)
                                .execute(&mut *connection)
                                .await
                                .map(drop)
                        })
                    })
                    .connect_with(AnyConnectOptions::from_str(&url)?)
                    .await?
            }
            Backend::Postgres => pool.clone(),
        };
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let (ingest, presence) = match (backend, sqlite_file(&url)) {
            (Backend::Sqlite, Some(file)) => {
                let presence = Arc::new(join_sqlite_users(&file, &relaxed).await?);
                let turn = writer.clone();
                (group_commit::Target::Sqlite { file, turn }, Some(presence))
            }
            (Backend::Sqlite, None) => return Err(StoreError::UnsupportedUrl),
            (Backend::Postgres, _) => (group_commit::Target::postgres(&url)?, None),
        };
        let postgres_url = (backend == Backend::Postgres).then_some(url);
        Ok(Self {
            pool,
            backend,
            writer,
            postgres_url,
            ingest,
            group_commit: Arc::default(),
            relaxed,
            _presence: presence,
        })
    }

    /// Runs `work` on the SQLite writer thread, in the transaction of its next batch, once that
    /// has committed (SQLite only: PostgreSQL has no writer thread).
    pub(crate) async fn on_writer<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        debug_assert_eq!(self.backend, Backend::Sqlite);
        self.group_commit()
            .run_on_writer(work)
            .await
            .unwrap_or(Err(StoreError::Unavailable))
    }

    /// Held for the duration of a write through the pool (SQLite only).
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// Applies the backend's migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for tests that inspect stored rows.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes all connections.
    pub async fn close(&self) {
        self.pool.close().await;
        if let group_commit::Target::Postgres(writers) = &self.ingest {
            writers.close().await;
        }
    }
}

/// Joins the SQLite file's users. The first of them frees the leases that runs which died left
/// in it (deliveries being attempted, jobs running), so a restart after a crash takes them up at
/// once; a store that is not alone leaves them to the live stores that hold them.
async fn join_sqlite_users(file: &std::path::Path, pool: &AnyPool) -> Result<sqlite_presence::Presence, StoreError> {
    let path = file.to_owned();
    let joining = tokio::task::spawn_blocking(move || sqlite_presence::join(&path))
        .await
        .map_err(|_| StoreError::Unavailable)?
        .map_err(|error| StoreError::Presence(error.to_string()))?;
    if joining.alone {
        // Tables that do not exist yet (a new file, migrations still to run) hold no leases.
        let tables: Vec<String> = sqlx::query_scalar(sql::sqlite::LEASE_TABLES).fetch_all(pool).await?;
        // What a dead run held: deliveries it was attempting, jobs it was running.
        let leases = [
            ("webhook_deliveries", sql::sqlite::FREE_DELIVERY_LEASES),
            ("jobs", sql::sqlite::FREE_JOB_LEASES),
        ];
        for (table, free) in leases {
            if !tables.iter().any(|t| t == table) {
                continue;
            }
            let freed = sqlx::query(free).execute(pool).await?.rows_affected();
            if freed > 0 {
                tracing::info!(table, freed, "freed leases held by a run that stopped before this one");
            }
        }
    }
    Ok(joining.finish())
}

/// The file a `sqlite:` URL names; `None` for an in-memory database, which the store refuses.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:") && !url.contains("mode=memory")).then(|| path.into())
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The store's own statements: opening a SQLite file.
pub(crate) mod sql {
    statements! {}

    /// Opening a SQLite file.
    pub(crate) mod sqlite {
        statements! {
            /// Write-ahead logging, kept in the file.
            WAL = "PRAGMA journal_mode = WAL";
            /// No fsync per commit, for the relaxed connection.
            RELAXED = "PRAGMA synchronous = NORMAL";
            /// Which of the tables holding leases exist (none before the migrations).
            LEASE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('webhook_deliveries', 'jobs')";
            /// Frees the leases of deliveries being attempted.
            FREE_DELIVERY_LEASES = "UPDATE webhook_deliveries SET lease_until = 0, lease_token = NULL \
                 WHERE status = 'pending' AND lease_until > 0";
            /// Frees the leases of jobs running.
            FREE_JOB_LEASES = "UPDATE jobs SET lease_until = 0 WHERE state = 'running'";
        }
    }

    /// Nothing of PostgreSQL's here.
    pub(crate) mod postgres {
        statements! {}
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
