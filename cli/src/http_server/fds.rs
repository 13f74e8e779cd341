//! File descriptors: each connection takes one, and a process out of them cannot
//! accept anyone (nor open its database). The soft limit is raised to the hard one
//! at start, as Go's runtime does, and connections are capped below it.

/// Descriptors kept for everything but connections (database, logs, outbound
/// requests, the runtime's own).
const RESERVED: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 1,048,576) and returns
/// the soft limit now in force; `None` where it cannot be read.
#[cfg(unix)]
pub fn raise_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let wanted = limit.rlim_max.min(1 << 20);
    if wanted > limit.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = wanted;
        }
    }
    // `rlim_t` is u64 on Linux, narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_limit() -> Option<u64> {
    None
}

/// The connection cap that fits the descriptors there are.
pub fn connection_cap(wanted: usize) -> usize {
    match raise_limit() {
        Some(fds) => {
            let room = usize::try_from(fds.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
            let cap = wanted.min(room.max(16));
            if cap < wanted {
                tracing::warn!(
                    wanted,
                    cap,
                    open_files = fds,
                    "fewer connections than asked fit the open-file limit (ulimit -n)"
                );
            }
            cap
        }
        None => wanted,
    }
}
