//! Every statement the store runs, gathered so that a test prepares each of them against the
//! migrated schema of its backend (`tests/statements.rs`): a statement declared with
//! [`statements!`] is in its module's list, and a query whose text is not a declared statement
//! is refused by that test's scan of the sources.
//!
//! Each resource declares its statements in a `sql` module: `sql::all()` holds the texts both
//! databases run (`$n` placeholders, which SQLite reads by number too), `sql::sqlite::all()` and
//! `sql::postgres::all()` each backend's own.

/// Declares statements as constants (`NAME = "…";`), and under `@sized:` statements with one text
/// per power-of-two number of rows (`NAME = |rows| …;`, a [`crate::multi_row::ForRows`]), with
/// `all()`: each of them, named, every size of the sized ones included.
macro_rules! statements {
    (
        $($(#[$doc:meta])* $name:ident = $sql:expr;)*
        $(@sized: $($(#[$sized_doc:meta])* $sized:ident = $build:expr;)*)?
    ) => {
        $($(#[$doc])* pub(crate) const $name: &str = $sql;)*
        $($(
            $(#[$sized_doc])*
            pub(crate) static $sized: crate::multi_row::ForRows = crate::multi_row::ForRows::new($build);
        )*)?

        /// Each statement declared here, named, with every size of the sized ones.
        #[cfg(test)]
        #[allow(clippy::vec_init_then_push, unused_mut)]
        pub(crate) fn all() -> Vec<(String, String)> {
            let mut all: Vec<(String, String)> = Vec::new();
            $(all.push((concat!(module_path!(), "::", stringify!($name)).to_owned(), $name.to_owned()));)*
            $($(
                for text in $sized.texts() {
                    all.push((concat!(module_path!(), "::", stringify!($sized)).to_owned(), text.clone()));
                }
            )*)?
            all
        }
    };
}

/// Every statement SQLite runs, named.
#[cfg(test)]
pub(crate) fn sqlite() -> Vec<(String, String)> {
    [
        shared(),
        crate::sql::sqlite::all(),
        crate::deliveries::sql::sqlite::all(),
        crate::deliveries::claims_sql::sqlite::all(),
        crate::event_reads::sql::sqlite::all(),
        crate::sqlite_writer::sql::all(),
        crate::sqlite_checkpointer::sql::all(),
    ]
    .concat()
}

/// Every statement PostgreSQL runs, named.
#[cfg(test)]
pub(crate) fn postgres() -> Vec<(String, String)> {
    [
        shared(),
        crate::sql::postgres::all(),
        crate::deliveries::sql::postgres::all(),
        crate::deliveries::claims_sql::postgres::all(),
        crate::event_log::sql::postgres::all(),
        crate::event_reads::sql::postgres::all(),
        crate::postgres_writer::sql::all(),
        crate::webhook_endpoints::sql::postgres::all(),
        crate::tenants::sql::postgres::all(),
        crate::invalidations::sql::postgres::all(),
        crate::jobs::sql::postgres::all(),
    ]
    .concat()
}

/// The statements both backends run.
#[cfg(test)]
fn shared() -> Vec<(String, String)> {
    [
        crate::sql::all(),
        crate::deliveries::sql::all(),
        crate::deliveries::attempts_sql::all(),
        crate::deliveries::claims_sql::all(),
        crate::deliveries::fanout_sql::all(),
        crate::event_log::sql::all(),
        crate::event_reads::sql::all(),
        crate::webhook_deliveries::sql::all(),
        crate::webhook_endpoints::sql::all(),
        crate::tenants::sql::all(),
        crate::installations::sql::all(),
        crate::idempotency::sql::all(),
        crate::replicas::sql::all(),
        crate::jobs::sql::all(),
        crate::webhook_delivery_pages::sql::all(),
    ]
    .concat()
}

/// The columns `event_from_row` reads, of `events e` joined by [`webhook_of_event!`], in
/// `sqlite` or `postgres`'s dialect: an event that refers to its webhook's body reads its data
/// from there.
macro_rules! event_columns {
    (sqlite) => {
        "e.seq, e.id, e.tenant_id, e.plugin, e.type, e.occurred_at, \
         CASE WHEN e.webhook_id IS NULL THEN e.data ELSE COALESCE(CAST(w.payload AS TEXT), 'null') END"
    };
    (postgres) => {
        "e.seq, e.id, e.tenant_id, e.plugin, e.type, e.occurred_at, \
         CASE WHEN e.webhook_id IS NULL THEN e.data ELSE COALESCE(convert_from(w.payload, 'UTF8'), 'null') END"
    };
}

/// The webhook whose body event `e` may carry, as `w`: statements read `FROM events e
/// webhook_of_event!()`.
macro_rules! webhook_of_event {
    () => {
        "LEFT JOIN webhook_events w ON w.id = e.webhook_id"
    };
}

/// The columns `endpoint_from_row` reads.
macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, url, event_types, description, state, disabled_reason, secret, previous_secret, \
         previous_secret_expires_at, failing_since, start_seq, created_at, updated_at, rate_limit_per_sec"
    };
}
