//! The process's open-file limit, which bounds the connections it can hold: raised to the hard
//! limit at start-up (the soft limit is often 1,024 while the hard one is far higher), and the
//! connection cap fitted under it.

/// Descriptors kept for everything but client connections: the database pool, NATS, outbound
/// vendor connections, the listener, logs.
pub const RESERVED_FILES: u64 = 512;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit then in force; `None`
/// where there is no such limit to read.
#[cfg(unix)]
pub fn raise_open_file_limit() -> std::io::Result<Option<u64>> {
    let limit = nofile()?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one `rlimit` through a pointer to a live one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            // macOS refuses an unlimited hard limit as the soft one; the current limit stands.
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, soft = soft(&limit), "cannot raise the open-file limit");
            return Ok(Some(soft(&limit)));
        }
        return Ok(Some(soft(&raised)));
    }
    Ok(Some(soft(&limit)))
}

/// The process's `RLIMIT_NOFILE`.
#[cfg(unix)]
fn nofile() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to a live, writable one.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// The soft limit as a number of files.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is u64 where we build, narrower on some 32-bit targets.
fn soft(limit: &libc::rlimit) -> u64 {
    u64::from(limit.rlim_cur)
}

/// Raises nothing where there is no `RLIMIT_NOFILE`.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> std::io::Result<Option<u64>> {
    Ok(None)
}

/// The connection cap in force: `configured`, lowered so that the connections and
/// [`RESERVED_FILES`] fit in `open_files` (connections get at least half of a small limit).
pub fn connection_cap(configured: usize, open_files: u64) -> usize {
    let room = open_files.saturating_sub(RESERVED_FILES).max(open_files / 2);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_reserved_files() {
        assert_eq!(connection_cap(10_000, 1_048_576), 10_000);
        assert_eq!(connection_cap(10_000, 20_000), 10_000);
        assert_eq!(connection_cap(10_000, 4_096), 4_096 - 512);
        assert_eq!(connection_cap(10_000, 1_024), 512);
        assert_eq!(connection_cap(10_000, 256), 128);
        assert_eq!(connection_cap(100, 4_096), 100);
        assert_eq!(connection_cap(10_000, 0), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let raised = raise_open_file_limit().unwrap();
        let limit = nofile().unwrap();
        assert_eq!(raised, Some(soft(&limit)));
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
