//! A child's stdin, written in order. A sender writes its line itself when nothing is queued or
//! being written and the pipe has room for it (a poll says it is not full, and the line fits in
//! `PIPE_BUF`, so the write goes in whole and cannot block); otherwise the line joins the
//! backlog the `stdin-*` thread writes. Writing on the sender's thread saves waking the writer
//! for each message, the costliest part of a call under load. The lock orders writes to the
//! pipe and guards nothing else.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

/// Longest line (with its newline) a pipe takes whole (POSIX `PIPE_BUF` on Linux).
const PIPE_BUF: usize = 4096;

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
    /// The writer thread is writing lines it took: nobody else writes meanwhile.
    busy: bool,
    closed: bool,
    /// The pipe for senders; dropped when closed, so the child sees EOF once the writer ends.
    direct: Option<File>,
}

impl Stdin {
    pub(super) fn new(direct: Option<OwnedFd>) -> Stdin {
        let state =
            State { backlog: VecDeque::new(), busy: false, closed: false, direct: direct.map(File::from) };
        Stdin { state: Mutex::new(state), ready: Condvar::new() }
    }

    /// Sends a line (without its newline); false once closed (the line is dropped). `queued`
    /// counts bytes not yet written: a line written here is taken off at once.
    pub(super) fn push(&self, line: String, queued: &AtomicU64) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        let idle = st.backlog.is_empty() && !st.busy && line.len() < PIPE_BUF;
        if let Some(pipe) = st.direct.as_mut().filter(|p| idle && crate::sys::writable_now(p.as_fd())) {
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            let written = pipe.write_all(&bytes);
            taken(queued, bytes.len());
            if written.is_err() {
                // The child is gone: as when the writer thread fails.
                st.closed = true;
                st.direct = None;
                self.ready.notify_all();
                return false;
            }
            return true;
        }
        st.backlog.push_back(line);
        self.ready.notify_one();
        true
    }

    /// No more lines are taken; what is queued can still be drained.
    pub(super) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.direct = None;
        self.ready.notify_all();
    }

    /// The writer thread's next lines, waiting for some; None once closed and drained. Until
    /// `written`, senders queue behind them.
    fn take(&self) -> Option<Vec<String>> {
        let mut st = self.state.lock();
        st.busy = false;
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

fn taken(queued: &AtomicU64, n: usize) {
    let _ = queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(n as u64)));
}

/// The `stdin-*` thread: the backlog to the pipe, in order, until closed or the pipe breaks.
pub(super) fn write_loop(mut stdin: impl Write, input: &Stdin, queued: &AtomicU64) {
    let mut buf = Vec::new();
    while let Some(lines) = input.take() {
        buf.clear();
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        // Taken lines count as written. The hub's answers and notifications were never counted
        // in, so the count errs low, never high.
        taken(queued, buf.len());
        if stdin.write_all(&buf).and_then(|()| stdin.flush()).is_err() {
            break;
        }
    }
    // Nothing more reaches the child: later sends fail at once instead of waiting out their
    // deadlines. Dropping stdin (and the senders' handle) closes the pipe: the child sees EOF.
    input.close();
}
