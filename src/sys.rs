//! The operating-system calls std does not offer, as small safe functions: every `unsafe` block
//! of the crate lives here, each with a `// SAFETY:` comment, and the rest of the crate is
//! `#![deny(unsafe_code)]`. Process groups and single processes are signalled and reaped (by
//! `servers::process` only), children are made to die with the hub, the hub becomes their
//! subreaper, the open-file limit is raised and read, and freed memory is given back.
#![allow(unsafe_code)]

use std::io;
use std::process::Command;

/// The signals the hub sends to its children's groups.
#[derive(Clone, Copy, Debug)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends `signal` to every process of group `pgid`; ESRCH means the group is already gone.
pub fn signal_group(pgid: i32, signal: Signal) -> io::Result<()> {
    kill(pgid, signo(signal))
}

/// Sends `signal` to the one process `pid` (never to a group: `pid` must be a real process).
pub fn signal_process(pid: i32, signal: Signal) -> io::Result<()> {
    if pid <= 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a child's pid: {pid}")));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a positive pid names
    // exactly one process.
    if unsafe { libc::kill(pid, signo(signal)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn signo(signal: Signal) -> libc::c_int {
    match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    }
}

/// What `reap` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// It had exited and is reaped now.
    Now,
    /// It is still running.
    Running,
    /// Not a child of this process (any more, or never).
    NotOurs,
}

/// Reaps the child `pid` if it has exited, without blocking. Only for children no `Child`
/// owns (orphans re-parented to the hub): a `Child` must reap its own, or its status is lost.
pub fn reap(pid: i32) -> Reaped {
    if pid <= 0 {
        return Reaped::NotOurs;
    }
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable int for the call's duration; a positive pid waits
    // for that one child only, and WNOHANG keeps the call from blocking.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => Reaped::Running,
        r if r == pid => Reaped::Now,
        _ => Reaped::NotOurs,
    }
}

/// Makes this process the subreaper of its descendants: an orphan (a grandchild whose parent
/// exited) is re-parented to the hub rather than to init, so the hub can still find it, kill it
/// and reap it.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Has `cmd`'s child get SIGKILL when the thread that forks it ends (`PR_SET_PDEATHSIG`): a hub
/// that dies, however it dies, takes its children along. The signal follows the forking
/// *thread*, not the process: fork from a thread that lives as long as the process.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: prctl(2) and getppid(2) are plain system calls, and both errors are
    // made from an errno value (`from_raw_os_error` and `last_os_error` allocate nothing), so
    // the closure allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
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

/// The real user id (launchd's `gui/<uid>` domain).
pub fn uid() -> u32 {
    // SAFETY: getuid(2) takes nothing and cannot fail.
    unsafe { libc::getuid() }
}

/// Whether a write to `fd` would not block now (a poll that does not wait). For a pipe this
/// means it is not full: a write of up to `PIPE_BUF` bytes then goes in whole, at once.
pub fn writable_now(fd: std::os::fd::BorrowedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd for the length given; a zero timeout never waits.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1
        && p.revents & libc::POLLOUT != 0
        && p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) == 0
}

/// Sends what the socket takes now, without waiting: the bytes sent (maybe fewer than given,
/// 0 when its buffer is full). Never raises SIGPIPE.
pub fn send_now(stream: &std::net::TcpStream, bytes: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: a valid socket and a buffer of the length given; MSG_DONTWAIT makes this one
        // call non-blocking without touching the socket's flags, which its reader shares.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(0),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(e),
        }
    }
}

/// Blocks of this size and more are the system's own mappings, given back when freed.
const MMAP_THRESHOLD: libc::c_int = 256 << 10;
/// Free memory past this at the top of an allocator heap is given back at once.
const TRIM_THRESHOLD: libc::c_int = 1 << 20;

/// Has the allocator give large blocks back to the system when they are freed. glibc raises its
/// thresholds after the first large blocks are freed (up to 32 MiB), and from then on keeps
/// request bodies of several MiB in each thread's heap, whose top not even `malloc_trim`
/// returns: the RSS stays at a burst's peak. Fixed thresholds keep them the system's.
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt(3) takes plain integers and only changes the allocator's own settings.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Has the allocator give the memory it keeps free back to the system. glibc keeps what a burst
/// of large requests freed (in every thread's arena) and the process's RSS stays at its peak;
/// `malloc_trim(0)` returns the free pages of all arenas. Elsewhere (musl, other systems) nothing
/// is needed or done.
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) takes a plain integer and only touches the allocator's own state,
    // under the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_that_mean_more_than_one_group_are_refused() {
        for pgid in [-5, 0, 1] {
            let err = signal_group(pgid, Signal::Kill).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{pgid}");
            let err = signal_process(pgid, Signal::Kill).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{pgid}");
        }
    }

    #[test]
    fn only_our_own_exited_children_are_reaped() {
        assert_eq!(reap(1), Reaped::NotOurs);
        assert_eq!(reap(0), Reaped::NotOurs);
    }

    #[test]
    fn the_descriptor_limit_is_known() {
        raise_fd_limit().unwrap();
        assert!(fd_limit().unwrap() >= 64);
    }
}
