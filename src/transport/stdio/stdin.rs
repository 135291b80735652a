//! A child's stdin, written in order. A sender writes its line itself when nothing is queued or
//! being written and the pipe has room for it (a poll says it is not full, and the line fits in
//! `PIPE_BUF`, so the write goes in whole and cannot block); otherwise the line joins the
//! backlog the `stdin-*` thread writes. Writing on the sender's thread saves waking the writer
//! for each message, the costliest part of a call under load. The lock orders writes to the
//! pipe and guards the backlog.
//!
//! The backlog is bounded (`STDIN_LINES`, `STDIN_BYTES`; every line counts until it is
//! written, whoever sent it). Past the bound a client's request is refused at once; a line of
//! the hub's own (an answer to the child's request, a notification) marks the child hung: it
//! asks and does not read the answers. Its backlog is dropped, its stdin closed, and its
//! transport says why it is lost (`hung`), so the supervisor restarts it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use parking_lot::{Condvar, Mutex};

/// Longest line (with its newline) a pipe takes whole (POSIX `PIPE_BUF` on Linux).
const PIPE_BUF: usize = 4096;
/// Most lines waiting for a child that does not read its stdin.
pub const STDIN_LINES: usize = 16_384;
/// Most bytes waiting for a child that does not read its stdin.
pub const STDIN_BYTES: usize = 64 << 20;

/// Why a line was not queued.
pub(super) enum Refused {
    /// Closed: the child is gone (or hung).
    Closed,
    /// The backlog is at its bound: how much waits.
    Full(String),
}

/// What a bridge may write to: a child's stdin also offers a second handle to the same pipe for
/// senders to write on directly (other writers, the tests' in-memory pipes, do not).
pub trait ChildInput: Write + Send + 'static {
    fn direct(&self) -> Option<OwnedFd> {
        None
    }
}

impl ChildInput for std::process::ChildStdin {
    fn direct(&self) -> Option<OwnedFd> {
        self.as_fd().try_clone_to_owned().ok()
    }
}

pub(super) struct Stdin {
    state: Mutex<State>,
    ready: Condvar,
}

struct State {
    backlog: VecDeque<String>,
    /// Lines and bytes (with newlines) queued and not yet written: the backlog and the batch
    /// the writer is writing.
    lines: usize,
    bytes: usize,
    /// Why the child is treated as hung (it did not read the hub's answers).
    hung: Option<String>,
    /// The writer thread is writing lines it took: nobody else writes meanwhile.
    busy: bool,
    closed: bool,
    /// The pipe for senders; dropped when closed, so the child sees EOF once the writer ends.
    direct: Option<File>,
}

impl Stdin {
    pub(super) fn new(direct: Option<OwnedFd>) -> Stdin {
        let state = State {
            backlog: VecDeque::new(),
            lines: 0,
            bytes: 0,
            hung: None,
            busy: false,
            closed: false,
            direct: direct.map(File::from),
        };
        Stdin { state: Mutex::new(state), ready: Condvar::new() }
    }

    /// Sends a request (without its newline): refused once closed or at the bound.
    pub(super) fn push_request(&self, line: String) -> Result<(), Refused> {
        self.send(line, false)
    }

    /// Sends a line of the hub's own (without its newline); false once closed. Past the bound
    /// the child is treated as hung (see the module's comment).
    pub(super) fn push(&self, line: String) -> bool {
        self.send(line, true).is_ok()
    }

    fn send(&self, line: String, own: bool) -> Result<(), Refused> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(Refused::Closed);
        }
        let idle = st.backlog.is_empty() && !st.busy && line.len() < PIPE_BUF;
        if let Some(pipe) = st.direct.as_mut().filter(|p| idle && crate::sys::writable_now(p.as_fd())) {
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            if pipe.write_all(&bytes).is_err() {
                // The child is gone: as when the writer thread fails.
                st.closed = true;
                st.direct = None;
                self.ready.notify_all();
                return Err(Refused::Closed);
            }
            return Ok(());
        }
        let size = line.len() + 1;
        if st.lines >= STDIN_LINES || st.bytes + size > STDIN_BYTES {
            let waiting = format!("{} lines, {} KiB waiting", st.lines, st.bytes >> 10);
            if own {
                st.hung = Some(format!("did not read its stdin ({waiting}); treated as hung"));
                st.closed = true;
                st.direct = None;
                st.backlog = VecDeque::new();
                (st.lines, st.bytes) = (0, 0);
                self.ready.notify_all();
            }
            return Err(Refused::Full(waiting));
        }
        st.lines += 1;
        st.bytes += size;
        st.backlog.push_back(line);
        self.ready.notify_one();
        Ok(())
    }

    /// Why the child is treated as hung, once it is.
    pub(super) fn hung(&self) -> Option<String> {
        self.state.lock().hung.clone()
    }

    /// No more lines are taken; what is queued can still be drained.
    pub(super) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.direct = None;
        self.ready.notify_all();
    }

    /// The writer thread's next lines, waiting for some; None once closed and drained. Until
    /// the next `take`, senders queue behind them, and they count as queued. `written`: the
    /// lines and bytes of the batch before, now written.
    fn take(&self, written: (usize, usize)) -> Option<Vec<String>> {
        let mut st = self.state.lock();
        st.busy = false;
        st.lines = st.lines.saturating_sub(written.0);
        st.bytes = st.bytes.saturating_sub(written.1);
        loop {
            if !st.backlog.is_empty() {
                st.busy = true;
                return Some(st.backlog.drain(..).collect());
            }
            if st.closed {
                return None;
            }
            self.ready.wait(&mut st);
        }
    }
}

/// The `stdin-*` thread: the backlog to the pipe, in order, until closed or the pipe breaks.
pub(super) fn write_loop(mut stdin: impl Write, input: &Stdin) {
    let mut buf = Vec::new();
    let mut written = (0, 0);
    while let Some(lines) = input.take(written) {
        buf.clear();
        for line in &lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        if stdin.write_all(&buf).and_then(|()| stdin.flush()).is_err() {
            break;
        }
        written = (lines.len(), buf.len());
    }
    // Nothing more reaches the child: later sends fail at once instead of waiting out their
    // deadlines. Dropping stdin (and the senders' handle) closes the pipe: the child sees EOF.
    input.close();
}
