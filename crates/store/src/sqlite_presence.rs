//! Which stores have a SQLite file open, told by file locks beside it: each holds a shared lock
//! on `<file>-users.lock` for as long as it lives. A store that joins while no other holds it is
//! the file's only user, so leases left in the file belong to runs that died (a crash, `kill -9`)
//! and can be freed at once instead of after they run out. Locks are per open file, so this
//! holds across processes and between stores of one process alike (a test's two replicas).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// This store's presence on the file, held until the store (every clone of it) is dropped.
#[derive(Debug)]
pub(crate) struct Presence {
    _users: File,
}

/// Joining, with the start lock still held while the caller frees what dead runs left.
pub(crate) struct Joining {
    pub(crate) presence: Presence,
    /// No other store had the file open.
    pub(crate) alone: bool,
    start: File,
}

impl Joining {
    /// Lets the next store join.
    pub(crate) fn finish(self) -> Presence {
        let _ = self.start.unlock();
        self.presence
    }
}

/// Joins the users of `database`. Joins happen one at a time (an exclusive lock on
/// `<file>-start.lock`), so between testing for other users and holding the shared lock no other
/// store can test; the caller frees leases before calling [`Joining::finish`], so no store that
/// joins later can have taken a lease that is then freed.
pub(crate) fn join(database: &Path) -> std::io::Result<Joining> {
    let start = open(&beside(database, "start"))?;
    start.lock()?;
    let users = open(&beside(database, "users"))?;
    let alone = match users.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) => false,
        Err(TryLockError::Error(error)) => return Err(error),
    };
    // From exclusive to shared, by unlocking first (converting a lock in place is not portable):
    // only joiners ever ask for the exclusive lock, and they wait on the start lock this one holds.
    if alone {
        users.unlock()?;
    }
    users.lock_shared()?;
    Ok(Joining {
        presence: Presence { _users: users },
        alone,
        start,
    })
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn beside(database: &Path, what: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(format!("-{what}.lock"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_of_live_users_is_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("db.sqlite");
        let first = join(&database).expect("join").finish_alone();
        let second = join(&database).expect("join").finish_alone();
        assert!(first.1, "nobody else had the file open");
        assert!(!second.1, "the first store is still there");
        drop(first);
        drop(second);
        let third = join(&database).expect("join").finish_alone();
        assert!(third.1, "both earlier stores are gone");
    }

    impl Joining {
        fn finish_alone(self) -> (Presence, bool) {
            let alone = self.alone;
            (self.finish(), alone)
        }
    }
}
