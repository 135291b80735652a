//! Where a call waits. `Call::then` stores a continuation with the call and runs it with the
//! call's first event, on the thread that brings it (a child's stdout reader, for an answer
//! that comes within `QUICK_ANSWER`): no thread waits for a quick answer. A call whose carrier
//! cannot hold a continuation, a modern server's call (its answer may start input rounds), or
//! one whose first event is not there by `QUICK_ANSWER` (the `call-timer` takes it back) gets a
//! `call-wait` thread of its own that waits for it, honouring the deadline and the caller's
//! "gone" flag. This is the one place that decides a call waits on a thread.
//!
//! A caller that may go away is watched: `Call::watch` (its own flag), else the thread's
//! (`while_caller_watched`, for calls made inside blocking work); a waiting call looks at it
//! every `WATCH_SLICE`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::call::Call;
use super::timer::timer;
use super::{Inbox, Parked, Step, Woken};

/// A call's continuation.
type Then = Box<dyn FnOnce(Call, Step) + Send>;
use crate::jsonrpc::{self, RpcError};

/// How long a call may wait for a server's first word without a thread of its own: most
/// answers take microseconds; long tools get a thread.
pub const QUICK_ANSWER: Duration = Duration::from_millis(10);
/// How often a watched call looks at whether its caller is still there.
pub(super) const WATCH_SLICE: Duration = Duration::from_millis(100);

std::thread_local! {
    /// Set while a caller that may go away waits on this thread (the HTTP front sets it for a
    /// request answered off the worker): true once it has gone.
    static CALLER_GONE: std::cell::RefCell<Option<Arc<AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with the calls it waits on watching `gone`: once it turns true, a waiting call is
/// cancelled at the server and ends, instead of running to its deadline for nobody.
pub fn while_caller_watched<T>(gone: Arc<AtomicBool>, f: impl FnOnce() -> T) -> T {
    CALLER_GONE.with(|g| *g.borrow_mut() = Some(gone));
    let out = f();
    CALLER_GONE.with(|g| *g.borrow_mut() = None);
    out
}

/// The flag a call's wait looks at: its own, else the thread's.
pub(super) fn watched(own: &Option<Arc<AtomicBool>>) -> Option<Arc<AtomicBool>> {
    match own {
        Some(gone) => Some(gone.clone()),
        None => CALLER_GONE.with(|g| g.borrow().clone()),
    }
}

/// A request's dock and how long a continuation may stay parked there: how the carriers'
/// tests park a continuation of their own (`Call::then` parks through `park`).
#[cfg(test)]
pub struct Wake {
    dock: Arc<Inbox>,
    until: Instant,
}

#[cfg(test)]
impl Wake {
    pub fn new(dock: Arc<Inbox>, until: Instant) -> Wake {
        Wake { dock, until }
    }

    /// Runs `then` once the request's next event is there: here and now if it already is, else
    /// on the thread that brings it, or on the timer at `until`. `then` must not block.
    pub fn park(self, then: Parked) {
        park(self.dock, self.until, then)
    }
}

fn park(dock: Arc<Inbox>, until: Instant, then: Parked) {
    // Before the dock's lock: the first call starts the timer's thread.
    let Some(timer) = timer() else { return then(Woken::Wait) };
    match dock.park(then) {
        Ok(()) => timer.add(until, dock),
        Err((then, woken)) => then(woken),
    }
}

impl Call {
    /// Runs `k` with the call's first event (a message before the outcome, or the outcome),
    /// on the thread that brings it, or here at once when it is there already; `k` must not
    /// block. A call that cannot wait so (see the module's comment), or whose first event has
    /// not come within `QUICK_ANSWER`, waits on a `call-wait` thread, which then runs `k`.
    pub fn then(self, k: impl FnOnce(Call, Step) + Send + 'static) {
        // Boxed here: one body of what follows for every caller, not one each.
        self.then_boxed(Box::new(k))
    }

    fn then_boxed(self, k: Then) {
        match self.dock() {
            Some(dock) => {
                // A deadline sooner than that is kept by the thread the timer hands the call to.
                let until = (Instant::now() + QUICK_ANSWER).min(self.deadline);
                park(
                    dock,
                    until,
                    Box::new(move |_| {
                        // Here (a child's reader, as a rule) nothing may unwind.
                        if catch_unwind(AssertUnwindSafe(move || self.first_event(k))).is_err() {
                            log::error!("a call's continuation panicked; its caller is dropped");
                        }
                    }),
                )
            }
            // It never reached its server: its outcome is there.
            None if self.failed_to_open() => self.first_event(k),
            None => self.on_a_thread(k),
        }
    }

    /// `k` with the first event if it is there, else on a thread that waits for it.
    fn first_event(mut self, k: Then) {
        match self.next(Instant::now()) {
            Some(step) => k(self, step),
            None => self.on_a_thread(k),
        }
    }

    fn on_a_thread(self, k: Then) {
        let request_id = crate::request_id::current();
        // Shared with the thread, to be taken back if it cannot start.
        let parts = Arc::new(Mutex::new(Some((self, k))));
        let theirs = parts.clone();
        let spawned = std::thread::Builder::new().name("call-wait".into()).spawn(move || {
            let Some((mut call, k)) = theirs.lock().take() else { return };
            crate::request_id::with(request_id, || {
                let step = loop {
                    let deadline = call.deadline;
                    if let Some(step) = call.next(deadline) {
                        break step;
                    }
                };
                k(call, step)
            })
        });
        if let Err(e) = spawned {
            let Some((mut call, k)) = parts.lock().take() else { return };
            log::warn!("cannot start a thread to wait for a call to {}: {e}", call.server);
            let why = format!("the hub cannot start a thread to wait for {}: {e}", call.server);
            let step = call.abandoned(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, why));
            k(call, step)
        }
    }
}
