//! Copies the SQLite write-ahead log into the database file on a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so every
//! thousand pages or so one ingest batch waited for a thousand page writes and an fsync of the
//! database file before its callers heard back. Here a thread with its own connection copies what
//! the writer has committed (a passive checkpoint, which never blocks the writer), a few commits
//! at a time; the writer's own automatic checkpoint stays as the rare step that lets the log start
//! over, and then has only the last few commits' pages left to copy.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rusqlite::Connection;

/// The writer asks for a checkpoint after this many commits (a few hundred pages under load).
pub(crate) const COMMITS_PER_CHECKPOINT: u64 = 16;

/// The log's length, in pages, at which the writer itself checkpoints the rest and the log starts
/// over: SQLite's default of 1000 would have the writer copy most of what this thread had not yet
/// reached.
pub(crate) const WRITER_CHECKPOINT_PAGES: i64 = 4000;

/// Asks the checkpoint thread to run.
pub(crate) struct CheckpointRequests(SyncSender<()>);

impl CheckpointRequests {
    pub(crate) fn request(&self) {
        // A request made while one is pending is merged with it; a thread that could not open the
        // database (it said so once) leaves the writer's own checkpoints to do it all.
        let _ = self.0.try_send(());
    }
}

/// Starts the checkpoint thread for the database at `path`; it stops when every request handle
/// is dropped. `None` if the thread could not start (the writer's own checkpoints then do it all).
pub(crate) fn start(path: &Path) -> Option<CheckpointRequests> {
    let (requests, received) = sync_channel(1);
    let path = path.to_owned();
    let spawned = std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || run(&path, &received));
    match spawned {
        Ok(_) => Some(CheckpointRequests(requests)),
        Err(error) => {
            tracing::warn!(%error, "cannot start the checkpoint thread");
            None
        }
    }
}

fn run(path: &Path, requests: &Receiver<()>) {
    let connection = match Connection::open(path) {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(%error, "the checkpoint thread cannot open the database");
            return;
        }
    };
    while requests.recv().is_ok() {
        // Passive: copies what no reader still needs from the log, and gives up on the rest
        // rather than wait (it never calls a busy handler); the next request picks it up.
        let outcome = connection.query_row(sql::CHECKPOINT, [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match outcome {
            Ok((logged, copied)) => tracing::trace!(logged, copied, "checkpoint"),
            Err(error) => tracing::warn!(%error, "checkpoint failed; the next one retries"),
        }
    }
}

/// The checkpointer's statement.
pub(crate) mod sql {
    statements! {
        /// Copies what it can of the log into the database without waiting for readers.
        CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)";
    }
}
