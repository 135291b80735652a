//! The one `call-timer` thread: it takes back the continuations parked in docks whose time has
//! passed (`Woken::Wait`), so that they go on on a thread of their own. Most were run long
//! before by the thread that brought their answer; for those it finds nothing parked.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Inbox, Woken};

/// How late the timer may be: it wakes at most once in this long while calls are parked.
const SLACK: Duration = Duration::from_millis(5);

/// Parked docks by the time they give up waiting.
pub(super) struct Timer {
    due: Mutex<BinaryHeap<Due>>,
    changed: Condvar,
}

struct Due {
    at: Instant,
    dock: Arc<Inbox>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// The earliest first (the heap is a max-heap).
    fn cmp(&self, other: &Due) -> Ordering {
        other.at.cmp(&self.at)
    }
}

impl Timer {
    pub(super) fn add(&self, at: Instant, dock: Arc<Inbox>) {
        let mut due = self.due.lock();
        let sooner = due.peek().is_none_or(|d| at < d.at);
        due.push(Due { at, dock });
        drop(due);
        if sooner {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut late = Vec::new();
        let mut due = self.due.lock();
        loop {
            let now = Instant::now();
            while due.peek().is_some_and(|d| d.at <= now) {
                late.extend(due.pop());
            }
            if !late.is_empty() {
                drop(due);
                for d in late.drain(..) {
                    if let Some(then) = d.dock.unpark() {
                        then(Woken::Wait);
                    }
                }
                due = self.due.lock();
                continue;
            }
            match due.peek().map(|d| d.at) {
                // Late by up to `SLACK`, to take many at once: one wake per call would cost
                // as much as the wake it saves.
                Some(at) => {
                    self.changed.wait_until(&mut due, at + SLACK);
                }
                None => self.changed.wait(&mut due),
            }
        }
    }
}

/// The one timer, started with the first parked call; `None` if no thread could be had.
pub(super) fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let t: &'static Timer =
            Box::leak(Box::new(Timer { due: Mutex::new(BinaryHeap::new()), changed: Condvar::new() }));
        match std::thread::Builder::new().name("call-timer".into()).spawn(move || t.run()) {
            Ok(_) => Some(t),
            Err(e) => {
                log::warn!("cannot start the call timer ({e}); quick calls wait on threads of their own");
                None
            }
        }
    })
}
