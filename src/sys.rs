//! The operating-system calls std does not offer, as small safe functions: every `unsafe` block
//! of the crate lives here, each with a `// SAFETY:` comment, and the rest of the crate is
//! `#![deny(unsafe_code)]`. Process groups are signalled (by `servers::process` only), the
//! open-file limit raised, TCP_NODELAY set on the listener, and a connection's socket found by
//! its peer address and shut down.
#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener};
use std::os::fd::AsRawFd;

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

/// Sets TCP_NODELAY on a listener, so the connections it accepts inherit it.
pub fn set_nodelay(listener: &TcpListener) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is the listener's, borrowed for the call; the option value is a c_int and
    // its length says so.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Shuts down (without closing) this process's socket connected to `peer` on `local_port`, for
/// the one case where tiny_http keeps the socket out of reach (an abandoned oversized request).
/// The fds are found by number in `/proc/self/fd` (or `/dev/fd`); the walk stays here because
/// acting on an fd by number is what needs the care, and no safe function should take one.
pub fn shutdown_connection(peer: SocketAddr, local_port: u16) {
    let dir = if std::path::Path::new("/proc/self/fd").is_dir() { "/proc/self/fd" } else { "/dev/fd" };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else {
            continue;
        };
        if address(fd, Name::Peer) == Some(peer)
            && address(fd, Name::Local).is_some_and(|a| a.port() == local_port)
        {
            // SAFETY: shutdown(2) touches no memory of ours; the fd is a socket of this process
            // connected to `peer`, and it stays open (its owner still closes it).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
}

/// Which end of a socket `address` reads.
#[derive(Clone, Copy)]
enum Name {
    Peer,
    Local,
}

/// getpeername/getsockname into a `SocketAddr`; None for an fd that is not an IP socket.
fn address(fd: libc::c_int, name: Name) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain old data, valid when zeroed.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let out = (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: `out` points to storage large enough for any address and `len` says how large;
    // a bad or non-socket fd only makes the call fail.
    let rc = unsafe {
        match name {
            Name::Peer => libc::getpeername(fd, out, &mut len),
            Name::Local => libc::getsockname(fd, out, &mut len),
        }
    };
    if rc != 0 {
        return None;
    }
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and sockaddr_storage is
            // aligned for every address type.
            let a = unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), 0, a.sin6_scope_id)))
        }
        _ => None,
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
            assert!(!group_exists(pgid), "{pgid}");
        }
    }

    #[test]
    fn a_connection_reports_both_ends() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        set_nodelay(&listener).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(address(client.as_raw_fd(), Name::Local), Some(client.local_addr().unwrap()));
        assert_eq!(address(client.as_raw_fd(), Name::Peer), Some(client.peer_addr().unwrap()));
        assert_eq!(address(listener.as_raw_fd(), Name::Peer), None);
    }
}
