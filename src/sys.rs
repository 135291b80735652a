//! The operating-system calls std does not offer, as small safe functions: every `unsafe` block
//! of the crate lives here, each with a `// SAFETY:` comment, and the rest of the crate is
//! `#![deny(unsafe_code)]`. Process groups are signalled (by `servers::process` only), and the
//! open-file limit is raised and read.
#![allow(unsafe_code)]

use std::io;

/// The signals the hub sends to its children's groups.
#[derive(Clone, Copy, Debug)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends `signal` to every process of group `pgid`; ESRCH means the group is already gone.
pub fn signal_group(pgid: i32, signal: Signal) -> io::Result<()> {
    let sig = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    kill(pgid, sig)
}

/// Whether any process (zombies included) is left in group `pgid`.
pub fn group_exists(pgid: i32) -> bool {
    kill(pgid, 0).is_ok()
}

/// `kill(-pgid, sig)`, refusing the group ids that would mean "our own group" (0) or "every
/// process we may signal" (1 becomes -1).
fn kill(pgid: i32, sig: libc::c_int) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a child's process group: {pgid}"),
        ));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid names
    // exactly one process group, and the guard above keeps it a real one.
    if unsafe { libc::kill(-pgid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (at most 2^20). tiny_http's
/// accept thread ends at its first error, "too many open files" included.
pub fn raise_fd_limit() -> io::Result<()> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= lim.rlim_max {
        return Ok(());
    }
    lim.rlim_cur = lim.rlim_max.min(1 << 20);
    // SAFETY: `lim` is a valid rlimit, only read by the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The soft limit on open descriptors (after `raise_fd_limit`, the hard one).
pub fn fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit the call writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_that_mean_more_than_one_group_are_refused() {
        for pgid in [-5, 0, 1] {
            let err = signal_group(pgid, Signal::Kill).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{pgid}");
            assert!(!group_exists(pgid), "{pgid}");
        }
    }

    #[test]
    fn the_descriptor_limit_is_known() {
        raise_fd_limit().unwrap();
        assert!(fd_limit().unwrap() >= 64);
    }
}
