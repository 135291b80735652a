//! `Wake`: a request's slot, to be told when the request's outcome is there instead of having a
//! thread wait for it. The caller parks a continuation in the slot; whoever pushes the next
//! event runs it (the stdout reader, for an answer), or the `call-timer` thread does when
//! nothing came by the wake's time. Only an answer (or the child's end) is `Ready`: anything
//! else — progress, a request for the client, the time passing — is `Wait`, and the
//! continuation goes on on a thread of its own.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Event, Slot};

/// What a parked continuation is run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The outcome is there: waiting for it returns at once.
    Ready,
    /// Something else came, or the time passed: go on where waiting is allowed.
    Wait,
}

/// What is parked in a slot.
pub(super) type Then = Box<dyn FnOnce(Woken) + Send>;

/// One request's slot and how long a parked continuation may stay there.
pub struct Wake {
    slot: Arc<Slot>,
    until: Instant,
}

impl Wake {
    pub(super) fn new(slot: Arc<Slot>, until: Instant) -> Wake {
        Wake { slot, until }
    }

    /// Runs `then` once the request's next event is there: here and now if it already is, else
    /// on the thread that brings it, or on the timer at `until`. `then` must not block.
    pub fn park(self, then: Then) {
        // Before the lock: the first call starts the timer's thread.
        let timer = timer();
        let mut ev = self.slot.events.lock();
        if ev.gone || !ev.queue.is_empty() {
            let ready = matches!(ev.queue.front(), Some(Event::Response(_) | Event::Cancelled) | None);
            drop(ev);
            return then(if ready { Woken::Ready } else { Woken::Wait });
        }
        match timer {
            Some(t) => {
                ev.parked = Some(then);
                drop(ev);
                t.add(self.until, self.slot);
            }
            None => {
                drop(ev);
                then(Woken::Wait);
            }
        }
    }
}

/// How late the timer may be: it wakes at most once in this long while calls are parked.
const SLACK: Duration = Duration::from_millis(5);

/// Parked slots by the time they give up waiting.
struct Timer {
    due: Mutex<BinaryHeap<Due>>,
    changed: Condvar,
}

struct Due {
    at: Instant,
    slot: Arc<Slot>,
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
    fn add(&self, at: Instant, slot: Arc<Slot>) {
        let mut due = self.due.lock();
        let sooner = due.peek().is_none_or(|d| at < d.at);
        due.push(Due { at, slot });
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
                // Most were answered long ago: their slot has nothing parked any more.
                for d in late.drain(..) {
                    d.slot.wake(Woken::Wait);
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
fn timer() -> Option<&'static Timer> {
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
