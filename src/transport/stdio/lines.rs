//! A child's output read line by line within a cap, and the ring of its last stderr lines. A
//! stderr line is redacted before it is cut (a cut could split a secret and leave its head),
//! and logged escaped, within a budget of lines.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};

use std::time::Instant;

use parking_lot::Mutex;

use super::Peer;
use crate::text::{LogBudget, cut, for_log};

/// Lines of stderr kept per server.
pub const STDERR_LINES: usize = 500;
/// Longest stderr line kept (the rest of a longer line is dropped).
pub const STDERR_LINE_BYTES: usize = 4 << 10;
/// How much of a stderr line is read to be redacted before it is cut to `STDERR_LINE_BYTES`: a
/// secret that begins within the kept part is whole when redacted unless it is longer than the
/// rest of this.
const STDERR_READ_BYTES: usize = 64 << 10;
/// Longest stderr line written to the hub's log.
const STDERR_LOG_BYTES: usize = 1 << 10;
/// Longest message a child may write on stdout: past it the child is broken, and its bridge
/// closes (the supervisor restarts it).
pub const STDOUT_LINE_BYTES: usize = 16 << 20;

/// The last lines a child wrote to stderr (kept across restarts).
#[derive(Default)]
pub struct StderrRing {
    lines: VecDeque<String>,
    /// Lines pushed since the ring was made (a `mark`).
    pushed: u64,
}

impl StderrRing {
    pub fn push(&mut self, line: String) {
        if self.lines.len() == STDERR_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.pushed += 1;
    }

    pub fn tail(&self, n: usize) -> Vec<String> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n)).cloned().collect()
    }

    /// Where the ring is now: what `tail_since` counts from (a launch's own lines come after).
    pub fn mark(&self) -> u64 {
        self.pushed
    }

    /// The last `n` lines pushed after `mark`: one launch's, not its predecessors' too.
    pub fn tail_since(&self, mark: u64, n: usize) -> Vec<String> {
        let since = usize::try_from(self.pushed.saturating_sub(mark)).unwrap_or(usize::MAX);
        self.tail(n.min(since))
    }
}

/// Reads one line (to its newline or the end) into `out`, but stops once it passes `cap`
/// bytes: returns the bytes read and whether the line was cut there (its rest unread). A child
/// cannot make the hub hold more than `cap` for one line.
pub(crate) fn read_line_capped(
    reader: &mut impl BufRead,
    out: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let mut total = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((total, false));
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = cap.saturating_sub(out.len());
        let kept = take.min(room);
        out.extend_from_slice(&buf[..kept]);
        reader.consume(kept);
        total += kept;
        if take > room {
            return Ok((total, true));
        }
        if done {
            return Ok((total, false));
        }
    }
}

pub(super) fn drain_stderr(stderr: impl Read, server: &str, ring: &Mutex<StderrRing>, peer: &dyn Peer) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    let mut budget = LogBudget::for_child();
    loop {
        buf.clear();
        let read_cut = match read_line_capped(&mut reader, &mut buf, STDERR_READ_BYTES) {
            Ok((0, _)) | Err(_) => break,
            Ok((_, cut)) => cut,
        };
        if read_cut {
            // The rest of the line goes unread into nothing.
            let mut rest = Vec::new();
            while let Ok((n, true)) = read_line_capped(&mut reader, &mut rest, STDERR_READ_BYTES) {
                rest.clear();
                if n == 0 {
                    break;
                }
            }
        }
        // Redacted before it is cut and kept: the ring feeds `last_error` and
        // `/servers/{name}/logs`.
        let text = String::from_utf8_lossy(&buf);
        let redacted = peer.redact(text.trim_end());
        let mut line = cut(&redacted, STDERR_LINE_BYTES);
        if read_cut || line.len() < redacted.len() {
            line.push_str(" [...]");
        }
        if log::log_enabled!(log::Level::Debug) {
            if let Some(suppressed) = budget.allow(Instant::now()) {
                if suppressed > 0 {
                    log::debug!("[{server}] {suppressed} stderr lines not logged (too many)");
                }
                log::debug!("[{server}] {}", for_log(&line, STDERR_LOG_BYTES));
            }
        }
        ring.lock().push(line);
    }
}
